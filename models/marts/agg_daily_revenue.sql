with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        order_date,
        currency_code,
        cast(count(*) as {{ dbt.type_int() }}) as order_count,
        cast(sum(case when is_revenue then 1 else 0 end) as {{ dbt.type_int() }}) as revenue_order_count,
        cast(sum(case when is_revenue then unit_count else 0 end) as {{ dbt.type_int() }}) as units_sold,
        cast(sum(case when is_revenue then order_total else 0 end) as numeric(18, 2)) as revenue,
        cast(sum(case when is_revenue then order_total_usd else 0 end) as numeric(18, 2)) as revenue_usd,
        cast(sum(amount_paid) as numeric(18, 2)) as amount_paid

    from orders
    group by order_date, currency_code

)

select * from final
