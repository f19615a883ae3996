{#- The filter of a snapshot's query over a staging model: the versions staged since the newest one the snapshot
    holds (`_staged_at`, read when the snapshot compiles). Every version staged up to then was read by an earlier
    snapshot run: `_staged_at` is the start of the dbt invocation that staged the version, the same for all it
    staged, and a staging model runs before the snapshot reading it. The snapshots ignore hard deletes, so the
    rows that did not change are not needed: a 1% change reads about 1% of the staging table rather than all of
    it. The first run, with no snapshot yet, reads every row. -#}
{% macro staged_since_last_snapshot(stamp_column='_staged_at') -%}
    {%- if execute and load_relation(this) is not none -%}
        {{ stamp_column }} > {{ harbor.newest_value(stamp_column) }}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}
