with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_amounts as (

    select * from {{ ref('int_orders__amounts') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_status,
        orders.currency_code,
        orders.ordered_at,
        cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) as order_date,
        coalesce(order_amounts.item_count, 0) as item_count,
        coalesce(order_amounts.unit_count, 0) as unit_count,
        coalesce(order_amounts.order_total, 0) as order_total,
        coalesce(order_amounts.amount_paid, 0) as amount_paid,
        orders.order_status in ('paid', 'shipped', 'completed') as is_revenue,
        orders.updated_at

    from orders
    left join order_amounts
        on orders.order_id = order_amounts.order_id
    where not orders.is_deleted

)

select * from final
