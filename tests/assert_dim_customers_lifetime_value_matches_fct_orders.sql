-- Reconciliation within marts: a customer's lifetime value and order count equal what fct_orders holds for them.
-- Returns the customers that disagree.
with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_orders as (

    select
        customer_id,
        count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.order_count,
        customers.lifetime_value,
        coalesce(customer_orders.order_count, 0) as expected_order_count,
        coalesce(customer_orders.lifetime_value, 0) as expected_lifetime_value

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
where
    order_count != expected_order_count
    or abs(lifetime_value - expected_lifetime_value) > 0.005
