with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_orders as (

    select
        customer_id,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.first_name,
        {{ dbt.hash('customers.email') }} as email_hash,
        customers.country_code,
        customers.created_at,
        customer_orders.first_ordered_at,
        customer_orders.last_ordered_at,
        coalesce(customer_orders.order_count, 0) as order_count,
        coalesce(customer_orders.lifetime_value, 0) as lifetime_value,
        customers.updated_at

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id
    where not customers.is_deleted

)

select * from final
