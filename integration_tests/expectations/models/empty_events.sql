-- recent_events without a row: the tests that need rows must fail on it, not pass or error.
select * from {{ ref('recent_events') }}
where 1 = 0
