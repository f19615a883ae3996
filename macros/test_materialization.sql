{#- dbt's `test` materialization with one change: failing rows are stored (`store_failures`) only for a test
    that warns or fails, and a test that passes drops the table an earlier failure left. dbt's own creates and
    commits a table for every test, passing or not: at 116 tests that was 1.2 s of each build whatever the data
    (README "Performance"). A test whose failures are stored runs its query twice; only failing tests do.
    Otherwise as dbt-core 1.11's (`limit`, `fail_calc`, `warn_if`, `error_if`, `store_failures_as`). -#}
{%- materialization test, default -%}

    {%- set limit = config.get('limit') -%}
    {%- set sql_header = config.get('sql_header') if flags.REQUIRE_SQL_HEADER_IN_TEST_CONFIGS else none -%}
    {%- set sql_with_limit = get_limit_subquery_sql(sql, limit) -%}

    {% call statement('main', fetch_result=True) -%}
        {% if sql_header %}{{ sql_header }}{% endif %}
        {{ get_test_sql(sql_with_limit, config.get('fail_calc'), config.get('warn_if'), config.get('error_if'), limit=none) }}
    {%- endcall %}

    {%- set relations = [] -%}
    {%- if should_store_failures() -%}
        {%- set store_failures_as = config.get('store_failures_as') or 'table' -%}
        {%- if store_failures_as not in ['table', 'view'] -%}
            {{ exceptions.raise_compiler_error(
                "'" ~ store_failures_as ~ "' is not a valid value for `store_failures_as`. "
                ~ "Accepted values are: ['ephemeral', 'table', 'view']"
            ) }}
        {%- endif -%}
        {%- set outcome = load_result('main')['table'].rows[0] -%}
        {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=model['alias']) -%}
        {%- if old_relation -%}
            {%- do adapter.drop_relation(old_relation) -%}
        {%- endif -%}
        {%- if outcome['should_warn'] or outcome['should_error'] -%}
            {%- set target_relation = api.Relation.create(
                identifier=model['alias'], schema=schema, database=database, type=store_failures_as
            ) -%}
            {% call statement(auto_begin=True) %}
                {% if sql_header %}{{ sql_header }}{% endif %}
                {{ get_create_sql(target_relation, sql_with_limit) }}
            {% endcall %}
            {%- do relations.append(target_relation) -%}
        {%- endif -%}
        {{ adapter.commit() }}
    {%- endif -%}

    {{ return({'relations': relations}) }}

{%- endmaterialization -%}
