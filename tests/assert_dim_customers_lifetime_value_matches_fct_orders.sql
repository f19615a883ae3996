-- Reconciliation within marts: a customer's lifetime value (in their currency and in US dollars), order count and
-- first and last order equal what fct_orders holds for them (no lifetime value when their revenue orders are in
-- several currencies; an order without a known rate adds 0 US dollars).
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
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value,
        sum(case when is_revenue then coalesce(order_total_usd, 0) else 0 end) as lifetime_value_usd,
        count(distinct case when is_revenue then currency_code end) as currency_count

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.order_count,
        customers.lifetime_value,
        customers.lifetime_value_usd,
        customers.first_ordered_at,
        customers.last_ordered_at,
        coalesce(customer_orders.order_count, 0) as expected_order_count,
        coalesce(customer_orders.lifetime_value_usd, 0) as expected_lifetime_value_usd,
        customer_orders.first_ordered_at as expected_first_ordered_at,
        customer_orders.last_ordered_at as expected_last_ordered_at,
        -- Orders in more than one currency have no lifetime value in one currency.
        case
            when customer_orders.currency_count > 1 then null
            else coalesce(customer_orders.lifetime_value, 0)
        end as expected_lifetime_value

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
where
    order_count is distinct from expected_order_count
    or {{ amounts_differ('lifetime_value', 'expected_lifetime_value') }}
    or {{ amounts_differ('lifetime_value_usd', 'expected_lifetime_value_usd') }}
    or first_ordered_at is distinct from expected_first_ordered_at
    or last_ordered_at is distinct from expected_last_ordered_at
