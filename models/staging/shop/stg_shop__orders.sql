{{ config(unique_key='order_id') }}

with

source as (

    select * from {{ source('shop', 'orders') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        cast(order_id as {{ dbt.type_bigint() }}) as order_id,
        cast(customer_id as {{ dbt.type_bigint() }}) as customer_id,
        lower(status) as order_status,
        upper(currency) as currency_code,
        cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
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

    {{ deduplicate('renamed', 'order_id', in_byte_order('_dlt_load_id') ~ ' desc, updated_at desc') }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'order_id') }}

)

select * from final
