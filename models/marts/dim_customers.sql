with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

countries as (

    select * from {{ ref('countries') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_orders as (

    select
        customer_id,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value,
        sum(case when is_revenue then order_total_usd else 0 end) as lifetime_value_usd

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        cast(customers.first_name as {{ dbt.type_string() }}) as first_name,
        -- Personal data: only a one-way hash of the address and the last two digits of the phone leave staging.
        cast({{ dbt.hash('customers.email') }} as {{ dbt.type_string() }}) as email_hash,
        cast(
            case
                when customers.phone is not null
                    then {{ dbt.concat(["'***'", dbt.right('customers.phone', '2')]) }}
            end as {{ dbt.type_string() }}
        ) as phone_masked,
        cast(customers.country_code as {{ dbt.type_string() }}) as country_code,
        cast(countries.country_name as {{ dbt.type_string() }}) as country_name,
        cast(countries.region as {{ dbt.type_string() }}) as region,
        customers.created_at,
        customer_orders.first_ordered_at,
        customer_orders.last_ordered_at,
        cast(coalesce(customer_orders.order_count, 0) as {{ dbt.type_int() }}) as order_count,
        cast(coalesce(customer_orders.lifetime_value, 0) as numeric(18, 2)) as lifetime_value,
        cast(customer_orders.lifetime_value_usd as numeric(18, 2)) as lifetime_value_usd,
        customers.is_deleted,
        customers.updated_at

    from customers
    left join countries
        on customers.country_code = countries.country_code
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
