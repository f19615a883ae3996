{{ config(unique_key='payment_id') }}

with

source as (

    select * from {{ source('shop', 'payments') }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        cast(payment_id as {{ dbt.type_bigint() }}) as payment_id,
        cast(order_id as {{ dbt.type_bigint() }}) as order_id,
        lower(payment_method) as payment_method,
        lower(status) as payment_status,
        cast(amount as {{ dbt.type_numeric() }}) as amount,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _extracted_at,
        _dlt_load_id,
        -- When dbt merged this version (macros/stamps.sql): incremental marts recompute what changed after it.
        {{ run_timestamp() }} as _staged_at

    from source

),

deduplicated as (

    {{ deduplicate('renamed', 'payment_id', in_byte_order('_dlt_load_id') ~ ' desc, updated_at desc') }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'payment_id') }}

)

select * from final
