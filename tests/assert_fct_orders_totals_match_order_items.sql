-- Reconciliation, marts against staging: each order's total and item count equal the sum of its items.
-- Returns the orders that disagree.
with

orders as (

    select * from {{ ref('fct_orders') }}

),

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

item_totals as (

    select
        order_id,
        count(*) as item_count,
        sum(quantity * unit_price) as order_total

    from order_items
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.item_count,
        orders.order_total,
        coalesce(item_totals.item_count, 0) as expected_item_count,
        coalesce(item_totals.order_total, 0) as expected_order_total

    from orders
    left join item_totals
        on orders.order_id = item_totals.order_id

)

select * from final
where
    item_count is distinct from expected_item_count
    or {{ amounts_differ('order_total', 'expected_order_total') }}
