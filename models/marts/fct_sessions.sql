{#- Sessions are rebuilt in full on every run (a table): a late event can join, split or merge sessions
    that an earlier run already closed, and a full rebuild keeps incremental runs equal to a full refresh. -#}
{%- set inactivity_minutes = var('session_inactivity_minutes', 30) -%}

with

events as (

    select * from {{ ref('stg_events__events') }}

),

visitor_events as (

    select
        event_id,
        event_time,
        event_type,
        customer_id,
        -- A signed-in customer is one visitor across devices; anyone else is their tracker cookie. An event with
        -- neither (valid: both are optional) is a visitor of its own, not one shared by every such event.
        coalesce(
            {{ dbt.concat(["'customer:'", dbt.cast('customer_id', dbt.type_string())]) }},
            {{ dbt.concat(["'anonymous:'", 'anonymous_id']) }},
            {{ dbt.concat(["'event:'", 'event_id']) }}
        ) as visitor_id

    from events

),

gaps as (

    select
        *,
        -- Events at one time go in order of their ids, byte by byte: a session starts at the same one on every
        -- engine (its id is its first event's), whatever a PostgreSQL database's collation.
        lag(event_time) over (
            partition by visitor_id order by event_time, {{ in_byte_order('event_id') }}
        ) as previous_event_time

    from visitor_events

),

session_starts as (

    select
        *,
        case
            when previous_event_time is null then 1
            -- Only a gap longer than the inactivity starts a session: events exactly that far apart stay in one.
            when event_time > {{ dbt.dateadd('minute', inactivity_minutes, 'previous_event_time') }} then 1
            else 0
        end as is_session_start

    from gaps

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by visitor_id
            order by event_time, {{ in_byte_order('event_id') }}
            rows between unbounded preceding and current row
        ) as session_number

    from session_starts

),

sessions as (

    select
        visitor_id,
        session_number,
        max(case when is_session_start = 1 then event_id end) as first_event_id,
        max(customer_id) as customer_id,
        min(event_time) as session_started_at,
        max(event_time) as session_ended_at,
        count(*) as event_count,
        sum(case when event_type = 'page_view' then 1 else 0 end) as page_view_count,
        max(case when event_type = 'purchase' then 1 else 0 end) as purchase_count_flag

    from numbered
    group by visitor_id, session_number

),

final as (

    select
        -- Keyed on the session's first event, not its number: a late event that opens an earlier session
        -- renumbers the visitor's later sessions but leaves their ids alone.
        cast(
            {{ dbt.hash(dbt.concat(['visitor_id', "'#'", 'first_event_id'])) }}
            as {{ dbt.type_string() }}
        ) as session_id,
        cast(visitor_id as {{ dbt.type_string() }}) as visitor_id,
        cast(customer_id as {{ dbt.type_bigint() }}) as customer_id,
        cast(session_number as {{ dbt.type_int() }}) as session_number,
        session_started_at,
        session_ended_at,
        cast({{ dbt.date_trunc('day', 'session_started_at') }} as date) as session_date,
        {% set seconds = dbt.datediff('session_started_at', 'session_ended_at', 'second') -%}
        {{ dbt.cast(seconds, dbt.type_int()) }} as duration_seconds,
        cast(event_count as {{ dbt.type_int() }}) as event_count,
        cast(page_view_count as {{ dbt.type_int() }}) as page_view_count,
        purchase_count_flag = 1 as has_purchase

    from sessions

)

select * from final
