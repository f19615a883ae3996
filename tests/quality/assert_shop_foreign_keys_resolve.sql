-- Referential integrity across staged shop tables: every non-null foreign key finds its parent row.
-- Returns one row per orphan.
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

orphans as (

    select
        'stg_shop__orders' as model_name,
        'customer_id' as column_name,
        orders.order_id as record_id,
        orders.customer_id as missing_key
    from orders
    left join customers
        on orders.customer_id = customers.customer_id
    where orders.customer_id is not null and customers.customer_id is null

    union all

    select
        'stg_shop__order_items' as model_name,
        'order_id' as column_name,
        order_items.order_item_id as record_id,
        order_items.order_id as missing_key
    from order_items
    left join orders
        on order_items.order_id = orders.order_id
    where order_items.order_id is not null and orders.order_id is null

    union all

    select
        'stg_shop__order_items' as model_name,
        'product_id' as column_name,
        order_items.order_item_id as record_id,
        order_items.product_id as missing_key
    from order_items
    left join products
        on order_items.product_id = products.product_id
    where order_items.product_id is not null and products.product_id is null

    union all

    select
        'stg_shop__payments' as model_name,
        'order_id' as column_name,
        payments.payment_id as record_id,
        payments.order_id as missing_key
    from payments
    left join orders
        on payments.order_id = orders.order_id
    where payments.order_id is not null and orders.order_id is null

)

select * from orphans
