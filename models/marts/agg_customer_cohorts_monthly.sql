with

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_months as (

    select distinct
        customer_id,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as activity_month

    from orders

),

cohorts as (

    select
        customer_id,
        min(activity_month) as cohort_month

    from customer_months
    group by customer_id

),

cohort_sizes as (

    select
        cohort_month,
        count(*) as cohort_size

    from cohorts
    group by cohort_month

),

-- Every month with any activity, so a cohort's quiet months show up as zero instead of going missing.
activity_months as (

    select distinct activity_month from customer_months

),

cohort_activity as (

    select
        cohorts.cohort_month,
        customer_months.activity_month,
        count(*) as active_customers

    from customer_months
    inner join cohorts
        on customer_months.customer_id = cohorts.customer_id
    group by cohorts.cohort_month, customer_months.activity_month

),

final as (

    select
        cohort_sizes.cohort_month,
        activity_months.activity_month,
        cast(
            {{ dbt.datediff('cohort_sizes.cohort_month', 'activity_months.activity_month', 'month') }}
            as {{ dbt.type_int() }}
        ) as months_since_first_order,
        cast(cohort_sizes.cohort_size as {{ dbt.type_int() }}) as cohort_size,
        cast(coalesce(cohort_activity.active_customers, 0) as {{ dbt.type_int() }}) as active_customers,
        -- Both engines divide IEEE doubles the same way, so the ratio is bit-identical on DuckDB and PostgreSQL.
        cast(coalesce(cohort_activity.active_customers, 0) as double precision)
        / cast(cohort_sizes.cohort_size as double precision) as retention_rate

    from cohort_sizes
    inner join activity_months
        on cohort_sizes.cohort_month <= activity_months.activity_month
    left join cohort_activity
        on
            cohort_sizes.cohort_month = cohort_activity.cohort_month
            and activity_months.activity_month = cohort_activity.activity_month

)

select * from final
