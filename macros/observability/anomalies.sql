{#-
    Anomaly tests with Elementary's names and main arguments, computed from the data itself (no metrics store):
    each complete time bucket of the detection period is compared with the buckets of the training period
    before it by z-score, `(value - mean) / stddev`; a bucket beyond `sensitivity` standard deviations fails.

    - time_bucket: {period: hour|day|week, count: 1}; training_period / detection_period: {period, count}
    - the detection period is excluded from training; only buckets that ended before the run count
    - min_training_set_size: fewer training buckets than this and nothing is flagged
    - seasonality: day_of_week compares a day only with the same weekday in training
    - anomaly_direction: both | spike | drop
    Failing rows (the anomalous buckets, with the numbers behind the verdict) are the test's result rows.
-#}

{% macro harbor_anomaly_period_hours(period) %}
    {%- set hours = {'hour': 1, 'day': 24, 'week': 168} -%}
    {%- if period.period not in hours -%}
        {{ exceptions.raise_compiler_error("anomaly tests: period must be hour, day or week, got " ~ period.period) }}
    {%- endif -%}
    {{- return(hours[period.period] * (period.count | default(1))) -}}
{% endmacro %}


{#- The end of the newest complete bucket: this hour's start for hourly buckets, today's start otherwise. Every
    bucket boundary is a whole hour, so rows can be counted per hour first (`harbor_anomaly_hours`). -#}
{% macro harbor_anomaly_window_end(time_bucket) %}
    {%- set now = modules.datetime.datetime.utcnow() -%}
    {%- if time_bucket.period == 'hour' -%}
        {{- return(now.replace(minute=0, second=0, microsecond=0)) -}}
    {%- endif -%}
    {{- return(now.replace(hour=0, minute=0, second=0, microsecond=0)) -}}
{% endmacro %}


{% macro harbor_anomaly_timestamp(value) -%}
    cast('{{ value.strftime('%Y-%m-%d %H:%M:%S') }}' as timestamp)
{%- endmacro %}


{#- Every complete bucket of the training and detection window ending at `end`, newest first: a list of
    {start, end, is_detection}, from which both the buckets' SQL and the training-size check are made. -#}
{% macro harbor_anomaly_bucket_list(time_bucket, training_period, detection_period, end) %}
    {%- set bucket_hours = harbor_anomaly_period_hours(time_bucket) -%}
    {%- set detection_hours = harbor_anomaly_period_hours(detection_period) -%}
    {%- set total_hours = harbor_anomaly_period_hours(training_period) + detection_hours -%}
    {%- set buckets = [] -%}
    {%- for i in range((total_hours / bucket_hours) | int) -%}
        {%- set bucket_end = end - modules.datetime.timedelta(hours=i * bucket_hours) -%}
        {%- do buckets.append({
            'start': bucket_end - modules.datetime.timedelta(hours=bucket_hours),
            'end': bucket_end,
            'is_detection': i * bucket_hours < detection_hours,
        }) -%}
    {%- endfor -%}
    {{- return(buckets) -}}
{% endmacro %}


{#- The buckets as rows: bucket_start, bucket_end, is_detection. -#}
{% macro harbor_anomaly_buckets(buckets) %}
    {%- set rows = [] -%}
    {%- for bucket in buckets -%}
        {%- do rows.append(
            "select " ~ harbor_anomaly_timestamp(bucket.start) ~ " as bucket_start, "
            ~ harbor_anomaly_timestamp(bucket.end) ~ " as bucket_end, "
            ~ ('true' if bucket.is_detection else 'false') ~ " as is_detection"
        ) -%}
    {%- endfor -%}
    {{- return(rows | join('\n    union all\n    ')) -}}
{% endmacro %}


{#- A test that could never flag anything is a configuration error: with `seasonality`, each season (weekday) gets
    only its share of the training buckets, and fewer than `min_training_set_size` means no verdict, ever. -#}
{% macro harbor_anomaly_check_training_size(relation, buckets, seasonality, min_training_set_size) %}
    {%- set per_season = {} -%}
    {%- for bucket in buckets if not bucket.is_detection -%}
        {%- set season = bucket.start.weekday() if seasonality == 'day_of_week' else 0 -%}
        {%- do per_season.update({season: per_season.get(season, 0) + 1}) -%}
    {%- endfor -%}
    {%- set fewest = per_season.values() | min if per_season else 0 -%}
    {%- if execute and fewest < min_training_set_size -%}
        {{ exceptions.raise_compiler_error(
            "anomaly test on " ~ relation ~ ": " ~ fewest ~ " training bucket(s)"
            ~ (" per weekday" if seasonality == 'day_of_week' else "") ~ ", fewer than min_training_set_size "
            ~ min_training_set_size ~ ", so it could never flag anything: lengthen training_period or lower "
            ~ "min_training_set_size"
        ) }}
    {%- endif -%}
{% endmacro %}


{#- `aggregate` (over `event_at`, such as `count(*)`) per hour of the rows of `model` from `since` up to `before`
    (datetimes; none: unbounded): hour_start, hour_value. Bucket boundaries are whole hours, so a bucket's figure
    is an aggregate of its hours' figures: a few hundred rows to join with the buckets by range, where joining
    every row took about a second per test on a table of 4M rows. -#}
{% macro harbor_anomaly_hours(model, timestamp_column, where_expression, aggregate, since=none, before=none) %}
    select
        {{ dbt.date_trunc('hour', 'event_at') }} as hour_start,
        {{ aggregate }} as hour_value
    from (
        select cast({{ timestamp_column }} as timestamp) as event_at
        from {{ model }}
        {% if where_expression %}where {{ where_expression }}{% endif %}
    ) as source_rows
    where 1 = 1
    {%- if since is not none %}
        and event_at >= {{ harbor_anomaly_timestamp(since) }}
    {%- endif %}
    {%- if before is not none %}
        and event_at < {{ harbor_anomaly_timestamp(before) }}
    {%- endif %}
    group by {{ dbt.date_trunc('hour', 'event_at') }}
{% endmacro %}


{#- Scores `metrics` (bucket_start, bucket_end, is_detection, metric_value, first_event_at) and keeps the anomalous
    detection buckets. Training uses the buckets from the first that holds data: before a table has rows its
    buckets are not a normal level of zero, and counting them flagged every new table's first days. -#}
{% macro harbor_anomaly_scores(metrics, sensitivity, min_training_set_size, seasonality, anomaly_direction) %}
    {%- if seasonality not in (none, 'day_of_week') -%}
        {{ exceptions.raise_compiler_error("anomaly tests: seasonality must be day_of_week or none") }}
    {%- endif -%}
    {%- if anomaly_direction not in ('both', 'spike', 'drop') -%}
        {{ exceptions.raise_compiler_error("anomaly tests: anomaly_direction must be both, spike or drop") }}
    {%- endif -%}
    {%- set season = "extract(dow from bucket_start)" if seasonality == 'day_of_week' else "0" -%}
    with metrics as (
        {{ metrics }}
    ),

    seasoned as (
        select
            *,
            {{ season }} as season
        from metrics
    ),

    -- `double precision`, not dbt.type_float(): that is a 32-bit float on DuckDB, exact only up to 2^24 rows.
    training as (
        select
            season,
            avg(cast(metric_value as double precision)) as training_avg,
            stddev_samp(cast(metric_value as double precision)) as training_stddev,
            count(*) as training_set_size,
            min(bucket_start) as training_start,
            max(bucket_end) as training_end
        from seasoned
        where not is_detection and bucket_end > first_event_at
        group by season
    ),

    scored as (
        select
            seasoned.bucket_start,
            seasoned.bucket_end,
            seasoned.metric_value,
            training.training_avg,
            training.training_stddev,
            training.training_set_size,
            training.training_start,
            training.training_end,
            case
                when training.training_stddev > 0
                    then (seasoned.metric_value - training.training_avg) / training.training_stddev
                when seasoned.metric_value = training.training_avg then 0
                when seasoned.metric_value > training.training_avg then 1e9
                else -1e9
            end as z_score
        from seasoned
        inner join training on seasoned.season = training.season
        where seasoned.is_detection
    )

    select *
    from scored
    where training_set_size >= {{ min_training_set_size }}
    {%- if anomaly_direction == 'spike' %}
        and z_score > {{ sensitivity }}
    {%- elif anomaly_direction == 'drop' %}
        and z_score < -{{ sensitivity }}
    {%- else %}
        and abs(z_score) > {{ sensitivity }}
    {%- endif %}
{% endmacro %}


{% test volume_anomalies(
    model,
    timestamp_column,
    time_bucket={'period': 'day', 'count': 1},
    training_period={'period': 'day', 'count': 14},
    detection_period={'period': 'day', 'count': 2},
    sensitivity=3,
    min_training_set_size=7,
    seasonality=none,
    anomaly_direction='both',
    where_expression=none
) %}
    {%- set window_end = harbor_anomaly_window_end(time_bucket) -%}
    {%- set buckets = harbor_anomaly_bucket_list(time_bucket, training_period, detection_period, window_end) -%}
    {%- do harbor_anomaly_check_training_size(model, buckets, seasonality, min_training_set_size) -%}
    {%- set metrics -%}
        with buckets as (
            {{ harbor_anomaly_buckets(buckets) }}
        ),

        hours as (
            {{ harbor_anomaly_hours(
                model, timestamp_column, where_expression, 'count(*)',
                since=buckets[-1].start, before=window_end
            ) }}
        ),

        first_event as (
            select min(cast({{ timestamp_column }} as timestamp)) as first_event_at
            from {{ model }}
            {% if where_expression %}where {{ where_expression }}{% endif %}
        )

        select
            buckets.bucket_start,
            buckets.bucket_end,
            buckets.is_detection,
            cast(coalesce(sum(hours.hour_value), 0) as {{ dbt.type_bigint() }}) as metric_value,
            first_event.first_event_at
        from buckets
        cross join first_event
        left join hours
            on hours.hour_start >= buckets.bucket_start and hours.hour_start < buckets.bucket_end
        group by buckets.bucket_start, buckets.bucket_end, buckets.is_detection, first_event.first_event_at
    {%- endset -%}
    {{ harbor_anomaly_scores(metrics, sensitivity, min_training_set_size, seasonality, anomaly_direction) }}
{% endtest %}


{#- The metric is how stale the data was when each bucket ended: seconds since the newest row before its end. -#}
{% test freshness_anomalies(
    model,
    timestamp_column,
    time_bucket={'period': 'day', 'count': 1},
    training_period={'period': 'day', 'count': 14},
    detection_period={'period': 'day', 'count': 2},
    sensitivity=3,
    min_training_set_size=7,
    seasonality=none,
    anomaly_direction='spike',
    where_expression=none
) %}
    {%- set window_end = harbor_anomaly_window_end(time_bucket) -%}
    {%- set buckets = harbor_anomaly_bucket_list(time_bucket, training_period, detection_period, window_end) -%}
    {%- do harbor_anomaly_check_training_size(model, buckets, seasonality, min_training_set_size) -%}
    {%- set metrics -%}
        with buckets as (
            {{ harbor_anomaly_buckets(buckets) }}
        ),

        -- Every hour before the window's end: the newest row before a bucket may be older than the window.
        hours as (
            {{ harbor_anomaly_hours(
                model, timestamp_column, where_expression, 'max(event_at)',
                before=window_end
            ) }}
        ),

        latest as (
            select
                buckets.bucket_start,
                buckets.bucket_end,
                buckets.is_detection,
                max(hours.hour_value) as last_event_at
            from buckets
            left join hours on hours.hour_start < buckets.bucket_end
            group by buckets.bucket_start, buckets.bucket_end, buckets.is_detection
        )

        select
            bucket_start,
            bucket_end,
            is_detection,
            {{ dbt.datediff('coalesce(last_event_at, bucket_start)', 'bucket_end', 'second') }} as metric_value,
            (select min(hour_start) from hours) as first_event_at
        from latest
    {%- endset -%}
    {{ harbor_anomaly_scores(metrics, sensitivity, min_training_set_size, seasonality, anomaly_direction) }}
{% endtest %}


{#-
    The schema_changes tests' baseline table, created by the on-run-start hook of the commands that run tests: in
    each test, two tests running at once on PostgreSQL both tried to create it, and one failed on the catalog's
    unique index.
-#}
{% macro harbor_schema_changes_ddl() -%}
    {%- if execute and flags.WHICH in ('test', 'build') -%}
        {%- set schema = harbor_observability_schema() -%}
        {%- do run_query(
            'create schema if not exists ' ~ schema ~ ';\n'
            ~ 'create table if not exists ' ~ schema ~ '.schema_columns_snapshot '
            ~ '(full_table_name text, column_name text, data_type text, detected_at timestamp)'
        ) -%}
        {#- dbt-duckdb runs the hook in a transaction it rolls back at the end (the table was gone); on PostgreSQL
            the statement has committed already, and a commit would find no transaction. -#}
        {%- if target.type == 'duckdb' -%}
            {%- do adapter.commit() -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#-
    Columns added, removed or retyped since the last time this test ran on the model. The test keeps its
    baseline in observability.schema_columns_snapshot (written only by `dbt test` / `dbt build`), so a change
    fails once and the next run compares against the new shape, as Elementary's schema_changes does.
-#}
{% test schema_changes(model) %}
    {%- set schema = harbor_observability_schema() -%}
    {%- set table_key = (model.database ~ '.' ~ model.schema ~ '.' ~ model.identifier) | lower -%}
    {%- set changes = [] -%}
    {%- if execute and flags.WHICH in ('test', 'build') -%}
        {%- set current = {} -%}
        {%- for column in adapter.get_columns_in_relation(model) -%}
            {%- do current.update({column.name | lower: column.data_type | lower}) -%}
        {%- endfor -%}
        {%- set baseline_rows = run_query(
            'select column_name, data_type from ' ~ schema ~ '.schema_columns_snapshot '
            ~ 'where full_table_name = ' ~ harbor_obs_lit(table_key) ~ ' and detected_at = ('
            ~ 'select max(detected_at) from ' ~ schema ~ '.schema_columns_snapshot '
            ~ 'where full_table_name = ' ~ harbor_obs_lit(table_key) ~ ')'
        ) -%}
        {%- set baseline = {} -%}
        {%- for row in baseline_rows -%}{%- do baseline.update({row[0]: row[1]}) -%}{%- endfor -%}
        {%- if baseline -%}
            {%- for name, type in current.items() -%}
                {%- if name not in baseline -%}
                    {%- do changes.append(('column_added', name, none, type)) -%}
                {%- elif baseline[name] != type -%}
                    {%- do changes.append(('type_changed', name, baseline[name], type)) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- for name, type in baseline.items() if name not in current -%}
                {%- do changes.append(('column_removed', name, type, none)) -%}
            {%- endfor -%}
        {%- endif -%}
        {%- if not baseline or changes -%}
            {%- set now = harbor_obs_ts(modules.datetime.datetime.utcnow()) -%}
            {%- set values = [] -%}
            {%- for name, type in current.items() -%}
                {%- do values.append('(' ~ harbor_obs_lit(table_key) ~ ', ' ~ harbor_obs_lit(name) ~ ', '
                    ~ harbor_obs_lit(type) ~ ', ' ~ now ~ ')') -%}
            {%- endfor -%}
            {%- do run_query('insert into ' ~ schema ~ '.schema_columns_snapshot values ' ~ values | join(', ')) -%}
            {#- Tests never commit on their own: without this the baseline is rolled back. -#}
            {%- do adapter.commit() -%}
        {%- endif -%}
    {%- endif -%}
    {%- if changes -%}
        {%- for change, name, before, after in changes %}
    select {{ harbor_obs_lit(change) }} as change_type, {{ harbor_obs_lit(name) }} as column_name,
        {{ harbor_obs_lit(before) }} as previous_type, {{ harbor_obs_lit(after) }} as new_type
            {%- if not loop.last %}
    union all{% endif %}
        {%- endfor %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as change_type,
        cast(null as {{ dbt.type_string() }}) as column_name,
        cast(null as {{ dbt.type_string() }}) as previous_type,
        cast(null as {{ dbt.type_string() }}) as new_type
    where 1 = 0
    {%- endif %}
{% endtest %}
