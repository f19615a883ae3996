with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

-- macros/orders.sql: the same logic `fct_orders` applies to the orders an incremental run recomputes.
final as (

    {{ order_amounts('order_items', 'payments') }}

)

select * from final
