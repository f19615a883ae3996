-- Raw-layer recency inside `dbt build` (source freshness runs only with `dbt source freshness`): a shop table whose
-- newest row was extracted more than 48 hours ago (the sources' error_after) is reported. It warns rather than
-- errors because a table nobody changed keeps its old `_extracted_at`: stale, but not wrong.
{{ config(severity='warn') }}

with

latest as (

    {% for table in ['customers', 'products', 'orders', 'order_items', 'payments'] %}
        select
            '{{ table }}' as source_table,
            max(_extracted_at) as latest_extracted_at
        from {{ source('shop', table) }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select * from latest
where
    latest_extracted_at is null
    or latest_extracted_at < {{ dbt.dateadd('hour', -48, dbt.current_timestamp()) }}
