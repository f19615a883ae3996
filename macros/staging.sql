{#- Helpers shared by the staging models. -#}

{#- The incremental filter of a staging model: rows of loads it has not staged yet. A load is new when its
    `_extracted_at` is after the newest one already staged, or — the lookback — when it falls within
    `staging_lookback_hours` before it but its `_dlt_load_id` is not in the model yet (a load that committed
    after a later one was staged). Rows of loads already staged are never read again, so the first run after a
    full load reads the change, not the full load once more. The filter is on load time, never on business
    time, so a row that arrives late with an old `updated_at` still lands. -#}
{% macro loaded_since_last_run(loaded_at_column='_extracted_at', load_id_column='_dlt_load_id', staged=none) -%}
    {%- set staged = staged if staged is not none else this -%}
    {%- set window_start -%}
        (
            select
                {{ dbt.dateadd(
                    'hour',
                    -1 * var('staging_lookback_hours'),
                    'coalesce(max(' ~ loaded_at_column ~ '), ' ~ dbt.cast("'1900-01-01'", api.Column.translate_type('timestamp')) ~ ')'
                ) }}
            from {{ staged }}
        )
    {%- endset -%}
    {{ loaded_at_column }} >= {{ window_start }}
    and {{ load_id_column }} not in (
        select distinct staged_loads.{{ load_id_column }}
        from {{ staged }} as staged_loads
        where staged_loads.{{ loaded_at_column }} >= {{ window_start }}
    )
{%- endmacro %}

{#- Keeps one row per `partition_by`: the first by `order_by`. -#}
{% macro deduplicate(relation, partition_by, order_by) -%}
    {{ return(adapter.dispatch('deduplicate', 'harbor')(relation, partition_by, order_by)) }}
{%- endmacro %}

{#- DuckDB and PostgreSQL both have `distinct on`, which keeps the column list unchanged. -#}
{% macro default__deduplicate(relation, partition_by, order_by) -%}
    select distinct on ({{ partition_by }}) *
    from {{ relation }}
    order by {{ partition_by }}, {{ order_by }}
{%- endmacro %}

{#- Engines without `distinct on` (Snowflake, BigQuery, Databricks) have `qualify`. -#}
{% macro snowflake__deduplicate(relation, partition_by, order_by) -%}
    select *
    from {{ relation }}
    qualify row_number() over (partition by {{ partition_by }} order by {{ order_by }}) = 1
{%- endmacro %}

{% macro bigquery__deduplicate(relation, partition_by, order_by) -%}
    {{ harbor.snowflake__deduplicate(relation, partition_by, order_by) }}
{%- endmacro %}

{% macro databricks__deduplicate(relation, partition_by, order_by) -%}
    {{ harbor.snowflake__deduplicate(relation, partition_by, order_by) }}
{%- endmacro %}

{#- The rows of `relation` (one per key, already deduplicated) that replace the version the incremental model
    already holds. Raw keeps the version loaded last (dlt's merge replaces a key's row whatever its
    `updated_at`), so the later load wins here too, and `updated_at` only orders versions within one load:
    the same order as `deduplicate`'s in every staging model, so an incremental run keeps exactly the version a
    full refresh picks from raw — also when a source's clock steps back and a newer write (a soft delete, a
    cancellation) carries an older `updated_at`. A load older than the staged version's (it committed after a
    later one was staged) does not replace it. The version already staged itself (same load), re-read because
    of `staging_lookback_hours`, is not merged again: its `_staged_at` stays, so incremental marts do not
    recompute it (`same_version_again=true` merges it again: for models whose dedup order has more
    tie-breakers than `updated_at`). Load ids compare byte by byte (`in_byte_order`), as every staging model's
    `deduplicate` sorts them: dlt's are decimal timestamps with as many digits before the point, in time order
    byte by byte, not in a numeric collation (`-u-kn`: `.5` before `.123456` of one second). Outside
    incremental runs it passes rows through. -#}
{% macro keep_newer_than_staged(
    relation, unique_key, updated_at='updated_at', loaded_by='_dlt_load_id', same_version_again=false
) -%}
    {%- if is_incremental() -%}
    select incoming.*
    from {{ relation }} as incoming
    left join {{ this }} as staged
        on incoming.{{ unique_key }} = staged.{{ unique_key }}
    where
        staged.{{ unique_key }} is null
        or {{ harbor.in_byte_order('incoming.' ~ loaded_by) }} > {{ harbor.in_byte_order('staged.' ~ loaded_by) }}
        or (
            incoming.{{ loaded_by }} = staged.{{ loaded_by }}
            and incoming.{{ updated_at }} {{ '>=' if same_version_again else '>' }} staged.{{ updated_at }}
        )
    {%- else -%}
    select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- `from` target for a source that may not be loaded yet (events and fx are optional: a warehouse with only
    the shop must still build). The source relation when it exists, else an empty row set with `columns`
    ({name: type}), so the model and everything downstream build empty instead of failing. -#}
{% macro optional_source(source_name, table_name, columns) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and load_relation(relation) is none -%}
        {{ log("source " ~ source_name ~ "." ~ table_name ~ " is not loaded yet: building empty", info=true) }}
        (
            select
            {%- for name, data_type in columns.items() %}
                cast(null as {{ data_type }}) as {{ name }}{{ "," if not loop.last }}
            {%- endfor %}
            where 1 = 0
        ) as not_loaded_yet
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of the shop's staging models (`dbt_project.yml`), on the one source table each reads and its
    `unique_key`: delete the staged keys a source table reloaded in full no longer has
    (a table loaded without a cursor is replaced at every run, so a row deleted in the shop leaves raw; staging
    only ever added and replaced keys, and kept it). Only when raw holds the rows of one extraction — a full
    reload, or the first load — since a table loaded by cursor never loses a key; otherwise nothing runs. The
    incremental marts rebuild from staging in full when all of its rows are newer than they are
    (`staging_rewritten_since_last_build()`), which a reload gives them, so they let go of the key too. A key
    deleted a build after its reload (an ingest was loading at the reload's build, `ingest_kept_out()`) has no
    reload to carry it to the marts: then the rows staging keeps are stamped as staged again, which does. -#}
{% macro delete_keys_the_source_lost() -%}
    {%- set key = config.get('unique_key') -%}
    {%- set raw = source(*model.sources[0]) if execute and model.sources | length == 1 else none -%}
    {%- if raw is not none and is_incremental() and load_relation(raw) is not none
        and harbor.ingest_kept_out(model.sources[0][0]) -%}
        {%- set extractions = run_query(
            'select count(*), min(_extracted_at) = max(_extracted_at) from ' ~ raw
        ).rows[0] -%}
        {#- An empty raw table is a full reload that found no row (a table loaded by cursor is empty only when
            staging is too): every staged key is gone. -#}
        {%- if extractions[0] == 0 or extractions[1] -%}
            {%- set lost -%}
                from {{ this }}
                where {{ key }} not in (
                    select raw_rows.{{ key }} from {{ raw }} as raw_rows where raw_rows.{{ key }} is not null
                )
            {%- endset -%}
            {%- if run_query('select count(*) from (select 1 ' ~ lost ~ ' limit 1) as any_lost').rows[0][0] -%}
                {%- do run_query(
                    'update ' ~ this ~ ' set _staged_at = ' ~ harbor.run_timestamp()
                    ~ ' where _staged_at < ' ~ harbor.run_timestamp()
                ) -%}
                delete {{ lost }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- True when no `harbor ingest` of `source_name` can be loading into the warehouse until the model commits. A
    load replaces a table by emptying it first, in a commit of its own, and then inserts its files: read meanwhile,
    raw looks like a reload that lost every key, or some. On PostgreSQL the post-hook takes the ingest's advisory
    lock (`one_run_at_a_time` in ingestion/pipeline.py: the first 8 bytes of the SHA-256 of its name), shared, for
    its transaction, so an ingest starting meanwhile waits for the commit; while an ingest holds it, false, and the
    keys are deleted at the next build. On DuckDB the file's single writer keeps ingest out already. -#}
{% macro ingest_kept_out(source_name) -%}
    {{ return(adapter.dispatch('ingest_kept_out', 'harbor')(source_name)) }}
{%- endmacro %}

{% macro default__ingest_kept_out(source_name) -%}
    {{ return(true) }}
{%- endmacro %}

{% macro postgres__ingest_kept_out(source_name) -%}
    {%- set lock_name = 'harbor ingest harbor_' ~ source_name ~ '_postgres' -%}
    {%- set key = "('x' || left(encode(sha256(convert_to('" ~ lock_name ~ "', 'UTF8')), 'hex'), 16))::bit(64)::bigint" -%}
    {#- Shared: the hooks of the models a build runs at once (two threads on PostgreSQL) must not keep each other
        out, and each still conflicts with the ingest's exclusive lock. -#}
    {%- set kept_out = run_query('select pg_try_advisory_xact_lock_shared(' ~ key ~ ')').columns[0].values()[0] -%}
    {%- if not kept_out -%}
        {{ log("an ingest of " ~ source_name ~ " is loading: what its tables lost is let go of in "
            ~ this ~ " at the next build", info=true) }}
    {%- endif -%}
    {{ return(kept_out) }}
{%- endmacro %}
