{#- Order logic shared by the intermediate models (over all of staging) and the incremental `fct_orders` (over
    the orders an incremental run recomputes): one definition, so both give the same numbers. Each macro is a
    query usable as the body of a CTE; its arguments are relations or CTE names. -#}

{#- Per order, what was ordered (from its items) and what was paid (from succeeded payments). An order with
    neither has no row; one with payments and no items yet (they arrive late) has its amount paid and null item
    figures: driven by the items alone, it read 0 paid. -#}
{% macro order_amounts(order_items, payments) -%}
    with

    item_totals as (

        select
            order_id,
            count(*) as item_count,
            sum(quantity) as unit_count,
            sum(quantity * unit_price) as order_total

        from {{ order_items }}
        group by order_id

    ),

    payment_totals as (

        select
            order_id,
            sum(case when payment_status = 'succeeded' then amount else 0 end) as amount_paid

        from {{ payments }}
        group by order_id

    )

    select
        coalesce(item_totals.order_id, payment_totals.order_id) as order_id,
        item_totals.item_count,
        item_totals.unit_count,
        item_totals.order_total,
        coalesce(payment_totals.amount_paid, 0) as amount_paid

    from item_totals
    full outer join payment_totals
        on item_totals.order_id = payment_totals.order_id
{%- endmacro %}

{#- Per order, the rate that converts its amounts to US dollars. A day's rate is published the next morning:
    an order takes the latest rate of its currency on or before its day; orders older than every known rate
    have no row. -#}
{% macro order_usd_rates(orders, exchange_rates) -%}
    with

    latest_rate_dates as (

        select
            orders.order_id,
            orders.currency_code,
            max(exchange_rates.rate_date) as rate_date

        from {{ orders }} as orders
        inner join {{ exchange_rates }} as exchange_rates
            on
                orders.currency_code = exchange_rates.currency_code
                and exchange_rates.rate_date <= cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date)
        group by orders.order_id, orders.currency_code

    )

    select
        latest_rate_dates.order_id,
        latest_rate_dates.rate_date,
        exchange_rates.usd_per_unit

    from latest_rate_dates
    inner join {{ exchange_rates }} as exchange_rates
        on
            latest_rate_dates.currency_code = exchange_rates.currency_code
            and latest_rate_dates.rate_date = exchange_rates.rate_date
{%- endmacro %}
