with

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        product_id,
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(product_name as {{ dbt.type_string() }}) as product_name,
        cast(category as {{ dbt.type_string() }}) as category,
        cast(unit_price as numeric(18, 2)) as unit_price,
        created_at,
        updated_at,
        is_deleted

    from products

)

select * from final
