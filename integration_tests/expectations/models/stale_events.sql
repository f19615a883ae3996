-- The same shape as recent_events, five days older; group b a further five days older than group a.
with

recent as (

    select * from {{ ref('recent_events') }}

),

final as (

    select
        group_id,
        {{ dbt.dateadd('day', "case when group_id = 'a' then -5 else -10 end", 'event_at') }} as event_at,
        {{ dbt.dateadd('day', "case when group_id = 'a' then -5 else -10 end", 'event_at_tz') }} as event_at_tz,
        {{ dbt.dateadd('day', "case when group_id = 'a' then -5 else -10 end", 'event_at_local') }}
            as event_at_local,
        cast({{ dbt.dateadd('day', "case when group_id = 'a' then -5 else -10 end", 'event_date') }}
            as date) as event_date,
        cast({{ dbt.dateadd('day', "case when group_id = 'a' then -5 else -10 end", 'event_at') }}
            as {{ dbt.type_string() }}) as event_at_text
    from recent

)

select * from final
