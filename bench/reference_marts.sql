-- The benchmark's plain-SQL reference: the same staging tables, order amounts and marts (fct_orders,
-- dim_customers) as the dbt project builds, written by hand for DuckDB, into schema bench_ref.
-- Same logic, same types (dbt-duckdb: type_int = integer, type_numeric = numeric(28,6), type_timestamp = timestamp).
create schema if not exists bench_ref;

create or replace table bench_ref.stg_customers as
select distinct on (customer_id)
    cast(customer_id as integer) as customer_id, first_name, last_name, lower(email) as email, phone,
    upper(country_code) as country_code, cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at, cast(deleted_at as timestamp) as deleted_at,
    deleted_at is not null as is_deleted, _extracted_at, _dlt_load_id
from raw_shop.customers
order by customer_id, updated_at desc, _dlt_load_id desc;

create or replace table bench_ref.stg_products as
select distinct on (product_id)
    cast(product_id as integer) as product_id, sku, product_name, category,
    cast(unit_price as numeric(28, 6)) as unit_price, cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at, cast(deleted_at as timestamp) as deleted_at,
    deleted_at is not null as is_deleted, _extracted_at, _dlt_load_id
from raw_shop.products
order by product_id, updated_at desc, _dlt_load_id desc;

create or replace table bench_ref.stg_orders as
select distinct on (order_id)
    cast(order_id as integer) as order_id, cast(customer_id as integer) as customer_id,
    lower(status) as order_status, upper(currency) as currency_code, cast(ordered_at as timestamp) as ordered_at,
    cast(created_at as timestamp) as created_at, cast(updated_at as timestamp) as updated_at,
    cast(deleted_at as timestamp) as deleted_at, deleted_at is not null as is_deleted, _extracted_at, _dlt_load_id
from raw_shop.orders
order by order_id, updated_at desc, _dlt_load_id desc;

create or replace table bench_ref.stg_order_items as
select distinct on (order_item_id)
    cast(order_item_id as integer) as order_item_id, cast(order_id as integer) as order_id,
    cast(product_id as integer) as product_id, cast(quantity as integer) as quantity,
    cast(unit_price as numeric(28, 6)) as unit_price, cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at, _extracted_at, _dlt_load_id
from raw_shop.order_items
order by order_item_id, updated_at desc, _dlt_load_id desc;

create or replace table bench_ref.stg_payments as
select distinct on (payment_id)
    cast(payment_id as integer) as payment_id, cast(order_id as integer) as order_id,
    lower(payment_method) as payment_method, lower(status) as payment_status,
    cast(amount as numeric(28, 6)) as amount, cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at, _extracted_at, _dlt_load_id
from raw_shop.payments
order by payment_id, updated_at desc, _dlt_load_id desc;

create or replace view bench_ref.order_amounts as
with item_totals as (
    select order_id, count(*) as item_count, sum(quantity) as unit_count, sum(quantity * unit_price) as order_total
    from bench_ref.stg_order_items
    group by order_id
),
payment_totals as (
    select order_id, sum(case when payment_status = 'succeeded' then amount else 0 end) as amount_paid
    from bench_ref.stg_payments
    group by order_id
)
select i.order_id, i.item_count, i.unit_count, i.order_total, coalesce(p.amount_paid, 0) as amount_paid
from item_totals as i
left join payment_totals as p on i.order_id = p.order_id;

create or replace table bench_ref.fct_orders as
select
    o.order_id, o.customer_id, o.order_status, o.currency_code, o.ordered_at,
    cast(date_trunc('day', o.ordered_at) as date) as order_date,
    coalesce(a.item_count, 0) as item_count, coalesce(a.unit_count, 0) as unit_count,
    coalesce(a.order_total, 0) as order_total, coalesce(a.amount_paid, 0) as amount_paid,
    o.order_status in ('paid', 'shipped', 'completed') as is_revenue, o.updated_at
from bench_ref.stg_orders as o
left join bench_ref.order_amounts as a on o.order_id = a.order_id
where not o.is_deleted;

create or replace table bench_ref.dim_customers as
with customer_orders as (
    select
        customer_id, min(ordered_at) as first_ordered_at, max(ordered_at) as last_ordered_at, count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value
    from bench_ref.fct_orders
    group by customer_id
)
select
    c.customer_id, c.first_name, md5(cast(c.email as varchar)) as email_hash, c.country_code, c.created_at,
    co.first_ordered_at, co.last_ordered_at, coalesce(co.order_count, 0) as order_count,
    coalesce(co.lifetime_value, 0) as lifetime_value, c.updated_at
from bench_ref.stg_customers as c
left join customer_orders as co on c.customer_id = co.customer_id
where not c.is_deleted;
