{#-
    Harbor's run history: an on-run-end hook that appends every dbt invocation to the `observability` schema,
    with the elementary dbt package's table and column names so the rows mean what they mean in Elementary.

    Cost is the point of this design. Elementary's own hook issues one insert per artifact batch and re-reads
    the tables it writes; this one renders every row in Jinja and sends a single multi-statement SQL string:
    one round trip per invocation, whatever the number of nodes.
-#}

{% macro harbor_observability_on_run_end(results) %}
    {%- if not execute or not var('observability_enabled', true) -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set schema = harbor_observability_schema() -%}
    {%- set now = modules.datetime.datetime.utcnow() -%}
    {%- set statements = [harbor_observability_ddl(schema)] -%}
    {%- do statements.append(harbor_observability_insert_invocation(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_run_results(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_test_results(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_freshness(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_replace_nodes(schema, now)) -%}
    {{- return(statements | reject('equalto', '') | join(';\n') ~ ';') -}}
{% endmacro %}


{% macro harbor_observability_schema() %}
    {{- return(var('observability_schema', 'observability')) -}}
{% endmacro %}


{#- A SQL literal: quoted text, or null. -#}
{% macro harbor_obs_lit(value) %}
    {%- if value is none -%}
        {{- return('null') -}}
    {%- elif value is boolean -%}
        {{- return('true' if value else 'false') -}}
    {%- elif value is number -%}
        {{- return(value | string) -}}
    {%- else -%}
        {{- return("'" ~ (value | string | replace("'", "''")) ~ "'") -}}
    {%- endif -%}
{% endmacro %}


{% macro harbor_obs_json(value) %}
    {{- return(harbor_obs_lit(tojson(value) if value is not none else none)) -}}
{% endmacro %}


{% macro harbor_obs_ts(value) %}
    {%- if value is none -%}
        {{- return('null') -}}
    {%- endif -%}
    {%- set text = value.strftime('%Y-%m-%d %H:%M:%S.%f') if value is not string else value -%}
    {{- return("cast('" ~ text[:26] | replace('T', ' ') | replace('Z', '') ~ "' as timestamp)") -}}
{% endmacro %}


{% macro harbor_obs_insert(schema, table, columns, rows) %}
    {%- if rows | length == 0 -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set sql -%}
insert into {{ schema }}.{{ table }} ({{ columns | join(', ') }}) values
{% for row in rows %}({{ row | join(', ') }}){{ ',' if not loop.last }}
{% endfor %}
    {%- endset -%}
    {{- return(sql) -}}
{% endmacro %}


{% macro harbor_obs_timing(result, step, edge) %}
    {%- for timing in result.timing if timing.name == step -%}
        {{- return(timing[edge]) -}}
    {%- endfor -%}
    {{- return(none) -}}
{% endmacro %}


{#- Results carry node objects; the graph has the same nodes as dicts, which Jinja reads more safely. -#}
{% macro harbor_obs_graph_node(unique_id) %}
    {{- return(graph.nodes.get(unique_id) or graph.sources.get(unique_id)) -}}
{% endmacro %}


{% macro harbor_observability_run_id() %}
    {{- return(var('harbor_run_id', env_var('HARBOR_RUN_ID', invocation_id))) -}}
{% endmacro %}


{% macro harbor_observability_insert_invocation(schema, results, now) %}
    {%- set args = invocation_args_dict -%}
    {%- set selected = args.get('select') or [] -%}
    {%- set row = [
        harbor_obs_lit(invocation_id),
        harbor_obs_lit(harbor_observability_run_id()),
        harbor_obs_lit('harbor'),
        harbor_obs_lit(env_var('HARBOR_JOB_NAME', 'harbor')),
        harbor_obs_ts(run_started_at),
        harbor_obs_ts(now),
        harbor_obs_ts(now),
        harbor_obs_lit(args.get('which') or flags.WHICH),
        harbor_obs_lit(dbt_version),
        harbor_obs_lit(flags.FULL_REFRESH or false),
        harbor_obs_json(args.get('vars') or {}),
        harbor_obs_lit(target.name),
        harbor_obs_lit(target.database),
        harbor_obs_lit(target.schema),
        harbor_obs_lit(target.profile_name),
        harbor_obs_lit(target.threads),
        harbor_obs_json(selected if selected is not string else [selected]),
        harbor_obs_lit(args.get('selector')),
        harbor_obs_lit(project_name),
        harbor_obs_lit(target.type),
        harbor_obs_lit(env_var('HARBOR_GIT_SHA', '') or none),
        harbor_obs_lit(results | length),
    ] -%}
    {{- return(harbor_obs_insert(schema, 'dbt_invocations', [
        'invocation_id', 'job_run_id', 'orchestrator', 'job_name', 'run_started_at', 'run_completed_at',
        'generated_at', 'command', 'dbt_version', 'full_refresh', 'invocation_vars', 'target_name',
        'target_database', 'target_schema', 'target_profile_name', 'threads', 'selected', 'yaml_selector',
        'project_name', 'adapter_type', 'git_sha', 'nodes_count',
    ], [row])) -}}
{% endmacro %}


{% macro harbor_observability_insert_run_results(schema, results, now) %}
    {%- set rows = [] -%}
    {%- for result in results if result.node.resource_type in ('model', 'test', 'seed', 'snapshot', 'source') -%}
        {%- set node = harbor_obs_graph_node(result.node.unique_id) -%}
        {%- set response = result.adapter_response or {} -%}
        {%- do rows.append([
            harbor_obs_lit(invocation_id ~ '.' ~ node.unique_id),
            harbor_obs_lit(node.unique_id),
            harbor_obs_lit(invocation_id),
            harbor_obs_ts(now),
            harbor_obs_ts(now),
            harbor_obs_lit(node.name),
            harbor_obs_lit(result.message),
            harbor_obs_lit(result.status | string),
            harbor_obs_lit(node.resource_type | string),
            harbor_obs_lit(result.execution_time or 0),
            harbor_obs_ts(harbor_obs_timing(result, 'execute', 'started_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'execute', 'completed_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'compile', 'started_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'compile', 'completed_at')),
            harbor_obs_lit(response.get('rows_affected')),
            harbor_obs_lit(flags.FULL_REFRESH or false),
            harbor_obs_lit(result.node.compiled_code if result.node.compiled_code is defined else none),
            harbor_obs_lit(result.failures),
            harbor_obs_lit(response.get('query_id')),
            harbor_obs_lit(result.thread_id),
            harbor_obs_lit(node.config.get('materialized')),
            harbor_obs_json(response),
            harbor_obs_lit(node.schema),
        ]) -%}
    {%- endfor -%}
    {{- return(harbor_obs_insert(schema, 'dbt_run_results', [
        'model_execution_id', 'unique_id', 'invocation_id', 'generated_at', 'created_at', 'name', 'message',
        'status', 'resource_type', 'execution_time', 'execute_started_at', 'execute_completed_at',
        'compile_started_at', 'compile_completed_at', 'rows_affected', 'full_refresh', 'compiled_code',
        'failures', 'query_id', 'thread_id', 'materialization', 'adapter_response', 'schema_name',
    ], rows)) -}}
{% endmacro %}


{#- The node a test is attached to: its model, seed, snapshot or source. -#}
{% macro harbor_obs_tested_node(test_node) %}
    {%- set parent_id = test_node.get('attached_node') or (test_node.depends_on.nodes | last) -%}
    {%- if parent_id in graph.nodes -%}
        {{- return(graph.nodes[parent_id]) -}}
    {%- elif parent_id in graph.sources -%}
        {{- return(graph.sources[parent_id]) -}}
    {%- endif -%}
    {{- return(none) -}}
{% endmacro %}


{% macro harbor_observability_insert_test_results(schema, results, now) %}
    {%- set rows = [] -%}
    {%- set samples = [] -%}
    {%- set sample_limit = var('observability_sample_rows', 5) | int -%}
    {%- for result in results if result.node.resource_type == 'test' -%}
        {%- set node = harbor_obs_graph_node(result.node.unique_id) -%}
        {%- set compiled_code = result.node.compiled_code -%}
        {%- set parent = harbor_obs_tested_node(node) -%}
        {%- set metadata = node.get('test_metadata') or {} -%}
        {%- set status = result.status | string -%}
        {%- set test_id = invocation_id ~ '.' ~ node.unique_id -%}
        {%- set short_name = metadata.get('name') or node.name -%}
        {%- set params = metadata.get('kwargs') or {} -%}
        {%- do rows.append([
            harbor_obs_lit(test_id),
            harbor_obs_lit(test_id),
            harbor_obs_lit(node.unique_id),
            harbor_obs_lit(parent.unique_id if parent else none),
            harbor_obs_ts(now),
            harbor_obs_lit(parent.database if parent else none),
            harbor_obs_lit(parent.schema if parent else node.schema),
            harbor_obs_lit((parent.get('identifier') or parent.alias) if parent else none),
            harbor_obs_lit(node.get('column_name') or params.get('column_name')),
            harbor_obs_lit('dbt_test'),
            harbor_obs_lit('generic' if metadata else 'singular'),
            harbor_obs_lit(result.message),
            harbor_obs_json(parent.config.get('meta', {}).get('owner') if parent else none),
            harbor_obs_json(node.tags),
            harbor_obs_lit(compiled_code),
            harbor_obs_lit(node.name),
            harbor_obs_json(params),
            harbor_obs_lit(node.config.severity | lower),
            harbor_obs_lit(status),
            harbor_obs_lit(result.failures),
            harbor_obs_lit(short_name),
            harbor_obs_lit(node.alias),
            harbor_obs_lit(invocation_id),
            harbor_obs_lit(result.execution_time or 0),
            harbor_obs_lit(metadata.get('namespace')),
        ]) -%}
        {#- Failed-row samples: the test's stored failures when it has them, else its own query re-run. -#}
        {%- if status in ('fail', 'warn') and sample_limit > 0 and compiled_code -%}
            {%- set source_sql = node.relation_name if node.config.get('store_failures') and node.relation_name
                else '(\n' ~ compiled_code ~ '\n)' -%}
            {%- do samples.append(
                'insert into ' ~ schema ~ '.test_result_rows '
                ~ '(elementary_test_results_id, result_row, detected_at, created_at, test_type)\n'
                ~ 'select ' ~ harbor_obs_lit(test_id) ~ ', ' ~ harbor_obs_row_to_json('sample_row') ~ ', '
                ~ harbor_obs_ts(now) ~ ', ' ~ harbor_obs_ts(now) ~ ", 'dbt_test'\n"
                ~ 'from (select * from ' ~ source_sql ~ ' as failing limit ' ~ sample_limit ~ ') as sample_row'
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set insert = harbor_obs_insert(schema, 'elementary_test_results', [
        'id', 'test_execution_id', 'test_unique_id', 'model_unique_id', 'detected_at', 'database_name',
        'schema_name', 'table_name', 'column_name', 'test_type', 'test_sub_type', 'test_results_description',
        'owners', 'tags', 'test_results_query', 'test_name', 'test_params', 'severity', 'status', 'failures',
        'test_short_name', 'test_alias', 'invocation_id', 'execution_time', 'test_namespace',
    ], rows) -%}
    {{- return(([insert] + samples) | reject('equalto', '') | join(';\n')) -}}
{% endmacro %}


{% macro harbor_obs_row_to_json(alias) %}
    {{- return(adapter.dispatch('harbor_obs_row_to_json')(alias)) -}}
{% endmacro %}

{% macro default__harbor_obs_row_to_json(alias) %}
    {{- return('cast(to_json(' ~ alias ~ ') as text)') -}}
{% endmacro %}

{% macro postgres__harbor_obs_row_to_json(alias) %}
    {{- return('cast(row_to_json(' ~ alias ~ ') as text)') -}}
{% endmacro %}


{% macro harbor_observability_insert_freshness(schema, results, now) %}
    {%- set rows = [] -%}
    {%- for result in results if result.node.resource_type == 'source' and result.max_loaded_at is defined -%}
        {%- set node = harbor_obs_graph_node(result.node.unique_id) -%}
        {%- set freshness = node.get('freshness') or {} -%}
        {%- do rows.append([
            harbor_obs_lit(invocation_id ~ '.' ~ node.unique_id),
            harbor_obs_lit(node.unique_id),
            harbor_obs_ts(result.max_loaded_at),
            harbor_obs_ts(result.snapshotted_at),
            harbor_obs_ts(now),
            harbor_obs_ts(now),
            harbor_obs_lit(result.age),
            harbor_obs_lit(result.status | string),
            harbor_obs_lit(result.message if (result.status | string) not in ('pass', 'warn') else none),
            harbor_obs_ts(harbor_obs_timing(result, 'compile', 'started_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'compile', 'completed_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'execute', 'started_at')),
            harbor_obs_ts(harbor_obs_timing(result, 'execute', 'completed_at')),
            harbor_obs_lit(invocation_id),
            harbor_obs_json(freshness.get('warn_after')),
            harbor_obs_json(freshness.get('error_after')),
            harbor_obs_lit(freshness.get('filter')),
        ]) -%}
    {%- endfor -%}
    {{- return(harbor_obs_insert(schema, 'dbt_source_freshness_results', [
        'source_freshness_execution_id', 'unique_id', 'max_loaded_at', 'snapshotted_at', 'generated_at',
        'created_at', 'max_loaded_at_time_ago_in_s', 'status', 'error', 'compile_started_at',
        'compile_completed_at', 'execute_started_at', 'execute_completed_at', 'invocation_id', 'warn_after',
        'error_after', 'filter',
    ], rows)) -}}
{% endmacro %}


{#- The project's nodes: the current state, rewritten each run (the history lives in the run tables). -#}
{% macro harbor_observability_replace_nodes(schema, now) %}
    {%- set models, snapshots, seeds, tests, sources, exposures = [], [], [], [], [], [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- set owner = node.config.get('meta', {}).get('owner') or node.get('meta', {}).get('owner') -%}
        {%- set common = [
            harbor_obs_lit(node.unique_id),
            harbor_obs_lit(node.alias),
            harbor_obs_lit(node.checksum.checksum if node.get('checksum') else none),
            harbor_obs_json(node.tags),
            harbor_obs_json(node.get('meta') or node.config.get('meta') or {}),
            harbor_obs_json(owner),
            harbor_obs_lit(node.database),
            harbor_obs_lit(node.schema),
            harbor_obs_lit(node.description),
            harbor_obs_lit(node.name),
            harbor_obs_lit(node.package_name),
            harbor_obs_lit(node.original_file_path),
            harbor_obs_lit(node.path),
            harbor_obs_ts(now),
        ] -%}
        {%- if node.resource_type in ('model', 'snapshot') -%}
            {%- set unique_key = node.config.get('unique_key') -%}
            {%- do (models if node.resource_type == 'model' else snapshots).append(common + [
                harbor_obs_lit(node.config.materialized),
                harbor_obs_json(node.depends_on.macros),
                harbor_obs_json(node.depends_on.nodes),
                harbor_obs_lit(node.patch_path),
                harbor_obs_lit(unique_key if unique_key is string or unique_key is none else tojson(unique_key)),
                harbor_obs_lit(node.config.get('incremental_strategy')),
            ]) -%}
        {%- elif node.resource_type == 'seed' -%}
            {%- do seeds.append(common) -%}
        {%- elif node.resource_type == 'test' -%}
            {%- set metadata = node.get('test_metadata') or {} -%}
            {%- set parent = harbor_obs_tested_node(node) -%}
            {%- do tests.append([
                harbor_obs_lit(node.unique_id),
                harbor_obs_lit(node.database),
                harbor_obs_lit(node.schema),
                harbor_obs_lit(node.name),
                harbor_obs_lit(metadata.get('name') or node.name),
                harbor_obs_lit(node.alias),
                harbor_obs_lit(node.get('column_name')),
                harbor_obs_lit(node.config.severity | lower),
                harbor_obs_lit(node.config.warn_if),
                harbor_obs_lit(node.config.error_if),
                harbor_obs_json(metadata.get('kwargs') or {}),
                harbor_obs_lit(metadata.get('namespace')),
                harbor_obs_json(node.tags),
                harbor_obs_json(parent.tags if parent else []),
                harbor_obs_json(node.get('meta') or node.config.get('meta') or {}),
                harbor_obs_json(node.depends_on.macros),
                harbor_obs_json(node.depends_on.nodes),
                harbor_obs_lit(parent.unique_id if parent else none),
                harbor_obs_lit(node.description),
                harbor_obs_lit(node.package_name),
                harbor_obs_lit('generic' if metadata else 'singular'),
                harbor_obs_lit(node.original_file_path),
                harbor_obs_lit(node.path),
                harbor_obs_ts(now),
            ]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for source in graph.sources.values() -%}
        {%- set freshness = source.get('freshness') or {} -%}
        {%- do sources.append([
            harbor_obs_lit(source.unique_id),
            harbor_obs_lit(source.database),
            harbor_obs_lit(source.schema),
            harbor_obs_lit(source.source_name),
            harbor_obs_lit(source.name),
            harbor_obs_lit(source.identifier),
            harbor_obs_lit(source.loaded_at_field),
            harbor_obs_json(freshness.get('warn_after')),
            harbor_obs_json(freshness.get('error_after')),
            harbor_obs_lit(freshness.get('filter')),
            harbor_obs_lit(source.relation_name),
            harbor_obs_json(source.tags),
            harbor_obs_json(source.get('meta') or {}),
            harbor_obs_json(source.get('meta', {}).get('owner')),
            harbor_obs_lit(source.package_name),
            harbor_obs_lit(source.original_file_path),
            harbor_obs_lit(source.path),
            harbor_obs_lit(source.source_description),
            harbor_obs_lit(source.description),
            harbor_obs_ts(now),
        ]) -%}
    {%- endfor -%}
    {%- for exposure in graph.exposures.values() -%}
        {%- do exposures.append([
            harbor_obs_lit(exposure.unique_id),
            harbor_obs_lit(exposure.name),
            harbor_obs_lit(exposure.maturity),
            harbor_obs_lit(exposure.type),
            harbor_obs_lit(exposure.owner.email),
            harbor_obs_lit(exposure.owner.name),
            harbor_obs_lit(exposure.url),
            harbor_obs_json(exposure.depends_on.macros),
            harbor_obs_json(exposure.depends_on.nodes),
            harbor_obs_lit(exposure.description),
            harbor_obs_json(exposure.tags),
            harbor_obs_json(exposure.get('meta') or {}),
            harbor_obs_lit(exposure.package_name),
            harbor_obs_lit(exposure.original_file_path),
            harbor_obs_lit(exposure.path),
            harbor_obs_ts(now),
            harbor_obs_lit(exposure.label),
        ]) -%}
    {%- endfor -%}
    {%- set artifact = ['unique_id', 'alias', 'checksum', 'tags', 'meta', 'owner', 'database_name', 'schema_name',
        'description', 'name', 'package_name', 'original_path', 'path', 'generated_at'] -%}
    {%- set modelish = artifact + ['materialization', 'depends_on_macros', 'depends_on_nodes', 'patch_path',
        'unique_key', 'incremental_strategy'] -%}
    {%- set tables = [
        ('dbt_models', modelish, models),
        ('dbt_snapshots', modelish, snapshots),
        ('dbt_seeds', artifact, seeds),
        ('dbt_tests', ['unique_id', 'database_name', 'schema_name', 'name', 'short_name', 'alias',
            'test_column_name', 'severity', 'warn_if', 'error_if', 'test_params', 'test_namespace', 'tags',
            'model_tags', 'meta', 'depends_on_macros', 'depends_on_nodes', 'parent_model_unique_id',
            'description', 'package_name', 'type', 'original_path', 'path', 'generated_at'], tests),
        ('dbt_sources', ['unique_id', 'database_name', 'schema_name', 'source_name', 'name', 'identifier',
            'loaded_at_field', 'freshness_warn_after', 'freshness_error_after', 'freshness_filter',
            'relation_name', 'tags', 'meta', 'owner', 'package_name', 'original_path', 'path',
            'source_description', 'description', 'generated_at'], sources),
        ('dbt_exposures', ['unique_id', 'name', 'maturity', 'type', 'owner_email', 'owner_name', 'url',
            'depends_on_macros', 'depends_on_nodes', 'description', 'tags', 'meta', 'package_name',
            'original_path', 'path', 'generated_at', 'label'], exposures),
    ] -%}
    {%- set statements = [] -%}
    {%- for table, columns, rows in tables -%}
        {%- do statements.append('delete from ' ~ schema ~ '.' ~ table) -%}
        {%- do statements.append(harbor_obs_insert(schema, table, columns, rows)) -%}
    {%- endfor -%}
    {{- return(statements | reject('equalto', '') | join(';\n')) -}}
{% endmacro %}


{#- Tables are created on first use; columns follow elementary's, plus a few of Harbor's (run id, adapter). -#}
{% macro harbor_observability_ddl(schema) %}
    {%- set text, ts, flag, num, big = 'text', 'timestamp', 'boolean', 'double precision', 'bigint' -%}
    {%- set artifact = [('unique_id', text), ('alias', text), ('checksum', text), ('tags', text), ('meta', text),
        ('owner', text), ('database_name', text), ('schema_name', text), ('description', text), ('name', text),
        ('package_name', text), ('original_path', text), ('path', text), ('generated_at', ts)] -%}
    {%- set modelish = artifact + [('materialization', text), ('depends_on_macros', text),
        ('depends_on_nodes', text), ('patch_path', text), ('unique_key', text), ('incremental_strategy', text)] -%}
    {%- set tables = {
        'dbt_invocations': [('invocation_id', text), ('job_run_id', text), ('orchestrator', text),
            ('job_name', text), ('run_started_at', ts), ('run_completed_at', ts), ('generated_at', ts),
            ('command', text), ('dbt_version', text), ('full_refresh', flag), ('invocation_vars', text),
            ('target_name', text), ('target_database', text), ('target_schema', text),
            ('target_profile_name', text), ('threads', big), ('selected', text), ('yaml_selector', text),
            ('project_name', text), ('adapter_type', text), ('git_sha', text), ('nodes_count', big)],
        'dbt_run_results': [('model_execution_id', text), ('unique_id', text), ('invocation_id', text),
            ('generated_at', ts), ('created_at', ts), ('name', text), ('message', text), ('status', text),
            ('resource_type', text), ('execution_time', num), ('execute_started_at', ts),
            ('execute_completed_at', ts), ('compile_started_at', ts), ('compile_completed_at', ts),
            ('rows_affected', big), ('full_refresh', flag), ('compiled_code', text), ('failures', big),
            ('query_id', text), ('thread_id', text), ('materialization', text), ('adapter_response', text),
            ('schema_name', text)],
        'elementary_test_results': [('id', text), ('test_execution_id', text), ('test_unique_id', text),
            ('model_unique_id', text), ('detected_at', ts), ('database_name', text), ('schema_name', text),
            ('table_name', text), ('column_name', text), ('test_type', text), ('test_sub_type', text),
            ('test_results_description', text), ('owners', text), ('tags', text), ('test_results_query', text),
            ('test_name', text), ('test_params', text), ('severity', text), ('status', text), ('failures', big),
            ('test_short_name', text), ('test_alias', text), ('invocation_id', text), ('execution_time', num),
            ('test_namespace', text)],
        'test_result_rows': [('elementary_test_results_id', text), ('result_row', text), ('detected_at', ts),
            ('created_at', ts), ('test_type', text)],
        'dbt_source_freshness_results': [('source_freshness_execution_id', text), ('unique_id', text),
            ('max_loaded_at', ts), ('snapshotted_at', ts), ('generated_at', ts), ('created_at', ts),
            ('max_loaded_at_time_ago_in_s', num), ('status', text), ('error', text), ('compile_started_at', ts),
            ('compile_completed_at', ts), ('execute_started_at', ts), ('execute_completed_at', ts),
            ('invocation_id', text), ('warn_after', text), ('error_after', text), ('filter', text)],
        'dbt_models': modelish,
        'dbt_snapshots': modelish,
        'dbt_seeds': artifact,
        'dbt_tests': [('unique_id', text), ('database_name', text), ('schema_name', text), ('name', text),
            ('short_name', text), ('alias', text), ('test_column_name', text), ('severity', text),
            ('warn_if', text), ('error_if', text), ('test_params', text), ('test_namespace', text),
            ('tags', text), ('model_tags', text), ('meta', text), ('depends_on_macros', text),
            ('depends_on_nodes', text), ('parent_model_unique_id', text), ('description', text),
            ('package_name', text), ('type', text), ('original_path', text), ('path', text),
            ('generated_at', ts)],
        'dbt_sources': [('unique_id', text), ('database_name', text), ('schema_name', text),
            ('source_name', text), ('name', text), ('identifier', text), ('loaded_at_field', text),
            ('freshness_warn_after', text), ('freshness_error_after', text), ('freshness_filter', text),
            ('relation_name', text), ('tags', text), ('meta', text), ('owner', text), ('package_name', text),
            ('original_path', text), ('path', text), ('source_description', text), ('description', text),
            ('generated_at', ts)],
        'dbt_exposures': [('unique_id', text), ('name', text), ('maturity', text), ('type', text),
            ('owner_email', text), ('owner_name', text), ('url', text), ('depends_on_macros', text),
            ('depends_on_nodes', text), ('description', text), ('tags', text), ('meta', text),
            ('package_name', text), ('original_path', text), ('path', text), ('generated_at', ts),
            ('label', text)],
        'ingestion_runs': harbor_observability_ingestion_columns(),
    } -%}
    {%- set statements = ['create schema if not exists ' ~ schema] -%}
    {%- for table, columns in tables.items() -%}
        {%- set cols = [] -%}
        {%- for name, type in columns -%}{%- do cols.append(name ~ ' ' ~ type) -%}{%- endfor -%}
        {%- do statements.append('create table if not exists ' ~ schema ~ '.' ~ table ~ ' (' ~ cols | join(', ') ~ ')') -%}
    {%- endfor -%}
    {{- return(statements | join(';\n')) -}}
{% endmacro %}


{#- Written by ingestion (ingestion/observability/history.py keeps the same list). -#}
{% macro harbor_observability_ingestion_columns() %}
    {{- return([('run_id', 'text'), ('source_name', 'text'), ('table_name', 'text'), ('load_id', 'text'),
        ('pipeline_name', 'text'), ('status', 'text'), ('rows_extracted', 'bigint'), ('rows_loaded', 'bigint'),
        ('rows_quarantined', 'bigint'), ('started_at', 'timestamp'), ('completed_at', 'timestamp'),
        ('duration_seconds', 'double precision'), ('error', 'text'), ('created_at', 'timestamp')]) -}}
{% endmacro %}
