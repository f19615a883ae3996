with

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

final as (

    select
        payments.payment_id,
        payments.order_id,
        orders.customer_id,
        cast(payments.payment_method as {{ dbt.type_string() }}) as payment_method,
        cast(payments.payment_status as {{ dbt.type_string() }}) as payment_status,
        cast(orders.currency_code as {{ dbt.type_string() }}) as currency_code,
        cast(payments.amount as numeric(18, 2)) as amount,
        payments.created_at as paid_at,
        cast({{ dbt.date_trunc('day', 'payments.created_at') }} as date) as payment_date,
        payments.updated_at

    from payments
    -- Payments of soft-deleted orders go with their order.
    inner join orders
        on payments.order_id = orders.order_id
    where not orders.is_deleted

)

select * from final
