{{ config(unique_key='product_id') }}

with

source as (

    select * from {{ source('shop', 'products') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        cast(product_id as {{ dbt.type_bigint() }}) as product_id,
        sku,
        product_name,
        category,
        cast(unit_price as {{ dbt.type_numeric() }}) as unit_price,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(deleted_at as {{ dbt.type_timestamp() }}) as deleted_at,
        deleted_at is not null as is_deleted,
        _extracted_at,
        _dlt_load_id,
        -- When dbt merged this version (macros/stamps.sql): incremental marts recompute what changed after it.
        {{ run_timestamp() }} as _staged_at

    from source

),

deduplicated as (

    {{ deduplicate('renamed', 'product_id', in_byte_order('_dlt_load_id') ~ ' desc, updated_at desc') }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'product_id') }}

)

select * from final
