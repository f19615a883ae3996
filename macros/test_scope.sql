{#- dbt's `where` test config, extended with Harbor's test scope (README "Data quality / Test scope").

    `dbt build --vars '{test_scope: changed}'`: a row-level data test (not null, unique, accepted values,
    relationships, the row-level expectations) on a model that stamps its rows — `_staged_at` in staging,
    `_loaded_at` in the incremental marts — checks only the rows this invocation wrote, so an incremental build
    tests the change rather than all of history. Tests of whole-table properties (row counts, distributions,
    recency, anomalies) and singular tests always see every row; so does every test under the default scope
    `all`, and under `dbt test` run on its own (it writes no rows). -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set stamp = harbor_changed_rows_stamp(relation) -%}
    {%- if stamp -%}
        {%- do conditions.append(stamp ~ ' >= ' ~ run_timestamp()) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') as dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The column stamping the rows this invocation wrote, when the test may check those rows only; else none. -#}
{% macro harbor_changed_rows_stamp(relation) -%}
    {%- set row_level_tests = [
        'not_null', 'unique', 'accepted_values', 'relationships',
        'expect_column_values_to_not_be_null', 'expect_column_values_to_be_null',
        'expect_column_values_to_be_unique', 'expect_compound_columns_to_be_unique',
        'expect_select_column_values_to_be_unique_within_record',
        'expect_column_values_to_be_between', 'expect_column_values_to_be_in_set',
        'expect_column_values_to_not_be_in_set', 'expect_column_values_to_match_regex',
        'expect_column_values_to_not_match_regex', 'expect_column_values_to_match_like_pattern',
        'expect_column_values_to_not_match_like_pattern', 'expect_column_value_lengths_to_be_between',
        'expect_column_value_lengths_to_equal', 'expect_column_pair_values_to_be_equal',
        'expect_multicolumn_sum_to_equal',
    ] -%}
    {#- Only `dbt build` writes rows in the same invocation; a `dbt test` on its own checks every row. -#}
    {%- if var('test_scope', 'all') != 'changed' or invocation_args_dict.get('which') != 'build'
        or not execute or relation is string -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set test_name = (model.test_metadata or {}).get('name') if model.test_metadata is defined else none -%}
    {%- if test_name not in row_level_tests -%}
        {%- do return(none) -%}
    {%- endif -%}
    {#- The tested model's columns as the project declares them (every model documents its columns): no query. -#}
    {%- set attached = model.attached_node if model.attached_node is defined else none -%}
    {%- if not attached or attached not in graph.nodes -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set columns = graph.nodes[attached].columns.keys() | map('lower') | list -%}
    {%- for stamp in ['_loaded_at', '_staged_at'] -%}
        {%- if stamp in columns -%}
            {%- do return(stamp) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}
