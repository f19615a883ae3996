{#- Incremental (README "Transformations / Incremental marts"): a run recomputes the lines that changed since the
    newest `_loaded_at` and the lines of orders whose customer, currency or day changed since (compared with the
    stored line); lines of orders soft-deleted since are removed. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='order_item_id',
    on_schema_change='append_new_columns'
) }}
-- After fct_orders, which reads this model's stored rows to find the orders a moved row left:
-- depends_on: {{ ref('fct_orders') }}

with

order_items as {{ inlined() }} (

    select * from {{ ref('stg_shop__order_items') }}

),

orders as {{ inlined() }} (

    select * from {{ ref('stg_shop__orders') }}

),

{% if is_incremental() %}

affected as (

    select order_item_id from order_items
    where {{ changed_since_last_build() }}

    union

    -- Lines of changed orders whose copied order columns changed or whose order is deleted.
    {{ keys_of_rows_of_changed_orders('order_items', 'order_item_id', {
        'customer_id': 'orders.customer_id',
        'currency_code': 'orders.currency_code',
        'order_date': 'cast(' ~ dbt.date_trunc('day', 'orders.ordered_at') ~ ' as date)',
    }) }}

),

{% endif %}

scoped_order_items as (

    select * from order_items
    {% if is_incremental() %}
        where order_item_id in (select order_item_id from affected)
    {% endif %}

),

live_order_items as (

    select
        scoped_order_items.order_item_id,
        scoped_order_items.order_id,
        scoped_order_items.product_id,
        orders.customer_id,
        cast(orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        cast({{ dbt.date_trunc('day', 'orders.ordered_at') }} as date) as order_date,
        scoped_order_items.quantity,
        cast(scoped_order_items.unit_price as numeric(18, 2)) as unit_price,
        cast(scoped_order_items.quantity * scoped_order_items.unit_price as numeric(18, 2)) as line_total,
        scoped_order_items.updated_at,
        {{ run_timestamp() }} as _loaded_at

    from scoped_order_items
    -- Lines of soft-deleted orders go with their order.
    inner join orders
        on scoped_order_items.order_id = orders.order_id
    where not orders.is_deleted

),

final as (

    {% if is_incremental() -%}
        {{ rows_or_tombstones('affected', 'live_order_items', 'order_item_id') }}
    {%- else -%}
        select * from live_order_items
    {%- endif %}

)

select * from final
