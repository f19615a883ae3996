-- Rows stamped relative to the time of the build, in each temporal type the recency tests distinguish.
-- `event_at_local` is a wall-clock time in Los Angeles without a zone, so read as UTC it looks ~8 hours old.
-- `event_at_text` is `event_at` as text, as raw tables often hold times.
with

groups as (

    select 'a' as group_id
    union all
    select 'b' as group_id

),

final as (

    select
        group_id,
        {{ dbt.dateadd('minute', -10, harbor_expectations.expectation_now_in('UTC')) }} as event_at,
        current_timestamp as event_at_tz,
        {{ dbt.dateadd('minute', -10, harbor_expectations.expectation_now_in('America/Los_Angeles')) }}
            as event_at_local,
        cast({{ dbt.dateadd('day', -1, 'cast(' ~ harbor_expectations.expectation_now_in('UTC') ~ ' as date)') }}
            as date) as event_date,
        cast({{ dbt.dateadd('minute', -10, harbor_expectations.expectation_now_in('UTC')) }}
            as {{ dbt.type_string() }}) as event_at_text
    from groups

)

select * from final
