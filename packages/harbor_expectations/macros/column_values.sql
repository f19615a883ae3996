{#-
    Column values. Row-wise tests take `row_condition` as upstream and, beyond upstream, `mostly`: the fraction of rows
    in scope that must pass (default: all of them).
-#}

{% test expect_column_values_to_be_null(model, column_name, row_condition=none, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model, column_name ~ ' is null', row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_not_be_null(model, column_name, row_condition=none, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model, column_name ~ ' is not null', row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_be_unique(model, column_name, row_condition=none) %}
    {{ harbor_expectations.expectation_unique_together(model, [column_name], false, 'any_value_is_missing',
        row_condition) }}
{% endtest %}

{% test expect_column_values_to_be_of_type(model, column_name, column_type) %}
    {{ harbor_expectations.expectation_column_type(model, column_name, [column_type]) }}
{% endtest %}

{% test expect_column_values_to_be_in_type_list(model, column_name, column_type_list) %}
    {{ harbor_expectations.expectation_column_type(model, column_name, column_type_list) }}
{% endtest %}

{% macro expectation_column_type(model, column_name, column_type_list) -%}
    {%- set column = harbor_expectations.expectation_find_column(model, column_name) -%}
    {%- set wanted = [] -%}
    {%- for column_type in harbor_expectations.expectation_list(column_type_list) -%}
        {%- do wanted.append(column_type | upper) -%}
    {%- endfor -%}
    {#- dtype is the bare type (e.g. CHARACTER VARYING), data_type may carry a size (CHARACTER VARYING(20)). -#}
    {%- set actual = [column.dtype | upper, column.data_type | upper] if column is not none else [] -%}
    {%- set holds = (actual | select('in', wanted) | list | length) > 0 -%}
    {{ harbor_expectations.expectation_check(holds, 'column ' ~ column_name ~ ' is of type '
        ~ (actual | first if actual else 'missing') ~ ', expected one of ' ~ wanted | join(', ')) }}
{%- endmacro %}

{#- A null is not in the set: it fails, as upstream's anti-join makes it (`not_in_set` lets it pass, as upstream). -#}
{% test expect_column_values_to_be_in_set(model, column_name, value_set, quote_values=true, row_condition=none,
        mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        'coalesce(' ~ column_name ~ ' in (' ~ harbor_expectations.expectation_value_list(value_set, quote_values)
        ~ '), false)',
        row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_not_be_in_set(model, column_name, value_set, quote_values=true, row_condition=none,
        mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        column_name ~ ' not in (' ~ harbor_expectations.expectation_value_list(value_set, quote_values) ~ ')',
        row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_be_between(model, column_name, min_value=none, max_value=none, row_condition=none,
        strictly=false, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        harbor_expectations.expectation_between_condition(column_name, min_value, max_value, strictly),
        row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_be_increasing(model, column_name, sort_column=none, strictly=true,
        row_condition=none, group_by=none, step=none) %}
    {{ harbor_expectations.expectation_monotonic(model, column_name, sort_column, strictly, row_condition, group_by,
        '>', step) }}
{% endtest %}

{% test expect_column_values_to_be_decreasing(model, column_name, sort_column=none, strictly=true,
        row_condition=none, group_by=none, step=none) %}
    {{ harbor_expectations.expectation_monotonic(model, column_name, sort_column, strictly, row_condition, group_by,
        '<', step) }}
{% endtest %}

{#-
    Each value against the previous one in sort_column's order (within group_by). sort_column is required: upstream
    falls back to ordering by the value itself, which makes every column "increasing" (ties aside) and every column
    with two distinct values fail "decreasing", so the test would say nothing about the rows' order. Without it the
    test errors when it runs (not at parse time, which would stop every other test too). `step`, as in
    metaplane's dbt-expectations (upstream's maintained fork): each value also moves by exactly `step` from the
    previous one (up when increasing, down when decreasing); a `step` of 0 is no step, as there.
-#}
{% macro expectation_monotonic(model, column_name, sort_column, strictly, row_condition, group_by, direction,
        step=none) -%}
    {%- if not sort_column and execute -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: expect_column_values_to_be_"
            ~ ('increasing' if direction == '>' else 'decreasing') ~ " on " ~ column_name
            ~ " needs sort_column, the column that orders the rows (ordering by the value itself checks nothing)") }}
    {%- endif -%}
    {%- set groups = harbor_expectations.expectation_list(group_by) -%}
    {%- set operator = direction if strictly else direction ~ '=' %}
with

scoped as (

    select
        {% for column in groups -%}
        {{ column }},
        {% endfor -%}
        {{ column_name }} as value_field,
        {{ sort_column }} as sort_field
    from {{ model }}
    where {{ column_name }} is not null
    {%- if row_condition %} and ({{ row_condition }}){% endif %}

),

ordered as (

    select
        *,
        lag(value_field) over (
            {% if groups %}partition by {{ groups | join(', ') }}{% endif %}
            order by sort_field
        ) as previous_value_field
    from scoped

)

select * from ordered
where not (
    value_field {{ operator }} previous_value_field
    {%- if step %}
    and {{ 'value_field - previous_value_field' if direction == '>' else 'previous_value_field - value_field' }}
        = {{ step }}
    {%- endif %}
)
{%- endmacro %}

{% test expect_column_value_lengths_to_be_between(model, column_name, min_value=none, max_value=none,
        row_condition=none, strictly=false, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        harbor_expectations.expectation_between_condition(dbt.length(column_name), min_value, max_value, strictly),
        row_condition, mostly) }}
{% endtest %}

{#- `is_raw` is accepted for compatibility: DuckDB and PostgreSQL string literals keep backslashes as written. -#}
{% test expect_column_values_to_match_regex(model, column_name, regex, row_condition=none, is_raw=false, flags='',
        mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        harbor_expectations.expectation_regex_match(column_name, regex, flags), row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_not_match_regex(model, column_name, regex, row_condition=none, is_raw=false,
        flags='', mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        'not ' ~ harbor_expectations.expectation_regex_match(column_name, regex, flags), row_condition, mostly) }}
{% endtest %}

{#-
    LIKE patterns: `%` and `_` are wildcards and a backslash escapes them (`%\_%` holds a literal underscore). The
    escape is spelled out, as PostgreSQL has it by default and DuckDB has none (a backslash would be a literal there).
-#}
{% macro expectation_like(column_name, like_pattern) -%}
    {{ column_name }} like {{ harbor_expectations.expectation_sql_literal(like_pattern) }} escape '\'
{%- endmacro %}

{% test expect_column_values_to_match_like_pattern(model, column_name, like_pattern, row_condition=none,
        mostly=none) %}
    {{ harbor_expectations.expectation_rows(model, harbor_expectations.expectation_like(column_name, like_pattern),
        row_condition, mostly) }}
{% endtest %}

{% test expect_column_value_lengths_to_equal(model, column_name, value, row_condition=none, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model, dbt.length(column_name) ~ ' = ' ~ value, row_condition, mostly) }}
{% endtest %}

{% test expect_column_values_to_not_match_like_pattern(model, column_name, like_pattern, row_condition=none,
        mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        'not (' ~ harbor_expectations.expectation_like(column_name, like_pattern) ~ ')', row_condition, mostly) }}
{% endtest %}
