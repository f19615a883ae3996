-- Group a is recent, group b is stale: recent as a whole, not per group.
with

recent as (

    select * from {{ ref('recent_events') }}
    where group_id = 'a'

),

stale as (

    select * from {{ ref('stale_events') }}
    where group_id = 'b'

),

final as (

    select * from recent
    union all
    select * from stale

)

select * from final
