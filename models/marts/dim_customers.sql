{#- Incremental (README "Transformations / Incremental marts"): a run recomputes the customers whose row changed,
    who have an order `fct_orders` recomputed since the newest `_loaded_at`, or who lost an order (a deleted or
    reassigned order leaves no row to point at them, so their stored order count no longer matches). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_keys',
    unique_key='customer_id',
    on_schema_change='append_new_columns'
) }}

with

customers as {{ inlined() }} (

    select * from {{ ref('stg_shop__customers') }}

),

countries as {{ inlined() }} (

    select * from {{ ref('countries') }}

),

orders as {{ inlined() }} (

    select * from {{ ref('fct_orders') }}

),

{% if is_incremental() %}

order_counts as (

    select
        customer_id,
        count(*) as order_count

    from orders
    group by customer_id

),

affected as (

    select customer_id from customers
    where {{ changed_since_last_build() }}

    union

    select customer_id from orders
    where {{ changed_since_last_build('_loaded_at') }}

    union

    select built.customer_id
    from {{ this }} as built
    left join order_counts
        on built.customer_id = order_counts.customer_id
    where built.order_count != coalesce(order_counts.order_count, 0)

),

{% endif %}

scoped_customers as (

    select * from customers
    {% if is_incremental() %}
        where customer_id in (select customer_id from affected)
    {% endif %}

),

scoped_orders as (

    select * from orders
    {% if is_incremental() %}
        where customer_id in (select customer_id from affected)
    {% endif %}

),

customer_orders as (

    select
        customer_id,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value,
        sum(case when is_revenue then order_total_usd else 0 end) as lifetime_value_usd,
        -- A customer who moved country has orders in two currencies: their sum would be in neither.
        count(distinct case when is_revenue then currency_code end) as revenue_currency_count,
        min(case when is_revenue then currency_code end) as revenue_currency_code

    from scoped_orders
    group by customer_id

),

all_customers as (

    select
        scoped_customers.customer_id,
        cast(scoped_customers.first_name as {{ dbt.type_string() }}) as first_name,
        -- Personal data: only a one-way hash of the address and the last two digits of the phone leave staging.
        cast({{ dbt.hash('scoped_customers.email') }} as {{ dbt.type_string() }}) as email_hash,
        cast(
            case
                when scoped_customers.phone is not null
                    then {{ dbt.concat(["'***'", dbt.right('scoped_customers.phone', '2')]) }}
            end as {{ dbt.type_string() }}
        ) as phone_masked,
        cast(scoped_customers.country_code as {{ dbt.type_string() }}) as country_code,
        cast(countries.country_name as {{ dbt.type_string() }}) as country_name,
        cast(countries.region as {{ dbt.type_string() }}) as region,
        scoped_customers.created_at,
        customer_orders.first_ordered_at,
        customer_orders.last_ordered_at,
        cast(coalesce(customer_orders.order_count, 0) as {{ dbt.type_int() }}) as order_count,
        cast(
            case
                when customer_orders.revenue_currency_count > 1 then null
                else coalesce(customer_orders.lifetime_value, 0)
            end as numeric(18, 2)
        ) as lifetime_value,
        cast(
            case when customer_orders.revenue_currency_count = 1 then customer_orders.revenue_currency_code end
            as {{ dbt.type_string() }}
        ) as lifetime_value_currency_code,
        cast(coalesce(customer_orders.lifetime_value_usd, 0) as numeric(18, 2)) as lifetime_value_usd,
        scoped_customers.is_deleted,
        scoped_customers.updated_at,
        {{ run_timestamp() }} as _loaded_at

    from scoped_customers
    left join countries
        on scoped_customers.country_code = countries.country_code
    left join customer_orders
        on scoped_customers.customer_id = customer_orders.customer_id

),

final as (

    {% if is_incremental() -%}
        {{ rows_or_tombstones('affected', 'all_customers', 'customer_id') }}
    {%- else -%}
        select * from all_customers
    {%- endif %}

)

select * from final
