{{ config(unique_key='exchange_rate_id') }}

with

source as (

    select *
    from {{ optional_source('fx', 'exchange_rates', {
        'currency_code': dbt.type_string(), 'rate_date': 'date', 'usd_per_unit': dbt.type_numeric(),
        'updated_at': dbt.type_timestamp(), '_extracted_at': dbt.type_timestamp(),
        '_dlt_load_id': dbt.type_string()
    }) }}
    {% if is_incremental() %}
        where {{ loaded_since_last_run() }}
    {% endif %}

),

renamed as (

    select
        {{ dbt.concat(['upper(currency_code)', "':'", dbt.cast('rate_date', dbt.type_string())]) }} as exchange_rate_id,
        upper(currency_code) as currency_code,
        cast(rate_date as date) as rate_date,
        -- 9 decimals, as raw: at 6, a rate of 0.000063512 (a rupiah) lost a fifth of its precision.
        cast(usd_per_unit as numeric(18, 9)) as usd_per_unit,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _extracted_at,
        _dlt_load_id,
        -- When dbt merged this version (macros/stamps.sql): incremental marts recompute what changed after it.
        {{ run_timestamp() }} as _staged_at

    from source

),

-- `eur` and `EUR` are two rows in raw and one here: the higher rate settles a tie, so every build agrees.
deduplicated as (

    {{ deduplicate(
        'renamed', 'exchange_rate_id', in_byte_order('_dlt_load_id') ~ ' desc, updated_at desc, usd_per_unit desc'
    ) }}

),

final as (

    {{ keep_newer_than_staged('deduplicated', 'exchange_rate_id') }}

)

select * from final
