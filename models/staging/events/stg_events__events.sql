{{ config(unique_key='event_id', incremental_strategy='replace_keys', tombstone_column='_dlt_load_id') }}

{#- A file loaded again because it was rewritten: the events staged from it are staged again from what raw holds
    now (another file's copy, when only this one's is gone), and an event raw no longer holds at all is deleted,
    as a full refresh would leave it out. Found before the model runs, so a build without a rewritten file (nearly
    every build: new files hold no staged event) reads the new loads alone. -#}
{%- set rewritten_files = [] -%}
{%- if is_incremental() and execute and load_relation(source('events', 'events')) is not none -%}
    {%- set found = run_query(
        'select distinct _file_name from ' ~ source('events', 'events') ~ ' where ' ~ loaded_since_last_run()
        ~ ' and _file_name in (select staged._file_name from ' ~ this ~ ' as staged)'
    ) -%}
    {%- set rewritten_files = found.columns[0].values() | list -%}
{%- endif %}

with

{% if rewritten_files -%}
restaged as (

    select staged.event_id
    from {{ this }} as staged
    where staged._file_name in (
        {%- for file_name in rewritten_files %}
        '{{ file_name | replace("'", "''") }}'{{ "," if not loop.last }}
        {%- endfor %}
    )

),

{% endif -%}

source as (

    select *
    from {{ optional_source('events', 'events', {
        'event_id': dbt.type_string(), 'event_time': dbt.type_timestamp(), 'event_type': dbt.type_string(),
        'customer_id': dbt.type_bigint(), 'anonymous_id': dbt.type_string(), 'page_url': dbt.type_string(),
        '_file_name': dbt.type_string(), '_line_number': dbt.type_int(),
        '_extracted_at': dbt.type_timestamp(), '_dlt_load_id': dbt.type_string()
    }) }}
    {% if is_incremental() %}
        where
            ({{ loaded_since_last_run() }})
            {%- if rewritten_files %}
                or event_id in (select restaged.event_id from restaged)
            {%- endif %}
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

-- A re-sent event is the same event: keep one copy, the latest load's (as a full refresh would). Load ids and file
-- names sort byte by byte (`a.jsonl` after `B.jsonl`): PostgreSQL keeps the copy DuckDB keeps, whatever its
-- collation.
deduplicated as (

    {{ deduplicate(
        'renamed', 'event_id',
        in_byte_order('_dlt_load_id') ~ ' desc, event_time desc, '
        ~ in_byte_order('_file_name') ~ ' desc, _line_number desc'
    ) }}

),

kept as (

    {{ keep_newer_than_staged('deduplicated', 'event_id', updated_at='event_time', same_version_again=true) }}
    {%- if rewritten_files %}

    -- A staged copy from a rewritten file gives way to the copy raw picks now, even one from an older load.
    union

    select * from deduplicated
    where event_id in (select restaged.event_id from restaged)
    {%- endif %}

),

final as (

    select * from kept
    {%- if rewritten_files %}

    -- An event no file holds any more: its key alone, a tombstone that `replace_keys` deletes.
    union all

    select
        restaged.event_id,
        null as event_time,
        null as event_type,
        null as customer_id,
        null as anonymous_id,
        null as page_url,
        null as _file_name,
        null as _line_number,
        null as _extracted_at,
        null as _dlt_load_id
    from restaged
    where restaged.event_id not in (select deduplicated.event_id from deduplicated)
    {%- endif %}

)

select * from final
