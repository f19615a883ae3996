-- stale_events and one row dated a month ahead (a clock or a typo gone wrong): recency must still fail.
with

stale as (

    select * from {{ ref('stale_events') }}

),

recent as (

    select * from {{ ref('recent_events') }}

),

future as (

    select
        group_id,
        {{ dbt.dateadd('day', 30, 'event_at') }} as event_at,
        {{ dbt.dateadd('day', 30, 'event_at_tz') }} as event_at_tz,
        {{ dbt.dateadd('day', 30, 'event_at_local') }} as event_at_local,
        cast({{ dbt.dateadd('day', 30, 'event_date') }} as date) as event_date,
        cast({{ dbt.dateadd('day', 30, 'event_at') }} as {{ dbt.type_string() }}) as event_at_text
    from recent
    where group_id = 'a'

),

final as (

    select * from stale
    union all
    select * from future

)

select * from final
