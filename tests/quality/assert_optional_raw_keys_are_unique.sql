-- The keys of the optional sources' raw tables, as the shop's sources test theirs: dlt merges events on the line's
-- place and rates on (currency, day), so a key held twice means a load went wrong. A warning: staging
-- deduplicates. A generic test on a source that is not loaded yet would error; a missing table is skipped here.
{{ config(severity='warn') }}

{%- set keyed = [
    (source('events', 'events'), ['_file_name', '_line_number']),
    (source('fx', 'exchange_rates'), ['currency_code', 'rate_date']),
] -%}
{%- set loaded = [] -%}
{%- for relation, key in keyed -%}
    {%- if not execute or load_relation(relation) is not none -%}
        {%- do loaded.append((relation, key)) -%}
    {%- endif -%}
{%- endfor %}

with

held_twice as (

    {% for relation, key in loaded %}
        select
            '{{ relation.identifier }}' as raw_table,
            {{ dbt.concat(key) }} as raw_key,
            count(*) as copies
        from {{ relation }}
        group by {{ key | join(', ') }}
        having count(*) > 1
        {% if not loop.last %}union all{% endif %}
    {% else %}
        select
            null as raw_table,
            null as raw_key,
            0 as copies
        where 1 = 0
    {% endfor %}

)

select * from held_twice
