with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

item_totals as (

    select
        order_id,
        count(*) as item_count,
        sum(quantity) as unit_count,
        sum(quantity * unit_price) as order_total

    from order_items
    group by order_id

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
        item_totals.order_id,
        item_totals.item_count,
        item_totals.unit_count,
        item_totals.order_total,
        coalesce(payment_totals.amount_paid, 0) as amount_paid

    from item_totals
    left join payment_totals
        on item_totals.order_id = payment_totals.order_id

)

select * from final
