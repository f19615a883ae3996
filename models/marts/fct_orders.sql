{#- Incremental (README "Transformations / Incremental marts"): a run recomputes only the orders whose row, items,
    payments or USD rate changed since the newest `_loaded_at`, and replaces them; orders that no longer
    qualify (soft-deleted) are removed. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='order_id',
    on_schema_change='append_new_columns'
) }}
-- Read directly by incremental runs (full builds read them through the intermediate models):
-- depends_on: {{ ref('stg_shop__order_items') }}
-- depends_on: {{ ref('stg_shop__payments') }}
-- depends_on: {{ ref('stg_fx__exchange_rates') }}
-- Reads the stored rows of `fct_order_items` and `fct_payments` (built after it) without ref(): see
-- `orders_left_by_changed_rows()`.
-- Not read: an order in a currency the seed lacks fails a test of `stg_shop__orders` and `currencies`, and dbt holds
-- back only what is downstream of both, so the marts keep their last build (README "Severity policy").
-- depends_on: {{ ref('currencies') }}

with

orders as {{ inlined() }} (

    select * from {{ ref('stg_shop__orders') }}

),

order_statuses as {{ inlined() }} (

    select * from {{ ref('order_statuses') }}

),

{% if is_incremental() %}

order_items as {{ inlined() }} (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as {{ inlined() }} (

    select * from {{ ref('stg_shop__payments') }}

),

exchange_rates as {{ inlined() }} (

    select * from {{ ref('stg_fx__exchange_rates') }}

),

-- A new or revised rate changes the rate of the orders of its currency from its day up to the next known rate.
changed_rate_ranges as (

    select
        changed_rates.currency_code,
        changed_rates.rate_date,
        min(later_rates.rate_date) as next_rate_date

    from exchange_rates as changed_rates
    left join exchange_rates as later_rates
        on
            changed_rates.currency_code = later_rates.currency_code
            and later_rates.rate_date > changed_rates.rate_date
    where {{ changed_since_last_build('changed_rates._staged_at') }}
    group by changed_rates.currency_code, changed_rates.rate_date

),

affected as (

    select order_id from orders
    where {{ changed_since_last_build() }}

    union

    select order_id from order_items
    where {{ changed_since_last_build() }}

    union

    select order_id from payments
    where {{ changed_since_last_build() }}

    union

    -- The orders changed lines and payments left: their stored rows still name them.
    {{ orders_left_by_changed_rows('order_items', 'fct_order_items', 'order_item_id') }}

    union

    {{ orders_left_by_changed_rows('payments', 'fct_payments', 'payment_id') }}

    union

    select orders.order_id
    from orders
    inner join changed_rate_ranges
        on
            orders.currency_code = changed_rate_ranges.currency_code
            and cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) >= changed_rate_ranges.rate_date
            and (
                changed_rate_ranges.next_rate_date is null
                or cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) < changed_rate_ranges.next_rate_date
            )

),

scoped_order_items as (

    select * from order_items
    where order_id in (select order_id from affected)

),

scoped_payments as (

    select * from payments
    where order_id in (select order_id from affected)

),

{% endif %}

scoped_orders as (

    select * from orders
    {% if is_incremental() %}
        where order_id in (select order_id from affected)
    {% endif %}

),

-- Full builds read the intermediate models; incremental runs apply the same macros (macros/orders.sql) to the
-- affected orders only.
order_amounts as (

    {% if is_incremental() -%}
        {{ order_amounts('scoped_order_items', 'scoped_payments') }}
    {%- else -%}
        select * from {{ ref('int_orders__amounts') }}
    {%- endif %}

),

usd_rates as (

    {% if is_incremental() -%}
        {{ order_usd_rates('scoped_orders', 'exchange_rates') }}
    {%- else -%}
        select * from {{ ref('int_orders__usd_rates') }}
    {%- endif %}

),

live_orders as (

    select
        scoped_orders.order_id,
        scoped_orders.customer_id,
        cast(scoped_orders.order_status as {{ dbt.type_string() }}) as order_status,
        cast(order_statuses.status_group as {{ dbt.type_string() }}) as status_group,
        cast(scoped_orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        scoped_orders.ordered_at,
        cast({{ dbt.date_trunc('day', 'scoped_orders.ordered_at') }} as date) as order_date,
        cast(coalesce(order_amounts.item_count, 0) as {{ dbt.type_int() }}) as item_count,
        cast(coalesce(order_amounts.unit_count, 0) as {{ dbt.type_int() }}) as unit_count,
        cast(coalesce(order_amounts.order_total, 0) as numeric(18, 2)) as order_total,
        cast(coalesce(order_amounts.amount_paid, 0) as numeric(18, 2)) as amount_paid,
        cast(usd_rates.usd_per_unit as numeric(18, 9)) as usd_per_unit,
        cast(
            round(coalesce(order_amounts.order_total, 0) * usd_rates.usd_per_unit, 2) as numeric(18, 2)
        ) as order_total_usd,
        coalesce(order_statuses.is_revenue, false) as is_revenue,
        scoped_orders.updated_at,
        {{ run_timestamp() }} as _loaded_at

    from scoped_orders
    left join order_amounts
        on scoped_orders.order_id = order_amounts.order_id
    left join usd_rates
        on scoped_orders.order_id = usd_rates.order_id
    left join order_statuses
        on scoped_orders.order_status = order_statuses.order_status
    where not scoped_orders.is_deleted

),

final as (

    {% if is_incremental() -%}
        {{ rows_or_tombstones('affected', 'live_orders', 'order_id') }}
    {%- else -%}
        select * from live_orders
    {%- endif %}

)

select * from final
