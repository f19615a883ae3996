with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

exchange_rates as (

    select * from {{ ref('stg_fx__exchange_rates') }}

),

-- A day's rate is published the next morning: an order takes the latest rate on or before its day
-- (macros/orders.sql: the same logic `fct_orders` applies to the orders an incremental run recomputes).
final as (

    {{ order_usd_rates('orders', 'exchange_rates') }}

)

select * from final
