-- Reconciliation, marts against staging: each order's amount paid equals the sum of its succeeded payments.
-- An incremental build recomputes the order a payment belongs to now: a payment moved to another order would
-- leave the order it left with its old amount, which this finds. An order with no amount paid (null) disagrees
-- too. Returns the orders that disagree.
with

orders as (

    select * from {{ ref('fct_orders') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

payment_totals as (

    select
        order_id,
        sum(case when payment_status = 'succeeded' then amount else 0 end) as amount_paid

    from payments
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.amount_paid,
        coalesce(payment_totals.amount_paid, 0) as expected_amount_paid

    from orders
    left join payment_totals
        on orders.order_id = payment_totals.order_id

)

select * from final
where {{ amounts_differ('amount_paid', 'expected_amount_paid') }}
