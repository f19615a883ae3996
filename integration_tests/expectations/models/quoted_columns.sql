-- Column names with a space, which parse only quoted: for quote_columns. ("key a", "key b") repeats (x, 1), and
-- row 2 holds red in both colours.
with

final as (

    select
        1 as id,
        'x' as "key a",
        1 as "key b",
        'red' as "colour a",
        'blue' as "colour b"
    union all
    select
        2 as id,
        'x' as "key a",
        1 as "key b",
        'red' as "colour a",
        'red' as "colour b"
    union all
    select
        3 as id,
        'y' as "key a",
        1 as "key b",
        'green' as "colour a",
        'blue' as "colour b"

)

select * from final
