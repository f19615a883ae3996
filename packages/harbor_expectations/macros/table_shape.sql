{#- Table shape: columns, row counts, and comparisons with another table. -#}

{% test expect_column_to_exist(model, column_name, column_index=none, transform='upper') %}
    {%- set names = [] -%}
    {%- for column in harbor_expectations.expectation_columns(model) -%}
        {%- do names.append(harbor_expectations.expectation_transform(column.name, transform)) -%}
    {%- endfor -%}
    {%- set wanted = harbor_expectations.expectation_transform(column_name | replace('"', ''), transform) -%}
    {#- As dbt-expectations: no index, or 0, checks no position (0 used to look at the last column). -#}
    {%- set holds = wanted in names and (not column_index or (names | length >= column_index
        and names[column_index - 1] == wanted)) -%}
    {{ harbor_expectations.expectation_check(holds, 'column ' ~ wanted ~ ' missing'
        ~ (' at position ' ~ column_index if column_index else '') ~ ' in ' ~ model) }}
{% endtest %}

{% test expect_table_column_count_to_equal(model, value) %}
    {%- set count = harbor_expectations.expectation_columns(model) | length -%}
    {{ harbor_expectations.expectation_check(count == value, model ~ ' has ' ~ count ~ ' columns, expected ' ~ value) }}
{% endtest %}

{% test expect_table_columns_to_match_set(model, column_list, transform='upper') %}
    {%- set actual = [] -%}
    {%- for column in harbor_expectations.expectation_columns(model) -%}
        {%- do actual.append(harbor_expectations.expectation_transform(column.name, transform)) -%}
    {%- endfor -%}
    {%- set expected = [] -%}
    {%- for name in harbor_expectations.expectation_list(column_list) -%}
        {%- do expected.append(harbor_expectations.expectation_transform(name, transform)) -%}
    {%- endfor -%}
    {%- set holds = (actual | sort) == (expected | unique | sort) and (actual | length) == (expected | unique | list | length) -%}
    {{ harbor_expectations.expectation_check(holds, 'columns ' ~ (actual | sort | join(',')) ~ ' do not match '
        ~ (expected | sort | join(','))) }}
{% endtest %}

{% test expect_table_row_count_to_be_between(model, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) %}
    {{ harbor_expectations.expectation_aggregate_between(model, 'count(*)', min_value, max_value, group_by,
        row_condition, strictly) }}
{% endtest %}

{% test expect_table_row_count_to_equal_other_table(model, compare_model, group_by=none, compare_group_by=none,
        factor=1, row_condition=none, compare_row_condition=none) %}
    {{ harbor_expectations.expectation_compare_tables(model, 'count(*)', compare_model, 'count(*) * ' ~ factor,
        group_by, compare_group_by, row_condition, compare_row_condition) }}
{% endtest %}

{% test expect_table_aggregation_to_equal_other_table(model, expression, compare_model, compare_expression=none,
        group_by=none, compare_group_by=none, row_condition=none, compare_row_condition=none, tolerance=0.0,
        tolerance_percent=none) %}
    {{ harbor_expectations.expectation_compare_tables(model, expression, compare_model,
        compare_expression or expression, group_by, compare_group_by, row_condition, compare_row_condition,
        tolerance=tolerance, tolerance_percent=tolerance_percent) }}
{% endtest %}

{#-
    One aggregate per group on each side, joined on the group columns by position (a null key matches a null key).
    As in dbt-expectations: a value that is null, or a group present on one side only, counts as 0; the compare
    side filters on `row_condition` unless it has a `compare_row_condition`; a difference fails when it is over
    `tolerance_percent` of the model side's value when that is given (and not 0), else when it is over `tolerance`
    (dbt-expectations 0.6 on: before, a difference had to be over both). Unlike it, the fraction is of the value's
    size (upstream's negative values never fail) and a model value of 0 fails against any other value (upstream
    divides by zero, gets null, and passes it). A group may be an expression: the groups are returned under the
    names they were given where those are plain column names, else as group_key_<n>.
-#}
{% macro expectation_compare_tables(model, expression, compare_model, compare_expression, group_by=none,
        compare_group_by=none, row_condition=none, compare_row_condition=none, tolerance=0.0,
        tolerance_percent=none) -%}
    {%- set groups = harbor_expectations.expectation_list(group_by) -%}
    {%- set compare_groups = harbor_expectations.expectation_list(compare_group_by) or groups -%}
    {%- if groups | length != compare_groups | length -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: group_by and compare_group_by differ in length") }}
    {%- endif -%}
    {%- set compare_row_condition = compare_row_condition or row_condition -%}
with

model_side as (

    select
        {% for column in groups -%}
        {{ column }} as group_key_{{ loop.index }},
        {% endfor -%}
        {{ expression }} as expression_value
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}
    {% if groups %}group by {{ groups | join(', ') }}{% endif %}

),

compare_side as (

    select
        {% for column in compare_groups -%}
        {{ column }} as group_key_{{ loop.index }},
        {% endfor -%}
        {{ compare_expression }} as expression_value
    from {{ compare_model }}
    {{ harbor_expectations.expectation_where(compare_row_condition) }}
    {% if compare_groups %}group by {{ compare_groups | join(', ') }}{% endif %}

),

{% if groups -%}
{#-
    Both sides stacked and grouped by the keys: a null key meets its counterpart, as `group by` puts nulls together
    (a join on `is not distinct from` would do the same, but PostgreSQL cannot hash it: nested loops, 50 s against
    50 ms at 20k groups). Each side has one row per group, so max() is that row's value, null when it is missing.
#}
stacked as (

    select
        {% for column in groups -%}
        group_key_{{ loop.index }},
        {% endfor -%}
        expression_value as model_value,
        null as compare_value
    from model_side
    union all
    select
        {% for column in groups -%}
        group_key_{{ loop.index }},
        {% endfor -%}
        null as model_value,
        expression_value as compare_value
    from compare_side

),

joined as (

    select
        {% for column in groups -%}
        group_key_{{ loop.index }}{{ (' as ' ~ column) if modules.re.match('^"?[A-Za-z_][A-Za-z0-9_$]*"?$', column | trim) }},
        {% endfor -%}
        coalesce(max(model_value), 0) as expression_value,
        coalesce(max(compare_value), 0) as compare_expression_value
    from stacked
    group by {% for column in groups %}group_key_{{ loop.index }}{{ ', ' if not loop.last }}{% endfor %}

)
{%- else %}
joined as (

    {#- Each side is one row. #}
    select
        coalesce(model_side.expression_value, 0) as expression_value,
        coalesce(compare_side.expression_value, 0) as compare_expression_value
    from model_side
    cross join compare_side

)
{%- endif %}

select * from joined
where
    {%- if tolerance_percent %}
    abs(expression_value - compare_expression_value) > {{ tolerance_percent }} * abs(expression_value)
    {%- else %}
    abs(expression_value - compare_expression_value) > {{ tolerance or 0 }}
    {%- endif %}
{%- endmacro %}

{% test expect_table_row_count_to_equal(model, value, group_by=none, row_condition=none) %}
    {{ harbor_expectations.expectation_aggregate(model, 'count(*)', 'expression_value <> ' ~ value, group_by,
        row_condition) }}
{% endtest %}

{% test expect_table_column_count_to_be_between(model, min_value=none, max_value=none) %}
    {#- When it runs, not at parse time, which would stop every other test too. -#}
    {%- if min_value is none and max_value is none and execute -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: give min_value, max_value or both") }}
    {%- endif -%}
    {%- set count = harbor_expectations.expectation_columns(model) | length -%}
    {%- set holds = (min_value is none or count >= min_value) and (max_value is none or count <= max_value) -%}
    {{ harbor_expectations.expectation_check(holds, model ~ ' has ' ~ count ~ ' columns, expected between '
        ~ min_value ~ ' and ' ~ max_value) }}
{% endtest %}
