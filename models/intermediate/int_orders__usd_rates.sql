with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

exchange_rates as (

    select * from {{ ref('stg_fx__exchange_rates') }}

),

-- A day's rate is published the next morning: an order takes the latest rate on or before its day.
latest_rate_dates as (

    select
        orders.order_id,
        orders.currency_code,
        max(exchange_rates.rate_date) as rate_date

    from orders
    inner join exchange_rates
        on
            orders.currency_code = exchange_rates.currency_code
            and exchange_rates.rate_date <= cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date)
    group by orders.order_id, orders.currency_code

),

final as (

    select
        latest_rate_dates.order_id,
        latest_rate_dates.rate_date,
        exchange_rates.usd_per_unit

    from latest_rate_dates
    inner join exchange_rates
        on
            latest_rate_dates.currency_code = exchange_rates.currency_code
            and latest_rate_dates.rate_date = exchange_rates.rate_date

)

select * from final
