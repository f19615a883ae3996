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
    {%- set statements = [harbor_obs_one_writer_at_a_time(), harbor_observability_ddl(schema)] -%}
    {%- do statements.append(harbor_observability_insert_invocation(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_run_results(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_test_results(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_insert_freshness(schema, results, now)) -%}
    {%- do statements.append(harbor_observability_replace_nodes(schema, now)) -%}
    {{- return(statements | reject('equalto', '') | join(';\n') ~ ';') -}}
{% endmacro %}


{#- The hook rewrites the project's node tables (delete, then insert): two invocations writing at once on
    PostgreSQL, each deleting what it saw, left both copies (every test twice, coverage doubled in the report). The
    second waits for the first's transaction instead. DuckDB lets one process write at a time anyway. -#}
{% macro harbor_obs_one_writer_at_a_time() %}
    {{- return(adapter.dispatch('harbor_obs_one_writer_at_a_time')()) -}}
{% endmacro %}

{% macro default__harbor_obs_one_writer_at_a_time() %}
    {{- return('') -}}
{% endmacro %}

{% macro postgres__harbor_obs_one_writer_at_a_time() %}
    {{- return("select pg_advisory_xact_lock(hashtext('harbor observability history'))") -}}
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


{% macro harbor_obs_ts(value) %}
    {%- if value is none -%}
        {{- return('null') -}}
    {%- endif -%}
    {%- set text = value.strftime('%Y-%m-%d %H:%M:%S.%f') if value is not string else value -%}
    {{- return("cast('" ~ text[:26] | replace('T', ' ') | replace('Z', '') ~ "' as timestamp)") -}}
{% endmacro %}


{#- Rows hold plain values; they are rendered here, inline, because a dbt macro call per value is what makes
    a hook slow (thousands of calls for a mid-sized project). -#}
{% macro harbor_obs_insert(schema, table, columns, rows) %}
    {%- if rows | length == 0 -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set lines = [] -%}
    {%- for row in rows -%}
        {%- set cells = [] -%}
        {%- for value in row -%}
            {%- if value is none -%}
                {%- do cells.append('null') -%}
            {%- elif value is boolean -%}
                {%- do cells.append('true' if value else 'false') -%}
            {%- elif value is number -%}
                {%- do cells.append(value | string) -%}
            {%- elif value is string -%}
                {%- do cells.append("'" ~ value | replace("'", "''") ~ "'") -%}
            {%- elif value is mapping or value is sequence -%}
                {#- Converted only when it holds a date (Python's repr names its type): few do, and a macro call
                    per value is what makes a hook slow. -#}
                {%- set jsonable = harbor_obs_jsonable(value) if 'datetime.' in (value | string) else value -%}
                {%- do cells.append("'" ~ tojson(jsonable) | replace("'", "''") ~ "'") -%}
            {%- elif value.strftime is defined -%}
                {%- do cells.append("cast('" ~ value.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as timestamp)") -%}
            {%- else -%}
                {%- do cells.append("'" ~ value | string | replace("'", "''") ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do lines.append('(' ~ cells | join(', ') ~ ')') -%}
    {%- endfor -%}
    {{- return('insert into ' ~ schema ~ '.' ~ table ~ ' (' ~ columns | join(', ') ~ ') values\n' ~ lines | join(',\n')) -}}
{% endmacro %}


{#- A mapping JSON can hold: YAML reads `2024-01-01` (in `--vars`, a test's arguments, a `meta`) as a date, which
    dbt's `tojson` cannot write (a TypeError it does not catch: the hook failed, and nothing more was recorded).
    Such values are written as text. -#}
{% macro harbor_obs_jsonable(value) %}
    {%- if value is none or value is boolean or value is number or value is string -%}
        {{- return(value) -}}
    {%- elif value is mapping -%}
        {%- set converted = {} -%}
        {%- for key, item in value.items() -%}
            {%- do converted.update({key | string: harbor_obs_jsonable(item)}) -%}
        {%- endfor -%}
        {{- return(converted) -}}
    {%- elif value is sequence -%}
        {%- set converted = [] -%}
        {%- for item in value -%}
            {%- do converted.append(harbor_obs_jsonable(item)) -%}
        {%- endfor -%}
        {{- return(converted) -}}
    {%- endif -%}
    {{- return(value | string) -}}
{% endmacro %}


{% macro harbor_observability_run_id() %}
    {{- return(var('harbor_run_id', env_var('HARBOR_RUN_ID', invocation_id))) -}}
{% endmacro %}


{% macro harbor_observability_insert_invocation(schema, results, now) %}
    {%- set args = invocation_args_dict -%}
    {%- set selected = args.get('select') or [] -%}
    {%- set row = [
        (invocation_id),
        (harbor_observability_run_id()),
        ('harbor'),
        (env_var('HARBOR_JOB_NAME', 'harbor')),
        (run_started_at),
        (now),
        (now),
        (args.get('which') or flags.WHICH),
        (dbt_version),
        (flags.FULL_REFRESH or false),
        (args.get('vars') or {}),
        (target.name),
        (target.database),
        (target.schema),
        (target.profile_name),
        (target.threads),
        (selected if selected is not string else [selected]),
        (args.get('selector')),
        (project_name),
        (target.type),
        (env_var('HARBOR_GIT_SHA', '') or none),
        (results | length),
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
    {%- set recorded = ('model', 'test', 'unit_test', 'seed', 'snapshot', 'source') -%}
    {%- for result in results if result.node.resource_type in recorded -%}
        {#- A unit test is in neither graph: its result's node says enough. Left out, a failing one (which skips
            its model and everything after) left an alert saying every test passed. -#}
        {%- set node = graph.nodes.get(result.node.unique_id) or graph.sources.get(result.node.unique_id)
            or result.node -%}
        {%- set response = result.adapter_response or {} -%}
        {%- set timing = {} -%}
        {%- for step in result.timing -%}
            {%- do timing.update({step.name ~ '.started_at': step.started_at, step.name ~ '.completed_at': step.completed_at}) -%}
        {%- endfor -%}
        {%- do rows.append([
            (invocation_id ~ '.' ~ node.unique_id),
            (node.unique_id),
            (invocation_id),
            (now),
            (now),
            (node.name),
            (result.message),
            (result.status | string),
            (node.resource_type | string),
            (result.execution_time or 0),
            timing.get('execute.started_at'),
            timing.get('execute.completed_at'),
            timing.get('compile.started_at'),
            timing.get('compile.completed_at'),
            (response.get('rows_affected')),
            (flags.FULL_REFRESH or false),
            (result.node.compiled_code if result.node.compiled_code is defined else none),
            (result.failures),
            (response.get('query_id')),
            (result.thread_id),
            (node.config.get('materialized')),
            (response),
            (node.schema),
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
        {%- set node = graph.nodes[result.node.unique_id] -%}
        {%- set compiled_code = result.node.compiled_code -%}
        {%- set parent = harbor_obs_tested_node(node) -%}
        {%- set metadata = node.get('test_metadata') or {} -%}
        {%- set status = result.status | string -%}
        {%- set test_id = invocation_id ~ '.' ~ node.unique_id -%}
        {%- set short_name = metadata.get('name') or node.name -%}
        {%- set params = metadata.get('kwargs') or {} -%}
        {%- do rows.append([
            (test_id),
            (test_id),
            (node.unique_id),
            (parent.unique_id if parent else none),
            (now),
            (parent.database if parent else none),
            (parent.schema if parent else node.schema),
            ((parent.get('identifier') or parent.alias) if parent else none),
            (node.get('column_name') or params.get('column_name')),
            ('dbt_test'),
            ('generic' if metadata else 'singular'),
            (result.message),
            (parent.config.get('meta', {}).get('owner') if parent else none),
            (node.tags),
            (compiled_code),
            (node.name),
            (params),
            (node.config.severity | lower),
            (status),
            (result.failures),
            (short_name),
            (node.alias),
            (invocation_id),
            (result.execution_time or 0),
            (metadata.get('namespace')),
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


{#- Every source result, a freshness check that could not run too (a `loaded_at_field` that is not there: status
    `runtime error`, no max_loaded_at): left out, the report and the metrics showed only the sources that passed. -#}
{% macro harbor_observability_insert_freshness(schema, results, now) %}
    {%- set rows = [] -%}
    {%- for result in results if result.node.resource_type == 'source' -%}
        {%- set node = graph.sources.get(result.node.unique_id) -%}
        {%- set timing = {} -%}
        {%- for step in result.timing -%}
            {%- do timing.update({step.name ~ '.started_at': step.started_at, step.name ~ '.completed_at': step.completed_at}) -%}
        {%- endfor -%}
        {%- set freshness = node.get('freshness') or {} -%}
        {%- do rows.append([
            (invocation_id ~ '.' ~ node.unique_id),
            (node.unique_id),
            (result.max_loaded_at if result.max_loaded_at is defined else none),
            (result.snapshotted_at if result.snapshotted_at is defined else none),
            (now),
            (now),
            (result.age if result.age is defined else none),
            (result.status | string),
            (result.message if (result.status | string) not in ('pass', 'warn') else none),
            timing.get('compile.started_at'),
            timing.get('compile.completed_at'),
            timing.get('execute.started_at'),
            timing.get('execute.completed_at'),
            (invocation_id),
            (freshness.get('warn_after')),
            (freshness.get('error_after')),
            (freshness.get('filter')),
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
            (node.unique_id),
            (node.alias),
            (node.checksum.checksum if node.get('checksum') else none),
            (node.tags),
            (node.get('meta') or node.config.get('meta') or {}),
            (owner),
            (node.database),
            (node.schema),
            (node.description),
            (node.name),
            (node.package_name),
            (node.original_file_path),
            (node.path),
            (now),
        ] -%}
        {%- if node.resource_type in ('model', 'snapshot') -%}
            {%- set unique_key = node.config.get('unique_key') -%}
            {%- do (models if node.resource_type == 'model' else snapshots).append(common + [
                (node.config.materialized),
                (node.depends_on.macros),
                (node.depends_on.nodes),
                (node.patch_path),
                (unique_key if unique_key is string or unique_key is none else tojson(unique_key)),
                (node.config.get('incremental_strategy')),
            ]) -%}
        {%- elif node.resource_type == 'seed' -%}
            {%- do seeds.append(common) -%}
        {%- elif node.resource_type == 'test' -%}
            {%- set metadata = node.get('test_metadata') or {} -%}
            {%- set parent = harbor_obs_tested_node(node) -%}
            {%- do tests.append([
                (node.unique_id),
                (node.database),
                (node.schema),
                (node.name),
                (metadata.get('name') or node.name),
                (node.alias),
                (node.get('column_name')),
                (node.config.severity | lower),
                (node.config.warn_if),
                (node.config.error_if),
                (metadata.get('kwargs') or {}),
                (metadata.get('namespace')),
                (node.tags),
                (parent.tags if parent else []),
                (node.get('meta') or node.config.get('meta') or {}),
                (node.depends_on.macros),
                (node.depends_on.nodes),
                (parent.unique_id if parent else none),
                (node.description),
                (node.package_name),
                ('generic' if metadata else 'singular'),
                (node.original_file_path),
                (node.path),
                (now),
            ]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for source in graph.sources.values() -%}
        {%- set freshness = source.get('freshness') or {} -%}
        {%- do sources.append([
            (source.unique_id),
            (source.database),
            (source.schema),
            (source.source_name),
            (source.name),
            (source.identifier),
            (source.loaded_at_field),
            (freshness.get('warn_after')),
            (freshness.get('error_after')),
            (freshness.get('filter')),
            (source.relation_name),
            (source.tags),
            (source.get('meta') or {}),
            (source.get('meta', {}).get('owner')),
            (source.package_name),
            (source.original_file_path),
            (source.path),
            (source.source_description),
            (source.description),
            (now),
        ]) -%}
    {%- endfor -%}
    {%- for exposure in graph.exposures.values() -%}
        {%- do exposures.append([
            (exposure.unique_id),
            (exposure.name),
            (exposure.maturity),
            (exposure.type),
            (exposure.owner.email),
            (exposure.owner.name),
            (exposure.url),
            (exposure.depends_on.macros),
            (exposure.depends_on.nodes),
            (exposure.description),
            (exposure.tags),
            (exposure.get('meta') or {}),
            (exposure.package_name),
            (exposure.original_file_path),
            (exposure.path),
            (now),
            (exposure.label),
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


{#- Tables are created on first use; columns follow elementary's, plus a few of Harbor's (run id, adapter).
    Plain text on purpose: dbt compiles each macro's Jinja on first call, and this is the largest one.
    ingestion_runs is also created by ingestion/observability/history.py (INGESTION_COLUMNS): keep both alike. -#}
{% macro harbor_observability_ddl(schema) %}
    {%- set ddl -%}
create schema if not exists {{ schema }};
create table if not exists {{ schema }}.dbt_invocations (
    invocation_id text,
    job_run_id text,
    orchestrator text,
    job_name text,
    run_started_at timestamp,
    run_completed_at timestamp,
    generated_at timestamp,
    command text,
    dbt_version text,
    full_refresh boolean,
    invocation_vars text,
    target_name text,
    target_database text,
    target_schema text,
    target_profile_name text,
    threads bigint,
    selected text,
    yaml_selector text,
    project_name text,
    adapter_type text,
    git_sha text,
    nodes_count bigint
);
create table if not exists {{ schema }}.dbt_run_results (
    model_execution_id text,
    unique_id text,
    invocation_id text,
    generated_at timestamp,
    created_at timestamp,
    name text,
    message text,
    status text,
    resource_type text,
    execution_time double precision,
    execute_started_at timestamp,
    execute_completed_at timestamp,
    compile_started_at timestamp,
    compile_completed_at timestamp,
    rows_affected bigint,
    full_refresh boolean,
    compiled_code text,
    failures bigint,
    query_id text,
    thread_id text,
    materialization text,
    adapter_response text,
    schema_name text
);
create table if not exists {{ schema }}.elementary_test_results (
    id text,
    test_execution_id text,
    test_unique_id text,
    model_unique_id text,
    detected_at timestamp,
    database_name text,
    schema_name text,
    table_name text,
    column_name text,
    test_type text,
    test_sub_type text,
    test_results_description text,
    owners text,
    tags text,
    test_results_query text,
    test_name text,
    test_params text,
    severity text,
    status text,
    failures bigint,
    test_short_name text,
    test_alias text,
    invocation_id text,
    execution_time double precision,
    test_namespace text
);
create table if not exists {{ schema }}.test_result_rows (
    elementary_test_results_id text,
    result_row text,
    detected_at timestamp,
    created_at timestamp,
    test_type text
);
create table if not exists {{ schema }}.dbt_source_freshness_results (
    source_freshness_execution_id text,
    unique_id text,
    max_loaded_at timestamp,
    snapshotted_at timestamp,
    generated_at timestamp,
    created_at timestamp,
    max_loaded_at_time_ago_in_s double precision,
    status text,
    error text,
    compile_started_at timestamp,
    compile_completed_at timestamp,
    execute_started_at timestamp,
    execute_completed_at timestamp,
    invocation_id text,
    warn_after text,
    error_after text,
    filter text
);
create table if not exists {{ schema }}.dbt_models (
    unique_id text,
    alias text,
    checksum text,
    tags text,
    meta text,
    owner text,
    database_name text,
    schema_name text,
    description text,
    name text,
    package_name text,
    original_path text,
    path text,
    generated_at timestamp,
    materialization text,
    depends_on_macros text,
    depends_on_nodes text,
    patch_path text,
    unique_key text,
    incremental_strategy text
);
create table if not exists {{ schema }}.dbt_snapshots (
    unique_id text,
    alias text,
    checksum text,
    tags text,
    meta text,
    owner text,
    database_name text,
    schema_name text,
    description text,
    name text,
    package_name text,
    original_path text,
    path text,
    generated_at timestamp,
    materialization text,
    depends_on_macros text,
    depends_on_nodes text,
    patch_path text,
    unique_key text,
    incremental_strategy text
);
create table if not exists {{ schema }}.dbt_seeds (
    unique_id text,
    alias text,
    checksum text,
    tags text,
    meta text,
    owner text,
    database_name text,
    schema_name text,
    description text,
    name text,
    package_name text,
    original_path text,
    path text,
    generated_at timestamp
);
create table if not exists {{ schema }}.dbt_tests (
    unique_id text,
    database_name text,
    schema_name text,
    name text,
    short_name text,
    alias text,
    test_column_name text,
    severity text,
    warn_if text,
    error_if text,
    test_params text,
    test_namespace text,
    tags text,
    model_tags text,
    meta text,
    depends_on_macros text,
    depends_on_nodes text,
    parent_model_unique_id text,
    description text,
    package_name text,
    type text,
    original_path text,
    path text,
    generated_at timestamp
);
create table if not exists {{ schema }}.dbt_sources (
    unique_id text,
    database_name text,
    schema_name text,
    source_name text,
    name text,
    identifier text,
    loaded_at_field text,
    freshness_warn_after text,
    freshness_error_after text,
    freshness_filter text,
    relation_name text,
    tags text,
    meta text,
    owner text,
    package_name text,
    original_path text,
    path text,
    source_description text,
    description text,
    generated_at timestamp
);
create table if not exists {{ schema }}.dbt_exposures (
    unique_id text,
    name text,
    maturity text,
    type text,
    owner_email text,
    owner_name text,
    url text,
    depends_on_macros text,
    depends_on_nodes text,
    description text,
    tags text,
    meta text,
    package_name text,
    original_path text,
    path text,
    generated_at timestamp,
    label text
);
create table if not exists {{ schema }}.ingestion_runs (
    run_id text,
    source_name text,
    table_name text,
    load_id text,
    pipeline_name text,
    status text,
    rows_extracted bigint,
    rows_loaded bigint,
    rows_quarantined bigint,
    started_at timestamp,
    completed_at timestamp,
    duration_seconds double precision,
    error text,
    created_at timestamp
)
    {%- endset -%}
    {{- return(ddl) -}}
{% endmacro %}
