-- recent_events and stale_events in one table, each row labelled by its age: recent as a whole and in every group,
-- stale once a row_condition keeps only the rows labelled stale.
with

fresh as (

    select
        'fresh' as age,
        group_id,
        event_at
    from {{ ref('recent_events') }}

),

stale as (

    select
        'stale' as age,
        group_id,
        event_at
    from {{ ref('stale_events') }}

),

final as (

    select * from fresh
    union all
    select * from stale

)

select * from final
