{#- Expectations across several columns of a row, or across rows on a column combination. -#}

{% test expect_column_pair_values_A_to_be_greater_than_B(model, column_A, column_B, or_equal=false,
        row_condition=none, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model,
        column_A ~ (' >= ' if or_equal else ' > ') ~ column_B, row_condition, mostly) }}
{% endtest %}

{% test expect_compound_columns_to_be_unique(model, column_list, quote_columns=false,
        ignore_row_if='all_values_are_missing', row_condition=none) %}
    {{ harbor_expectations.expectation_unique_together(model, column_list, quote_columns, ignore_row_if,
        row_condition) }}
{% endtest %}

{% macro expectation_missing_filter(columns, ignore_row_if) -%}
    {%- set missing = [] -%}
    {%- for column in columns -%}
        {%- do missing.append(column ~ ' is null') -%}
    {%- endfor -%}
    {%- if ignore_row_if == 'all_values_are_missing' -%}
        not ({{ missing | join(' and ') }})
    {%- elif ignore_row_if == 'any_value_is_missing' -%}
        not ({{ missing | join(' or ') }})
    {%- else -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: ignore_row_if is all_values_are_missing or "
            ~ "any_value_is_missing, got " ~ ignore_row_if) }}
    {%- endif -%}
{%- endmacro %}

{% macro expectation_unique_together(model, column_list, quote_columns=false, ignore_row_if='all_values_are_missing',
        row_condition=none) -%}
    {%- set columns = [] -%}
    {%- for column in harbor_expectations.expectation_list(column_list) -%}
        {%- do columns.append(harbor_expectations.expectation_column_ref(column, quote_columns)) -%}
    {%- endfor %}
with

scoped as (

    select {{ columns | join(', ') }}
    from {{ model }}
    where {{ harbor_expectations.expectation_missing_filter(columns, ignore_row_if) }}
    {%- if row_condition %} and ({{ row_condition }}){% endif %}

)

select
    {{ columns | join(', ') }},
    count(*) as n_records
from scoped
group by {{ columns | join(', ') }}
having count(*) > 1
{%- endmacro %}

{#- Within one row, no two of the listed columns hold the same value; the same row may repeat across rows. -#}
{#-
    As in dbt-expectations, a missing value is no value of its own: a row with one (and not ignored by
    ignore_row_if) fails, since its values cannot be shown to be distinct.
-#}
{% test expect_select_column_values_to_be_unique_within_record(model, column_list, quote_columns=false,
        ignore_row_if='all_values_are_missing', row_condition=none, mostly=none) %}
    {%- set columns = [] -%}
    {%- for column in harbor_expectations.expectation_list(column_list) -%}
        {%- do columns.append(harbor_expectations.expectation_column_ref(column, quote_columns)) -%}
    {%- endfor -%}
    {%- set present = [] -%}
    {%- set equal_pairs = [] -%}
    {%- for left in columns -%}
        {%- do present.append(left ~ ' is not null') -%}
        {%- for right in columns[loop.index:] -%}
            {%- do equal_pairs.append(left ~ ' = ' ~ right) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set scope = harbor_expectations.expectation_missing_filter(columns, ignore_row_if)
        ~ (' and (' ~ row_condition ~ ')' if row_condition else '') -%}
    {{ harbor_expectations.expectation_rows(model,
        present | join(' and ') ~ ' and not (' ~ equal_pairs | join(' or ') ~ ')', scope, mostly) }}
{% endtest %}

{#- sum_total is a number, or a column (or expression) summed over the same rows, as in dbt-expectations. -#}
{% test expect_multicolumn_sum_to_equal(model, column_list, sum_total, group_by=none, row_condition=none) %}
    {%- set sums = [] -%}
    {%- for column in harbor_expectations.expectation_list(column_list) -%}
        {%- do sums.append('sum(' ~ column ~ ')') -%}
    {%- endfor -%}
    {{ harbor_expectations.expectation_aggregate(model, sums | join(' + '),
        'expression_value <> expected_value', group_by, row_condition,
        expected_expression=(sum_total if sum_total is number else 'sum(' ~ sum_total ~ ')')) }}
{% endtest %}

{% test expect_column_pair_values_to_be_equal(model, column_A, column_B, row_condition=none, mostly=none) %}
    {{ harbor_expectations.expectation_rows(model, column_A ~ ' = ' ~ column_B, row_condition, mostly) }}
{% endtest %}
