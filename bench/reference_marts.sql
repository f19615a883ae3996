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
select
    coalesce(i.order_id, p.order_id) as order_id, i.item_count, i.unit_count, i.order_total,
    coalesce(p.amount_paid, 0) as amount_paid
from item_totals as i
full outer join payment_totals as p on i.order_id = p.order_id;

-- Exchange rates are not part of the benchmark's sources: the reference reads dbt's (possibly empty) staging table.
create or replace view bench_ref.order_usd_rates as
with latest_rate_dates as (
    select o.order_id, o.currency_code, max(r.rate_date) as rate_date
    from bench_ref.stg_orders as o
    inner join staging.stg_fx__exchange_rates as r
        on o.currency_code = r.currency_code and r.rate_date <= cast(date_trunc('day', o.ordered_at) as date)
    group by o.order_id, o.currency_code
)
select l.order_id, r.usd_per_unit
from latest_rate_dates as l
inner join staging.stg_fx__exchange_rates as r on l.currency_code = r.currency_code and l.rate_date = r.rate_date;

create or replace view bench_ref.order_statuses as
select * from (values
    ('placed', 'open', false), ('paid', 'open', true), ('shipped', 'open', true),
    ('completed', 'closed', true), ('cancelled', 'closed', false), ('returned', 'closed', false)
) as statuses (order_status, status_group, is_revenue);

create or replace table bench_ref.fct_orders as
select
    o.order_id, o.customer_id, o.order_status, s.status_group, o.currency_code, o.ordered_at,
    cast(date_trunc('day', o.ordered_at) as date) as order_date,
    cast(coalesce(a.item_count, 0) as integer) as item_count, cast(coalesce(a.unit_count, 0) as integer) as unit_count,
    cast(coalesce(a.order_total, 0) as numeric(18, 2)) as order_total,
    cast(coalesce(a.amount_paid, 0) as numeric(18, 2)) as amount_paid,
    cast(r.usd_per_unit as numeric(18, 9)) as usd_per_unit,
    cast(round(coalesce(a.order_total, 0) * r.usd_per_unit, 2) as numeric(18, 2)) as order_total_usd,
    coalesce(s.is_revenue, false) as is_revenue, o.updated_at
from bench_ref.stg_orders as o
left join bench_ref.order_amounts as a on o.order_id = a.order_id
left join bench_ref.order_usd_rates as r on o.order_id = r.order_id
left join bench_ref.order_statuses as s on o.order_status = s.order_status
where not o.is_deleted;

create or replace table bench_ref.dim_customers as
with customer_orders as (
    select
        customer_id, min(ordered_at) as first_ordered_at, max(ordered_at) as last_ordered_at, count(*) as order_count,
        sum(case when is_revenue then order_total else 0 end) as lifetime_value,
        sum(case when is_revenue then order_total_usd else 0 end) as lifetime_value_usd,
        count(distinct case when is_revenue then currency_code end) as currency_count,
        min(case when is_revenue then currency_code end) as currency_code
    from bench_ref.fct_orders
    group by customer_id
)
select
    c.customer_id, c.first_name, md5(cast(c.email as varchar)) as email_hash,
    case when c.phone is not null then '***' || right(c.phone, 2) end as phone_masked,
    c.country_code, k.country_name, k.region, c.created_at,
    co.first_ordered_at, co.last_ordered_at, cast(coalesce(co.order_count, 0) as integer) as order_count,
    cast(case when co.currency_count > 1 then null else coalesce(co.lifetime_value, 0) end as numeric(18, 2))
        as lifetime_value,
    case when co.currency_count = 1 then co.currency_code end as lifetime_value_currency_code,
    cast(coalesce(co.lifetime_value_usd, 0) as numeric(18, 2)) as lifetime_value_usd, c.is_deleted, c.updated_at
from bench_ref.stg_customers as c
left join seeds.countries as k on c.country_code = k.country_code
left join customer_orders as co on c.customer_id = co.customer_id;
