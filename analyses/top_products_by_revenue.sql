-- Top products by revenue over the last 30 days of orders, per currency.
with

order_items as (

    select * from {{ ref('fct_order_items') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

products as (

    select * from {{ ref('dim_products') }}

),

window_end as (

    select max(order_date) as last_order_date from orders

),

final as (

    select
        products.product_id,
        products.product_name,
        products.category,
        order_items.currency_code,
        sum(order_items.quantity) as units_sold,
        sum(order_items.line_total) as revenue

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    inner join products
        on order_items.product_id = products.product_id
    cross join window_end
    where
        orders.is_revenue
        and order_items.order_date > {{ dbt.dateadd('day', -30, 'window_end.last_order_date') }}
    group by products.product_id, products.product_name, products.category, order_items.currency_code

)

select * from final
order by revenue desc
limit 20
