{#- dbt's `where` test config, extended with Harbor's test scope (README "Data quality / Test scope").

    `dbt build --vars '{test_scope: changed}'`: a row-level data test (not null, unique, accepted values,
    relationships, the row-level expectations) on a model that stamps its rows — `_staged_at` in staging,
    `_loaded_at` in the incremental marts — checks only the rows written after the last invocation in which that
    test passed (which tested its own rows; the observability history says when), so an incremental build tests
    the change rather than all of history, and rows that failed, or that a `dbt run` wrote untested, are checked
    again until the test passes. A uniqueness test on a column other than the model's `unique_key` checks every row sharing
    a value with those rows. On a source read by an incremental staging model a test whose last run passed
    checks the rows of the loads that model has not staged yet (the ones this build stages) and of the loads
    extracted since that run (a `dbt run` may have staged them untested), and a uniqueness test every row
    sharing a key with them. A test that never passed (or has no history), tests on snapshots,
    tests of whole-table properties (row counts, sums, distributions, recency, anomalies, a row-level test with
    `mostly`, a count threshold `warn_if`/`error_if` or another `fail_calc`) and singular tests see every row; so
    does every test under the default scope `all`, and under `dbt test` run on its own. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set stamp = harbor_changed_rows_stamp(relation) -%}
    {%- set not_staged = harbor_rows_not_staged_yet(relation) -%}
    {%- set history = harbor_test_history() if stamp or not_staged else {} -%}
    {%- set passed_at = dbt.cast("'" ~ history.passed_at ~ "'", api.Column.translate_type('timestamp'))
        if history.passed_at else none -%}
    {%- if stamp and passed_at -%}
        {%- set since = stamp ~ ' > ' ~ passed_at -%}
        {%- set column = model.test_metadata.kwargs.get('column_name') -%}
        {%- set key = graph.nodes[model.attached_node].config.get('unique_key') -%}
        {%- if model.test_metadata.name in ['unique', 'expect_column_values_to_be_unique'] and column != key -%}
            {#- A new row may repeat the value of an old one; the upsert only keeps `unique_key` unique. -#}
            {%- do conditions.append(column ~ ' in (select ' ~ column ~ ' from ' ~ relation ~ ' where ' ~ since ~ ')') -%}
        {%- elif model.test_metadata.name != 'expect_compound_columns_to_be_unique' -%}
            {%- do conditions.append(since) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not_staged and history.last_status == 'pass' -%}
        {#- The loads this build stages, and the ones extracted since the test last passed: a `dbt run` may have
            staged those without testing them. -#}
        {%- set new_rows = '((' ~ not_staged ~ ') or _extracted_at >= ' ~ passed_at ~ ')' -%}
        {%- set column = model.test_metadata.kwargs.get('column_name') -%}
        {%- if model.test_metadata.name in ['unique', 'expect_column_values_to_be_unique'] -%}
            {#- A new row may repeat the key of an old one: test every row with a key of the new rows. -#}
            {%- do conditions.append(
                column ~ ' in (select ' ~ column ~ ' from ' ~ relation ~ ' where ' ~ new_rows ~ ')'
            ) -%}
        {%- elif model.test_metadata.name == 'expect_compound_columns_to_be_unique' -%}
            {#- A compound key on a source is tested on every row. -#}
        {%- else -%}
            {%- do conditions.append(new_rows) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') as dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The row-level tests the changed scope narrows (README "Data quality / Test scope"). -#}
{% macro harbor_row_level_tests() -%}
    {%- do return([
        'not_null', 'unique', 'accepted_values', 'relationships',
        'expect_column_values_to_not_be_null', 'expect_column_values_to_be_null',
        'expect_column_values_to_be_unique', 'expect_compound_columns_to_be_unique',
        'expect_select_column_values_to_be_unique_within_record',
        'expect_column_values_to_be_between', 'expect_column_values_to_be_in_set',
        'expect_column_values_to_not_be_in_set', 'expect_column_values_to_match_regex',
        'expect_column_values_to_not_match_regex', 'expect_column_values_to_match_like_pattern',
        'expect_column_values_to_not_match_like_pattern', 'expect_column_value_lengths_to_be_between',
        'expect_column_value_lengths_to_equal', 'expect_column_pair_values_to_be_equal',
    ]) -%}
{%- endmacro %}

{#- True when this test is a row-level test that the changed scope narrows in this invocation: only `dbt build`
    writes rows in the same invocation; a `dbt test` on its own checks every row. -#}
{% macro harbor_in_changed_scope(relation) -%}
    {%- if var('test_scope', 'all') != 'changed' or invocation_args_dict.get('which') != 'build'
        or not execute or relation is string -%}
        {%- do return(false) -%}
    {%- endif -%}
    {%- set metadata = (model.test_metadata or {}) if model.test_metadata is defined else {} -%}
    {#- With `mostly` a row-level test judges a fraction of the table: of the new rows it would mean another thing. -#}
    {%- set mostly = (metadata.get('kwargs') or {}).get('mostly') -%}
    {#- So does a count threshold (`warn_if: ">10"`) or another `fail_calc`: each build's few new bad rows would
        stay under it, pass, and leave the rows behind them untested for good. -#}
    {%- set counts_every_row = (config.get('warn_if') or '!= 0') | replace(' ', '') == '!=0'
        and (config.get('error_if') or '!= 0') | replace(' ', '') == '!=0'
        and (config.get('fail_calc') or 'count(*)') | replace(' ', '') | lower == 'count(*)' -%}
    {%- do return(
        metadata.get('name') in harbor_row_level_tests() and (mostly is none or mostly >= 1) and counts_every_row
    ) -%}
{%- endmacro %}

{#- The column stamping the rows this invocation wrote, when the test may check those rows only; else none. -#}
{% macro harbor_changed_rows_stamp(relation) -%}
    {%- if not harbor_in_changed_scope(relation) -%}
        {%- do return(none) -%}
    {%- endif -%}
    {#- The tested model's columns as the project declares them (every model documents its columns): no query. -#}
    {%- set attached = model.attached_node if model.attached_node is defined else none -%}
    {%- if not attached or attached not in graph.nodes -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- if graph.nodes[attached].resource_type == 'snapshot' -%}
        {#- A snapshot copies `_staged_at` from staging: it does not say which versions this build wrote. -#}
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

{#- For a test on a source: the condition selecting the rows of the loads that the incremental staging model
    reading the source has not staged yet — the rows this build stages (tests on a source run before the models
    reading it). None when the test is not narrowed, no built staging model reads the source with
    `loaded_since_last_run` (its first build tests every row), or the build is a full refresh (it restages every
    row). -#}
{% macro harbor_rows_not_staged_yet(relation) -%}
    {%- if not harbor_in_changed_scope(relation) or flags.FULL_REFRESH -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set sources = model.depends_on.nodes | select('in', graph.sources.keys()) | list -%}
    {%- if sources | length != 1 or model.depends_on.nodes | length != 1 -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and sources[0] in node.depends_on.nodes
        and node.config.materialized == 'incremental' and 'loaded_since_last_run' in node.raw_code -%}
        {%- set staged = adapter.get_relation(node.database, node.schema, node.alias or node.name) -%}
        {%- if staged is not none -%}
            {%- do return(loaded_since_last_run(staged=staged)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}

{#- This test's history (macros/observability/history.sql): `passed_at`, the start of the newest invocation in
    which it passed, as text; `last_status`, the status of its newest run. Empty without a history. Read for every
    test at once, on the first test that asks, and kept for the rest of the invocation in the `graph` dict dbt
    shares between its nodes: a query per test added 0.3 s to the tests of a changed-scope build at 10M. -#}
{% macro harbor_test_history() -%}
    {%- if '_harbor_test_history' not in graph -%}
        {%- do graph.update({'_harbor_test_history': harbor_read_test_history()}) -%}
    {%- endif -%}
    {%- do return(graph['_harbor_test_history'].get(model.unique_id, {})) -%}
{%- endmacro %}

{% macro harbor_read_test_history() -%}
    {%- set schema = harbor_observability_schema() -%}
    {%- set results = adapter.get_relation(database=target.database, schema=schema, identifier='dbt_run_results') -%}
    {%- set invocations = adapter.get_relation(database=target.database, schema=schema, identifier='dbt_invocations') -%}
    {%- if results is none or invocations is none -%}
        {%- do return({}) -%}
    {%- endif -%}
    {%- set query -%}
        with runs as (
            select results.unique_id, results.status, invocations.run_started_at
            from {{ results }} as results
            inner join {{ invocations }} as invocations
                on results.invocation_id = invocations.invocation_id
            where results.resource_type = 'test'
        ),

        newest as (
            select unique_id, max(run_started_at) as run_started_at
            from runs
            group by unique_id
        )

        select
            runs.unique_id,
            cast(max(case when runs.status = 'pass' then runs.run_started_at end) as {{ dbt.type_string() }}),
            max(case when runs.run_started_at = newest.run_started_at then runs.status end)
        from runs
        inner join newest
            on runs.unique_id = newest.unique_id
        group by runs.unique_id
    {%- endset -%}
    {%- set history = {} -%}
    {%- for row in run_query(query).rows -%}
        {%- do history.update({row[0]: {'passed_at': row[1], 'last_status': row[2]}}) -%}
    {%- endfor -%}
    {%- do return(history) -%}
{%- endmacro %}
