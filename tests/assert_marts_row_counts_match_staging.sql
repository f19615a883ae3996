-- Reconciliation, marts against staging: one fct_orders row per live staged order and one dim_customers row per
-- staged customer, no more and no fewer. Returns a row per entity whose counts differ.
with

staged_orders as (

    select count(*) as row_count from {{ ref('stg_shop__orders') }}
    where not is_deleted

),

mart_orders as (

    select count(*) as row_count from {{ ref('fct_orders') }}

),

-- Soft-deleted customers stay in dim_customers, flagged: every staged customer counts.
staged_customers as (

    select count(*) as row_count from {{ ref('stg_shop__customers') }}

),

mart_customers as (

    select count(*) as row_count from {{ ref('dim_customers') }}

),

final as (

    select
        'orders' as entity,
        staged_orders.row_count as staging_rows,
        mart_orders.row_count as mart_rows
    from staged_orders
    cross join mart_orders

    union all

    select
        'customers' as entity,
        staged_customers.row_count as staging_rows,
        mart_customers.row_count as mart_rows
    from staged_customers
    cross join mart_customers

)

select * from final
where staging_rows is distinct from mart_rows
