{#- Distributional expectations: outliers, and gaps in a time series. -#}

{#- Values (or, with group_by, per-group sums) further than sigma_threshold sample deviations from their mean. -#}
{% test expect_column_values_to_be_within_n_stdevs(model, column_name, group_by=none, sigma_threshold=3) %}
    {%- set groups = harbor_expectations.expectation_list(group_by) %}
with

metric_values as (

    select
        {% if groups -%}
        {{ groups | join(', ') }},
        sum({{ column_name }}) as metric_value
        {%- else -%}
        {{ column_name }} as metric_value
        {%- endif %}
    from {{ model }}
    {% if groups %}group by {{ groups | join(', ') }}{% endif %}

),

with_statistics as (

    select
        *,
        avg(metric_value) over () as metric_average,
        stddev_samp(metric_value) over () as metric_stdev
    from metric_values

)

select * from with_statistics
where abs(metric_value - metric_average) > {{ sigma_threshold }} * metric_stdev
{% endtest %}

{#-
    Every `interval` x `date_part` period between test_start_date (inclusive) and test_end_date (exclusive) holds at
    least one row; without them, the range is the data's own first to last period. Both dates are truncated to the
    date_part, as the data is: with date_part month, test_start_date 2024-01-15 checks January from its first day,
    and test_end_date 2024-03-15 stops before March. At least the first period is always checked, so a range that
    ends before it begins (test_start_date after the last row, or in the same period as test_end_date) fails when
    that period has no rows, and a model without any dated row fails (upstream errors on an empty table).
    `exclusion_condition` filters the expected periods and may refer to them by `date_col`'s name or, as in
    dbt-expectations, as `date_<date_part>`.
-#}
{% test expect_row_values_to_have_data_for_every_n_datepart(model, date_col, date_part='day', interval=none,
        row_condition=none, exclusion_condition=none, test_start_date=none, test_end_date=none) %}
    {%- set timestamp = dbt.type_timestamp() -%}
    {%- set period_start = 'cast(' ~ dbt.date_trunc(date_part, date_col) ~ ' as ' ~ timestamp ~ ')' -%}
    {%- set start_date, end_date, end_inclusive = test_start_date, test_end_date, false -%}
    {%- if (start_date is none or end_date is none) and execute -%}
        {%- set bounds_query -%}
            select min({{ period_start }}), max({{ period_start }})
            from {{ model }}
            {{ harbor_expectations.expectation_where(row_condition) }}
        {%- endset -%}
        {%- set bounds = run_query(bounds_query).rows[0] -%}
        {%- set start_date = start_date or bounds[0] -%}
        {%- if end_date is none and bounds[1] is not none -%}
            {%- set end_date, end_inclusive = bounds[1], true -%}
        {%- endif -%}
    {%- endif -%}
    {%- if start_date is none and execute -%}
        {#- No test_start_date and no dated row in scope: nothing to count from, and nothing to find. -#}
        {{ harbor_expectations.expectation_check(false, 'no row of ' ~ model ~ ' has a ' ~ date_col
            ~ ': no period holds data') }}
    {%- else -%}
    {%- set start_sql = 'cast(' ~ dbt.date_trunc(date_part, 'cast(' ~ harbor_expectations.expectation_sql_literal(
        start_date or '1970-01-01') ~ ' as ' ~ timestamp ~ ')') ~ ' as ' ~ timestamp ~ ')' -%}
    {%- set first_period_end = dbt.dateadd(date_part, 1, start_sql) -%}
    {%- if end_date is none -%}
        {%- set end_sql = first_period_end -%}
    {%- else -%}
        {%- set end_sql = 'cast(' ~ dbt.date_trunc(date_part, 'cast(' ~ harbor_expectations.expectation_sql_literal(
            end_date) ~ ' as ' ~ timestamp ~ ')') ~ ' as ' ~ timestamp ~ ')' -%}
        {%- if end_inclusive -%}
            {%- set end_sql = dbt.dateadd(date_part, 1, end_sql) -%}
        {%- endif -%}
        {#- dbt.date_spine errors (PostgreSQL) or returns nothing (DuckDB) on an empty range. -#}
        {%- set end_sql = 'greatest(' ~ end_sql ~ ', ' ~ first_period_end ~ ')' -%}
    {%- endif %}
with

spine as (

    select
        cast(date_{{ date_part }} as {{ dbt.type_timestamp() }}) as {{ date_col }}
        {%- if date_col != 'date_' ~ date_part %},
        cast(date_{{ date_part }} as {{ dbt.type_timestamp() }}) as date_{{ date_part }}
        {%- endif %}
    from ({{ dbt.date_spine(date_part, start_sql, end_sql) }}) as periods

),

expected_periods as (

    select
        {{ date_col }} as period_start,
        {% if interval -%}
        floor({{ dbt.datediff(start_sql, date_col, date_part) }} / {{ interval }}) as bucket
        {%- else -%}
        {{ date_col }} as bucket
        {%- endif %}
    from spine
    {{ harbor_expectations.expectation_where(exclusion_condition) }}

),

actual_periods as (

    select
        {{ period_start }} as period_start,
        count(*) as row_count
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}
    group by {{ period_start }}

),

buckets as (

    select
        expected_periods.bucket,
        min(expected_periods.period_start) as bucket_start,
        sum(coalesce(actual_periods.row_count, 0)) as row_count
    from expected_periods
    left join actual_periods
        on expected_periods.period_start = actual_periods.period_start
    group by expected_periods.bucket

)

select * from buckets
where row_count = 0
    {%- endif %}
{% endtest %}
