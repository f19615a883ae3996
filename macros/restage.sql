{#- A full refresh of a source that forgot loads dated ahead of the ingesting machine's clock (`_forget_loads` in
    ingestion/pipeline.py) leaves a marker table in the source's raw schema: staging still holds those loads' ids,
    which sort after every later load, so a plain build would keep their rows over newer ones, every test passing.
    Builds and runs stop until a full refresh restages the source; that refresh drops the marker. -#}

{#- The marker tables in the sources' raw schemas: one catalog query, not a listing of each schema (3 x 10-20 ms
    on every build). -#}
{% macro harbor_restage_markers() -%}
    {%- set raw_schemas = {} -%}
    {%- for source in graph.sources.values() -%}
        {%- do raw_schemas.update({(source.database | lower, source.schema | lower): source}) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select table_catalog, table_schema from information_schema.tables where table_name = '_harbor_restage_needed'"
    ) -%}
    {%- set markers = [] -%}
    {%- for row in found.rows if (row[0] | lower, row[1] | lower) in raw_schemas -%}
        {%- set source = raw_schemas[(row[0] | lower, row[1] | lower)] -%}
        {%- do markers.append(api.Relation.create(
            database=source.database, schema=source.schema, identifier='_harbor_restage_needed'
        )) -%}
    {%- endfor -%}
    {{ return(markers) }}
{%- endmacro %}

{#- on-run-start -#}
{% macro harbor_check_restage_needed() -%}
    {%- if execute and flags.WHICH in ('build', 'run') and not flags.FULL_REFRESH -%}
        {%- for marker in harbor_restage_markers() -%}
            {{ exceptions.raise_compiler_error(
                "raw schema " ~ marker.schema ~ " was reloaded in full after loads dated ahead of this machine's "
                ~ "clock were forgotten (" ~ marker ~ "): staging still holds their load ids, which sort after "
                ~ "every later load, and a plain build would keep their rows over newer ones. Run `harbor build "
                ~ "--full-refresh` (or `dbt build --full-refresh`) once."
            ) }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- on-run-end: a full refresh that rebuilt every model reading a raw schema drops that schema's marker, if any.
    Not looked up first: a lookup opens a transaction, which dbt rolls back after the hooks (the drop with it). -#}
{% macro harbor_clear_restage_needed(results) -%}
    {%- if execute and flags.WHICH in ('build', 'run') and flags.FULL_REFRESH -%}
        {%- set succeeded = results | selectattr('status', 'equalto', 'success')
            | map(attribute='node.unique_id') | list -%}
        {#- Every raw schema, read by a model or not: a marker where none reads would stop plain builds for good. -#}
        {%- set readers = {} -%}
        {%- for raw in graph.sources.values() -%}
            {%- do readers.setdefault((raw.database, raw.schema), []) -%}
        {%- endfor -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
            {%- for unique_id in node.depends_on.nodes if unique_id in graph.sources -%}
                {%- set raw = graph.sources[unique_id] -%}
                {%- do readers.setdefault((raw.database, raw.schema), []).append(node.unique_id) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for (database, schema), models in readers.items() -%}
            {%- if models | reject('in', succeeded) | list | length == 0 -%}
                {%- do run_query('drop table if exists ' ~ api.Relation.create(
                    database=database, schema=schema, identifier='_harbor_restage_needed'
                )) -%}
            {%- endif -%}
        {%- endfor -%}
        {#- As `harbor_schema_changes_ddl()`: dbt-duckdb rolls the hook's transaction back; PostgreSQL has committed. -#}
        {%- if target.type == 'duckdb' and readers -%}
            {%- do adapter.commit() -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
