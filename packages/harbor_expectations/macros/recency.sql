{#-
    Recency. Beyond upstream, the comparison depends on the column's type, read from the relation when the test runs:
    - timestamp with time zone: compared in UTC, whatever the session's time zone;
    - timestamp without time zone: its values are wall-clock times in `timezone` (default UTC), converted to UTC;
    - date: compared with the date of the current time in `timezone` minus the interval: yesterday's date is
      "within one day" at any hour of today (a date cast to midnight would fail from the first minute after
      midnight), but "within one hour" only during the first hour of today.
    - anything else (text, an expression): cast to timestamp, as upstream casts every value, then as a timestamp.
    As upstream, values in the future are left out: one wrongly future-dated row must not make stale data pass.
    Without any row in scope the test fails, grouped or not: with group_by, one row with null groups reports it.
-#}

{% test expect_row_values_to_have_recent_data(model, column_name, datepart, interval, row_condition=none,
        timezone='UTC') %}
    {{ harbor_expectations.expectation_recency(model, none, column_name, datepart, interval, row_condition, timezone) }}
{% endtest %}

{% test expect_grouped_row_values_to_have_recent_data(model, group_by, timestamp_column, datepart, interval,
        row_condition=none, timezone='UTC') %}
    {{ harbor_expectations.expectation_recency(model, group_by, timestamp_column, datepart, interval, row_condition,
        timezone) }}
{% endtest %}

{#- date, timestamptz, timestamp, or `other`: not a column of the relation (an expression), or not a date or time. -#}
{% macro expectation_temporal_kind(model, column_name) -%}
    {%- set column = harbor_expectations.expectation_find_column(model, column_name) -%}
    {%- set dtype = column.dtype | lower if column is not none else '' -%}
    {%- if dtype == 'date' -%}
        {{ return('date') }}
    {%- elif 'with time zone' in dtype or dtype == 'timestamptz' -%}
        {{ return('timestamptz') }}
    {%- elif 'timestamp' in dtype or 'datetime' in dtype -%}
        {{ return('timestamp') }}
    {%- else -%}
        {{ return('other') }}
    {%- endif -%}
{%- endmacro %}

{% macro expectation_recency(model, group_by, column_name, datepart, interval, row_condition=none,
        timezone='UTC') -%}
    {%- set groups = harbor_expectations.expectation_list(group_by) -%}
    {%- set kind = harbor_expectations.expectation_temporal_kind(model, column_name) -%}
    {%- if kind == 'other' -%}
        {%- set column_name = 'cast(' ~ column_name ~ ' as ' ~ dbt.type_timestamp() ~ ')' -%}
    {%- endif -%}
    {%- set utc = harbor_expectations.expectation_sql_literal('UTC') -%}
    {%- set zone = harbor_expectations.expectation_sql_literal(timezone) -%}
    {%- if kind == 'date' -%}
        {%- set value = column_name -%}
        {%- set now_in_zone = harbor_expectations.expectation_now_in(timezone) -%}
        {%- set threshold = 'cast(' ~ dbt.dateadd(datepart, -1 * interval, now_in_zone) ~ ' as date)' -%}
        {%- set now = 'cast(' ~ now_in_zone ~ ' as date)' -%}
    {%- else -%}
        {%- if kind == 'timestamptz' -%}
            {%- set value = '(' ~ column_name ~ ' at time zone ' ~ utc ~ ')' -%}
        {%- elif timezone | upper == 'UTC' -%}
            {%- set value = column_name -%}
        {%- else -%}
            {%- set value = '((' ~ column_name ~ ' at time zone ' ~ zone ~ ') at time zone ' ~ utc ~ ')' -%}
        {%- endif -%}
        {%- set now = harbor_expectations.expectation_now_in('UTC') -%}
        {%- set threshold = dbt.dateadd(datepart, -1 * interval, now) -%}
    {%- endif %}
with

latest as (

    select
        {% for column in groups -%}
        {{ column }},
        {% endfor -%}
        max(case when {{ value }} <= {{ now }} then {{ value }} end) as latest_value
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}
    {% if groups %}group by {{ groups | join(', ') }}{% endif %}

)

select
    *,
    {{ threshold }} as threshold_value
from latest
where latest_value is null or latest_value < {{ threshold }}
{%- if groups %}

{#- Grouped, an empty scope has no group at all, so no row above: it fails as the ungrouped test does. #}
union all

select
    {% for column in groups -%}
    null as {{ column }},
    {% endfor -%}
    null as latest_value,
    {{ threshold }} as threshold_value
where not exists (select 1 from latest)
{%- endif %}
{%- endmacro %}
