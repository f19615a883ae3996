{{ config(unique_key='order_item_id') }}

with

source as (

    select * from {{ source('shop', 'order_items') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        cast(order_item_id as {{ dbt.type_bigint() }}) as order_item_id,
        cast(order_id as {{ dbt.type_bigint() }}) as order_id,
        cast(product_id as {{ dbt.type_bigint() }}) as product_id,
        cast(quantity as {{ dbt.type_int() }}) as quantity,
        cast(unit_price as {{ dbt.type_numeric() }}) as unit_price,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _extracted_at,
        _dlt_load_id,
        -- When dbt merged this version (macros/stamps.sql): incremental marts recompute what changed after it.
        {{ run_timestamp() }} as _staged_at

    from source

),

deduplicated as (

    {{ deduplicate('renamed', 'order_item_id', in_byte_order('_dlt_load_id') ~ ' desc, updated_at desc') }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'order_item_id') }}

)

select * from final
