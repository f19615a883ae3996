-- Text for the LIKE and regex dialect tests: the same pattern must mean the same on DuckDB and PostgreSQL.
-- `underscored` holds underscores and no backslash; `words` holds the word "test" as a whole word; `multiline` holds a
-- newline between "one" and the next word (chr(10), which a seed cannot carry portably).
with

final as (

    select
        1 as id,
        'snake_case' as underscored,
        'a test run' as words,
        'one' || chr(10) || 'two' as multiline
    union all
    select
        2 as id,
        'a_b' as underscored,
        'test' as words,
        'one' || chr(10) || 'three' as multiline

)

select * from final
