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

{#- A snapshot's post-hook (dbt_project.yml): the current version of a key its staging model no longer holds ends at
    this run, so the history says the row is gone. Staging loses a key when the source hard-deleted it from a table
    reloaded in full (`delete_keys_the_source_lost()`); dbt's own `hard_deletes: invalidate` would end every key
    not staged since the last run, as the snapshot reads no other. A key that comes back starts a new version
    (dbt inserts a key with no current version). One anti-join of the current versions with staging per run. -#}
{% macro end_versions_staging_lost() -%}
    {%- if not execute %}{{ return('') }}{% endif -%}
    {%- set staging = graph.nodes[model.depends_on.nodes | first] -%}
    {%- set staged = api.Relation.create(database=staging.database, schema=staging.schema, identifier=staging.alias) -%}
    {%- set key = config.get('unique_key') -%}
    update {{ this }} as snapshotted
    set dbt_valid_to = {{ snapshot_get_time() }}
    where
        snapshotted.dbt_valid_to is null
        and not exists (
            select 1 from {{ staged }} as staged
            where staged.{{ key }} = snapshotted.{{ key }}
        )
{%- endmacro %}
