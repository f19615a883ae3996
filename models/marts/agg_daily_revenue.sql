{#- Incremental (README "Transformations / Incremental marts"): a run recomputes whole days, the days of orders
    `fct_orders` recomputed since the newest `_loaded_at` and the days that lost an order (deleted, or moved to
    another day: the stored order count no longer matches), and replaces every row of those days. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='order_date',
    on_schema_change='append_new_columns'
) }}

with

orders as {{ inlined() }} (

    select * from {{ ref('fct_orders') }}

),

{% if is_incremental() %}

day_counts as (

    select
        order_date,
        count(*) as order_count

    from orders
    group by order_date

),

built_day_counts as (

    select
        order_date,
        sum(order_count) as order_count

    from {{ this }}
    group by order_date

),

affected as (

    select order_date from orders
    where {{ changed_since_last_build('_loaded_at') }}

    union

    select built_day_counts.order_date
    from built_day_counts
    left join day_counts
        on built_day_counts.order_date = day_counts.order_date
    where built_day_counts.order_count != coalesce(day_counts.order_count, 0)

),

{% endif %}

scoped_orders as (

    select * from orders
    {% if is_incremental() %}
        where order_date in (select order_date from affected)
    {% endif %}

),

daily_revenue as (

    select
        order_date,
        currency_code,
        cast(count(*) as {{ dbt.type_int() }}) as order_count,
        cast(sum(case when is_revenue then 1 else 0 end) as {{ dbt.type_int() }}) as revenue_order_count,
        cast(sum(case when is_revenue then unit_count else 0 end) as {{ dbt.type_int() }}) as units_sold,
        cast(sum(case when is_revenue then order_total else 0 end) as numeric(18, 2)) as revenue,
        -- An order without a known rate adds 0, as documented: a day whose revenue orders all lack one was null.
        cast(sum(case when is_revenue then coalesce(order_total_usd, 0) else 0 end) as numeric(18, 2)) as revenue_usd,
        cast(sum(amount_paid) as numeric(18, 2)) as amount_paid,
        {{ run_timestamp() }} as _loaded_at

    from scoped_orders
    group by order_date, currency_code

),

final as (

    {% if is_incremental() -%}
        {{ rows_or_tombstones('affected', 'daily_revenue', 'order_date') }}
    {%- else -%}
        select * from daily_revenue
    {%- endif %}

)

select * from final
