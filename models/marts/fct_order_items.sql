with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

final as (

    select
        order_items.order_item_id,
        order_items.order_id,
        order_items.product_id,
        orders.customer_id,
        cast(orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) as order_date,
        order_items.quantity,
        cast(order_items.unit_price as numeric(18, 2)) as unit_price,
        cast(order_items.quantity * order_items.unit_price as numeric(18, 2)) as line_total,
        order_items.updated_at

    from order_items
    -- Lines of soft-deleted orders go with their order.
    inner join orders
        on order_items.order_id = orders.order_id
    where not orders.is_deleted

)

select * from final
