-- How far orders get through their life cycle, per month they were placed.
with

orders as (

    select * from {{ ref('fct_orders') }}

),

order_statuses as (

    select * from {{ ref('order_statuses') }}

),

final as (

    select
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date) as order_month,
        orders.order_status,
        order_statuses.sort_order,
        count(*) as order_count,
        sum(orders.order_total) as order_total

    from orders
    inner join order_statuses
        on orders.order_status = order_statuses.order_status
    group by
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date),
        orders.order_status,
        order_statuses.sort_order

)

select * from final
order by order_month, sort_order
