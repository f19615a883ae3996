{#- The filter of a snapshot's query over a staging model: the versions staged since the newest one the snapshot
    holds (`_staged_at`, read when the snapshot compiles). Every version staged up to then was read by an earlier
    snapshot run: `_staged_at` is the start of the dbt invocation that staged the version, the same for all it
    staged, and a staging model runs before the snapshot reading it. A key staging lost is ended by
    `end_versions_staging_lost()`, not by dbt, so the rows that did not change are not needed: a 1% change reads
    about 1% of the staging table rather than all of it. The first run, with no snapshot yet, reads every row. -#}
{% macro staged_since_last_snapshot(stamp_column='_staged_at') -%}
    {%- if execute and load_relation(this) is not none -%}
        {{ stamp_column }} > {{ harbor.newest_value(stamp_column) }}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#- A post-hook of the shop snapshots (set in snp_shop__*.sql): the current version of a key that neither the staging
    model the snapshot reads nor its raw table holds any more ends at this run, so the history says the row is gone.
    Staging loses a key when the source hard-deleted it from a table reloaded in full (`delete_keys_the_source_lost()`);
    dbt's own `hard_deletes: invalidate` would end every key not staged since the last run, as the snapshot reads no
    other. Raw is asked too, and on PostgreSQL the hook takes the ingest's lock as staging's does
    (`ingest_kept_out()`), so a reload caught half-way (raw emptied, staging rebuilt from part of it) ends nothing.
    A key that comes back starts a new version (dbt inserts a key with no current version). For a snapshot of one
    staging model of one source, on a one-column key: anything else stops the build, naming the snapshot. -#}
{% macro end_versions_staging_lost() -%}
    {%- if not execute %}{{ return('') }}{% endif -%}
    {%- set key = config.get('unique_key') -%}
    {%- set staging = graph.nodes.get(model.depends_on.nodes | first) if model.depends_on.nodes | length == 1 else none -%}
    {%- if key is not string or staging is none or staging.resource_type != 'model' or staging.sources | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            'end_versions_staging_lost() ends the versions of ' ~ model.name ~ ' by staging and raw: it needs a '
            ~ 'snapshot of one staging model of one source, on a one-column unique_key'
        ) }}
    {%- endif -%}
    {%- set raw_node = graph.sources.values() | selectattr('source_name', 'equalto', staging.sources[0][0])
        | selectattr('name', 'equalto', staging.sources[0][1]) | first -%}
    {%- set raw = api.Relation.create(database=raw_node.database, schema=raw_node.schema, identifier=raw_node.identifier) -%}
    {%- set staged = api.Relation.create(database=staging.database, schema=staging.schema, identifier=staging.alias) -%}
    {%- if load_relation(raw) is none or not harbor.ingest_kept_out(raw_node.source_name) -%}
        {{ return('') }}
    {%- endif -%}
    update {{ this }} as snapshotted
    set dbt_valid_to = {{ snapshot_get_time() }}
    where
        snapshotted.dbt_valid_to is null
        and not exists (
            select 1 from {{ staged }} as staged
            where staged.{{ key }} = snapshotted.{{ key }}
        )
        and not exists (
            select 1 from {{ raw }} as raw_rows
            where raw_rows.{{ key }} = snapshotted.{{ key }}
        )
{%- endmacro %}
