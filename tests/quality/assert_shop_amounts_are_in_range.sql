-- Ranges on staged money and quantities: quantities at least 1, prices and payments never negative.
-- Returns one row per offending record.
with

order_items as (

    select * from {{ ref('stg_shop__order_items') }}

),

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

violations as (

    select
        'stg_shop__order_items' as model_name,
        order_item_id as record_id,
        'quantity' as column_name,
        cast(quantity as {{ dbt.type_numeric() }}) as column_value
    from order_items
    where quantity < 1

    union all

    select
        'stg_shop__order_items' as model_name,
        order_item_id as record_id,
        'unit_price' as column_name,
        unit_price as column_value
    from order_items
    where unit_price < 0

    union all

    select
        'stg_shop__payments' as model_name,
        payment_id as record_id,
        'amount' as column_name,
        amount as column_value
    from payments
    where amount < 0

    union all

    select
        'stg_shop__products' as model_name,
        product_id as record_id,
        'unit_price' as column_name,
        unit_price as column_value
    from products
    where unit_price < 0

)

select * from violations
