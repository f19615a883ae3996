-- Ten rows, mostly nulls: `score` is null but for one out-of-range value (id 10), `group_key` is null for ids 1 to 3.
with

ids as (

    select 1 as id union all select 2 union all select 3 union all select 4 union all select 5
    union all select 6 union all select 7 union all select 8 union all select 9 union all select 10

),

final as (

    select
        id,
        cast(case when id = 10 then 99 end as integer) as score,
        cast(case when id > 3 then 'a' end as {{ dbt.type_string() }}) as group_key
    from ids

)

select * from final
