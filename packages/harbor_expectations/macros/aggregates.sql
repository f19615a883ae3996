{#- Aggregates: one value per group (or for the table), compared with bounds or a set. -#}

{% test expect_column_distinct_count_to_equal(model, column_name, value, quote_values=false, group_by=none,
        row_condition=none) %}
    {{ harbor_expectations.expectation_aggregate(model, 'count(distinct ' ~ column_name ~ ')',
        'expression_value <> ' ~ value, group_by, row_condition) }}
{% endtest %}

{% test expect_column_distinct_values_to_be_in_set(model, column_name, value_set, quote_values=true,
        row_condition=none) %}
with

distinct_values as (

    select distinct {{ column_name }} as value_field
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}

)

select * from distinct_values
where value_field is null
    or value_field not in ({{ harbor_expectations.expectation_value_list(value_set, quote_values) }})
{% endtest %}

{% test expect_column_min_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'min(' ~ column_name ~ ')', min_value, max_value,
        group_by, row_condition, strictly) }}
{% endtest %}

{% test expect_column_max_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'max(' ~ column_name ~ ')', min_value, max_value,
        group_by, row_condition, strictly) }}
{% endtest %}

{% test expect_column_mean_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'avg(' ~ column_name ~ ')', min_value, max_value,
        group_by, row_condition, strictly) }}
{% endtest %}

{% test expect_column_median_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model,
        harbor_expectations.expectation_quantile(column_name, 0.5), min_value, max_value, group_by, row_condition,
        strictly) }}
{% endtest %}

{% test expect_column_quantile_values_to_be_between(model, column_name, quantile, min_value=none, max_value=none,
        group_by=none, row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model,
        harbor_expectations.expectation_quantile(column_name, quantile), min_value, max_value, group_by,
        row_condition, strictly) }}
{% endtest %}

{% test expect_column_sum_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'sum(' ~ column_name ~ ')', min_value, max_value,
        group_by, row_condition, strictly) }}
{% endtest %}

{#- Sample standard deviation (normalised by N - 1), as upstream. -#}
{% test expect_column_stdev_to_be_between(model, column_name, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'stddev_samp(' ~ column_name ~ ')', min_value,
        max_value, group_by, row_condition, strictly) }}
{% endtest %}

{#- Distinct non-null values over non-null values: [1, 2, 2, 3] gives 0.75. In `double precision`, not
    dbt.type_float(), which is a 32-bit float on DuckDB: 1/3 came out 0.33333334, and past 2^24 rows a duplicate
    made no difference to the count, so a column with one passed `min_value: 1`. -#}
{% test expect_column_proportion_of_unique_values_to_be_between(model, column_name, min_value=none, max_value=none,
        group_by=none, row_condition=none, strictly=false) %}
    {%- set expression = 'cast(count(distinct ' ~ column_name ~ ') as double precision) / nullif(count('
        ~ column_name ~ '), 0)' -%}
    {{ harbor_expectations.expectation_aggregate_between(model, expression, min_value, max_value, group_by,
        row_condition, strictly) }}
{% endtest %}

{% test expect_column_unique_value_count_to_be_between(model, column_name, min_value=none, max_value=none,
        group_by=none, row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'count(distinct ' ~ column_name ~ ')', min_value,
        max_value, group_by, row_condition, strictly) }}
{% endtest %}

{% test expect_column_distinct_values_to_contain_set(model, column_name, value_set, quote_values=true,
        row_condition=none) %}
    {{ harbor_expectations.expectation_distinct_set(model, column_name, value_set, quote_values, row_condition,
        report_unexpected=false) }}
{% endtest %}

{% test expect_column_distinct_values_to_equal_set(model, column_name, value_set, quote_values=true,
        row_condition=none) %}
    {{ harbor_expectations.expectation_distinct_set(model, column_name, value_set, quote_values, row_condition,
        report_unexpected=true) }}
{% endtest %}

{#-
    Values of the set missing from the column, and (report_unexpected) column values outside the set, null among
    them as in dbt-expectations: a column holding null does not equal a set of values. The set's values are compared
    with the column as in expect_column_values_to_be_in_set (quoted literals take the column's type, so a quoted
    set works on a numeric column); the report shows every value as text.
-#}
{% macro expectation_distinct_set(model, column_name, value_set, quote_values, row_condition, report_unexpected) -%}
    {%- set text = dbt.type_string() %}
with

column_values as (

    select distinct {{ column_name }} as value_field
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}

),

problems as (

    {#- A value listed twice is missing once, as upstream compares the set's distinct values. #}
    {% for value in harbor_expectations.expectation_list(value_set) | unique -%}
    select
        cast({{ harbor_expectations.expectation_value_sql(value, quote_values) }} as {{ text }}) as value_field,
        'missing' as problem
    where not exists (
        select 1 from column_values
        where value_field = {{ harbor_expectations.expectation_value_sql(value, quote_values) }}
    )
    {%- if report_unexpected or not loop.last %}

    union all

    {% endif -%}
    {%- endfor %}
    {%- if report_unexpected %}
    select
        cast(value_field as {{ text }}) as value_field,
        'unexpected' as problem
    from column_values
    where value_field is null
        or value_field not in ({{ harbor_expectations.expectation_value_list(value_set, quote_values) }})
    {%- endif %}

)

select * from problems
{%- endmacro %}
