{#- Incremental (README "Transformations / Incremental marts"): a run recomputes the payments that changed since
    the newest `_loaded_at` and the payments of orders whose customer or currency changed since (compared with
    the stored payment); payments of orders soft-deleted since are removed. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='payment_id',
    on_schema_change='append_new_columns'
) }}
-- After fct_orders, which reads this model's stored rows to find the orders a moved row left:
-- depends_on: {{ ref('fct_orders') }}

with

payments as {{ inlined() }} (

    select * from {{ ref('stg_shop__payments') }}

),

orders as {{ inlined() }} (

    select * from {{ ref('stg_shop__orders') }}

),

{% if is_incremental() %}

affected as (

    select payment_id from payments
    where {{ changed_since_last_build() }}

    union

    -- Payments of changed orders whose copied order columns changed or whose order is deleted.
    {{ keys_of_rows_of_changed_orders('payments', 'payment_id', {
        'customer_id': 'orders.customer_id',
        'currency_code': 'orders.currency_code',
    }) }}

),

{% endif %}

scoped_payments as (

    select * from payments
    {% if is_incremental() %}
        where payment_id in (select payment_id from affected)
    {% endif %}

),

live_payments as (

    select
        scoped_payments.payment_id,
        scoped_payments.order_id,
        orders.customer_id,
        cast(scoped_payments.payment_method as {{ dbt.type_string() }}) as payment_method,
        cast(scoped_payments.payment_status as {{ dbt.type_string() }}) as payment_status,
        cast(orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        cast(scoped_payments.amount as numeric(18, 2)) as amount,
        scoped_payments.created_at as paid_at,
        cast({{ dbt.date_trunc('day', 'scoped_payments.created_at') }} as date) as payment_date,
        scoped_payments.updated_at,
        {{ run_timestamp() }} as _loaded_at

    from scoped_payments
    -- Payments of soft-deleted orders go with their order.
    inner join orders
        on scoped_payments.order_id = orders.order_id
    where not orders.is_deleted

),

final as (

    {% if is_incremental() -%}
        {{ rows_or_tombstones('affected', 'live_payments', 'payment_id') }}
    {%- else -%}
        select * from live_payments
    {%- endif %}

)

select * from final
