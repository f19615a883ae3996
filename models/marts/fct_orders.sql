with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_amounts as (

    select * from {{ ref('int_orders__amounts') }}

),

usd_rates as (

    select * from {{ ref('int_orders__usd_rates') }}

),

order_statuses as (

    select * from {{ ref('order_statuses') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        cast(orders.order_status as {{ dbt.type_string() }}) as order_status,
        cast(order_statuses.status_group as {{ dbt.type_string() }}) as status_group,
        cast(orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        orders.ordered_at,
        cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) as order_date,
        cast(coalesce(order_amounts.item_count, 0) as {{ dbt.type_int() }}) as item_count,
        cast(coalesce(order_amounts.unit_count, 0) as {{ dbt.type_int() }}) as unit_count,
        cast(coalesce(order_amounts.order_total, 0) as numeric(18, 2)) as order_total,
        cast(coalesce(order_amounts.amount_paid, 0) as numeric(18, 2)) as amount_paid,
        cast(usd_rates.usd_per_unit as numeric(18, 6)) as usd_per_unit,
        cast(
            round(coalesce(order_amounts.order_total, 0) * usd_rates.usd_per_unit, 2) as numeric(18, 2)
        ) as order_total_usd,
        coalesce(order_statuses.is_revenue, false) as is_revenue,
        orders.updated_at

    from orders
    left join order_amounts
        on orders.order_id = order_amounts.order_id
    left join usd_rates
        on orders.order_id = usd_rates.order_id
    left join order_statuses
        on orders.order_status = order_statuses.order_status
    where not orders.is_deleted

)

select * from final
