-- Reconciliation within marts: each day and currency of agg_daily_revenue holds what fct_orders sums to for it,
-- on every column (an order without a known rate adds 0 US dollars), and no day of fct_orders is missing.
-- Returns the days and currencies that disagree.
with

daily_revenue as (

    select * from {{ ref('agg_daily_revenue') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

expected as (

    select
        order_date,
        currency_code,
        count(*) as order_count,
        sum(case when is_revenue then 1 else 0 end) as revenue_order_count,
        sum(case when is_revenue then unit_count else 0 end) as units_sold,
        sum(case when is_revenue then order_total else 0 end) as revenue,
        sum(case when is_revenue then coalesce(order_total_usd, 0) else 0 end) as revenue_usd,
        sum(amount_paid) as amount_paid

    from orders
    group by order_date, currency_code

),

final as (

    select
        coalesce(daily_revenue.order_date, expected.order_date) as order_date,
        coalesce(daily_revenue.currency_code, expected.currency_code) as currency_code,
        daily_revenue.order_count,
        expected.order_count as expected_order_count,
        daily_revenue.revenue_order_count,
        expected.revenue_order_count as expected_revenue_order_count,
        daily_revenue.units_sold,
        expected.units_sold as expected_units_sold,
        daily_revenue.revenue,
        expected.revenue as expected_revenue,
        daily_revenue.revenue_usd,
        expected.revenue_usd as expected_revenue_usd,
        daily_revenue.amount_paid,
        expected.amount_paid as expected_amount_paid

    from daily_revenue
    full outer join expected
        on
            daily_revenue.order_date = expected.order_date
            and daily_revenue.currency_code = expected.currency_code

)

select * from final
where
    order_count is null
    or expected_order_count is null
    or order_count is distinct from expected_order_count
    or revenue_order_count is distinct from expected_revenue_order_count
    or units_sold is distinct from expected_units_sold
    or {{ amounts_differ('revenue', 'expected_revenue') }}
    or revenue_usd is null
    or {{ amounts_differ('revenue_usd', 'expected_revenue_usd') }}
    or {{ amounts_differ('amount_paid', 'expected_amount_paid') }}
