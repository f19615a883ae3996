{{ config(unique_key='event_id') }}

with

source as (

    select *
    from {{ optional_source('events', 'events', {
        'event_id': dbt.type_string(), 'event_time': dbt.type_timestamp(), 'event_type': dbt.type_string(),
        'customer_id': dbt.type_bigint(), 'anonymous_id': dbt.type_string(), 'page_url': dbt.type_string(),
        '_file_name': dbt.type_string(), '_line_number': dbt.type_int(),
        '_extracted_at': dbt.type_timestamp(), '_dlt_load_id': dbt.type_string()
    }) }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        cast(event_time as {{ dbt.type_timestamp() }}) as event_time,
        lower(event_type) as event_type,
        cast(customer_id as {{ dbt.type_bigint() }}) as customer_id,
        cast(anonymous_id as {{ dbt.type_string() }}) as anonymous_id,
        cast(page_url as {{ dbt.type_string() }}) as page_url,
        _file_name,
        _line_number,
        _extracted_at,
        _dlt_load_id

    from source

),

-- A re-sent event is the same event: keep one copy, the latest load's (as a full refresh would).
deduplicated as (

    {{ deduplicate('renamed', 'event_id', '_dlt_load_id desc, event_time desc, _file_name desc, _line_number desc') }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'event_id', updated_at='event_time', same_version_again=true) }}

)

select * from final
