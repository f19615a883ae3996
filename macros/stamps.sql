{#- Bookkeeping shared by staging, the incremental marts, the snapshots and the changed test scope (README
    "Transformations / Incremental marts"): staging models stamp each row version they merge with `_staged_at`,
    and incremental marts stamp each row they (re)compute with `_loaded_at`; both are `run_timestamp()`, the
    start of the dbt invocation. A mart's watermark is its newest `_loaded_at`: every staged version stamped
    after it is not reflected in the mart yet. Staging runs before the marts in the same invocation, so nothing
    staged is missed, whatever the clocks of the sources (it assumes two dbt invocations never write one
    warehouse at the same time). Snapshots compare `_staged_at` the same way (macros/snapshots.sql). -#}

{#- The start of this dbt invocation as a timestamp literal (UTC, microseconds). -#}
{% macro run_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ api.Column.translate_type('timestamp') }})
{%- endmacro %}

{#- The newest `column` (a timestamp) of the model or snapshot being built, read when it is compiled and written
    into its SQL as a literal. A literal, not a subquery: DuckDB pushes a literal bound into the scan (skipping row
    groups by their min/max) and joins only the rows past it, while a scalar subquery is compared after the joins,
    so the join of orders with their lines ran over all 10M lines (fct_order_items at 10M: 1.45 s -> 0.55 s). -#}
{% macro newest_value(column) -%}
    {%- set newest = none -%}
    {%- if execute -%}
        {%- set query -%}
            select cast(max({{ column }}) as {{ dbt.type_string() }}) from {{ this }}
        {%- endset -%}
        {%- set newest = run_query(query).columns[0].values()[0] -%}
    {%- endif -%}
    {{ dbt.cast("'" ~ (newest or '1900-01-01') ~ "'", api.Column.translate_type('timestamp')) }}
{%- endmacro %}

{#- on-run-start: stop a run whose start is before the newest run recorded in the warehouse's history. The stamps
    above are the start of the run on the machine running dbt; a machine whose clock is behind the last run's
    would stamp its changes below the marts' watermarks, and the incremental marts would skip them for good. -#}
{% macro harbor_check_run_clock() -%}
    {%- if execute and flags.WHICH in ('build', 'run', 'snapshot') -%}
        {%- set invocations = adapter.get_relation(
            database=target.database, schema=harbor_observability_schema(), identifier='dbt_invocations'
        ) -%}
        {%- if invocations is not none -%}
            {%- set query -%}
                select cast(max(run_started_at) as {{ dbt.type_string() }}) from {{ invocations }}
                where run_started_at > {{ run_timestamp() }}
            {%- endset -%}
            {%- set newest = run_query(query).columns[0].values()[0] -%}
            {%- if newest -%}
                {{ exceptions.raise_compiler_error(
                    "this run started at " ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ " UTC, before the newest "
                    ~ "run recorded in this warehouse (" ~ newest ~ "): the clock of this machine is behind, or the "
                    ~ "clock of the machine that ran then was ahead. Rows are stamped with the run's start, and the "
                    ~ "incremental marts would skip changes stamped before their last build; correct the clock, "
                    ~ "then run again (after a clock that ran ahead: once this one has passed that time)."
                ) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- on-run-start: stop a run whose sessions are not in UTC. Staging casts the sources' zoned timestamps to plain
    ones in the session's zone; in another zone every time, and the days of the marts, would shift, with every
    test passing. profiles.yml sets UTC on DuckDB; on PostgreSQL the session takes PGTZ (`harbor` sets it). -#}
{% macro harbor_check_session_zone() -%}
    {%- if execute and flags.WHICH in ('build', 'run', 'test', 'snapshot', 'seed') -%}
        {#- By its offsets in January and July, not its name: UTC has many (Etc/Universal, GMT0, Zulu...). -#}
        {%- set zone = run_query(
            "select current_setting('TimeZone'), "
            ~ "extract(timezone from cast('2024-01-15 12:00:00+00' as " ~ api.Column.translate_type('timestamptz')
            ~ ")), extract(timezone from cast('2024-07-15 12:00:00+00' as " ~ api.Column.translate_type('timestamptz')
            ~ "))"
        ).rows[0] -%}
        {%- if zone[1] != 0 or zone[2] != 0 -%}
            {{ exceptions.raise_compiler_error(
                "the " ~ target.type ~ " session's time zone is " ~ zone[0] ~ ", not UTC: staging would shift every "
                ~ "timestamp by its offset. Run dbt with PGTZ=UTC on PostgreSQL (`harbor build` does), or set "
                ~ "TimeZone: UTC in the DuckDB profile's settings."
            ) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
