{#-
    Building blocks shared by the tests. Every test compiles to "select the failing rows": no rows, the test passes.
    Helper names carry no leading underscore because dbt's sandboxed Jinja hides such attributes.
-#}

{% macro expectation_list(value) -%}
    {%- if value is none -%}
        {{ return([]) }}
    {%- elif value is string -%}
        {{ return([value]) }}
    {%- else -%}
        {{ return(value | list) }}
    {%- endif -%}
{%- endmacro %}

{% macro expectation_where(row_condition) -%}
    {%- if row_condition %}where {{ row_condition }}{% endif -%}
{%- endmacro %}

{% macro expectation_sql_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{#-
    One value of a value_set, as SQL: a quoted literal by default, which compares with a column of any type (the
    engine gives the untyped literal the column's type), or, with quote_values false, the value as written.
-#}
{% macro expectation_value_sql(value, quote_values=true) -%}
    {{ harbor_expectations.expectation_sql_literal(value) if quote_values else value | string }}
{%- endmacro %}

{% macro expectation_value_list(value_set, quote_values=true) -%}
    {%- set rendered = [] -%}
    {%- for value in harbor_expectations.expectation_list(value_set) -%}
        {%- do rendered.append(harbor_expectations.expectation_value_sql(value, quote_values)) -%}
    {%- endfor -%}
    {{ rendered | join(', ') }}
{%- endmacro %}

{% macro expectation_between_condition(expression, min_value=none, max_value=none, strictly=false) -%}
    {%- if min_value is none and max_value is none -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: give min_value, max_value or both") }}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- if min_value is not none -%}
        {%- do parts.append(expression ~ (' > ' if strictly else ' >= ') ~ min_value) -%}
    {%- endif -%}
    {%- if max_value is not none -%}
        {%- do parts.append(expression ~ (' < ' if strictly else ' <= ') ~ max_value) -%}
    {%- endif -%}
    ({{ parts | join(' and ') }})
{%- endmacro %}

{#-
    Row-wise expectations: rows where `condition` is false fail (a null condition, e.g. a null value in a range
    test, is not a failure, as upstream). `mostly` (Harbor's extension, as in Great Expectations) is the fraction of
    rows that must pass among the in-scope rows whose condition is not null: as in Great Expectations, null values
    count neither for nor against it (9 nulls and 1 bad value fail mostly=0.9), while a test whose condition is never
    null (not_be_null, in_set) counts every row. With mostly=0.99 the test returns its failing rows only when more
    than 1% of those rows fail.
-#}
{% macro expectation_rows(model, condition, row_condition=none, mostly=none) -%}
    {%- if mostly is not none and (mostly <= 0 or mostly > 1) -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: mostly must be in (0, 1], got " ~ mostly) }}
    {%- endif %}
with

scoped as (

    select * from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}

),

failing as (

    select * from scoped
    where not ({{ condition }})

)

{% if mostly is none or mostly == 1 -%}
select * from failing
{%- else -%}
, tally as (

    select
        count(case when ({{ condition }}) is not null then 1 end) as counted_rows,
        count(case when not ({{ condition }}) then 1 end) as failing_rows
    from scoped

)

select failing.*
from failing
cross join tally
where tally.counted_rows - tally.failing_rows < {{ mostly }} * tally.counted_rows
{%- endif %}
{%- endmacro %}

{#- Aggregate expectations: one row per group (or one row), failing when the aggregate is outside the bounds. -#}
{% macro expectation_aggregate(model, expression, failure_condition, group_by=none, row_condition=none,
        expected_expression=none) -%}
    {%- set groups = harbor_expectations.expectation_list(group_by) %}
with

grouped as (

    select
        {% for column in groups -%}
        {{ column }},
        {% endfor -%}
        {{ expression }} as expression_value
        {%- if expected_expression is not none %},
        {{ expected_expression }} as expected_value
        {%- endif %}
    from {{ model }}
    {{ harbor_expectations.expectation_where(row_condition) }}
    {% if groups -%}
    group by {{ groups | join(', ') }}
    {%- endif %}

)

select * from grouped
where {{ failure_condition }}
{%- endmacro %}

{% macro expectation_aggregate_between(model, expression, min_value=none, max_value=none, group_by=none,
        row_condition=none, strictly=false) -%}
    {%- set inside = harbor_expectations.expectation_between_condition('expression_value', min_value, max_value, strictly) -%}
    {{ harbor_expectations.expectation_aggregate(model, expression, 'not ' ~ inside, group_by, row_condition) }}
{%- endmacro %}

{#-
    Column metadata, read when the test runs (at parse time there is no relation yet). With a `where:` test config,
    dbt hands the test `(select * from <relation> where <where>) dbt_subquery`, a string: the relation is read back
    from it (its quoted or bare database, schema and identifier).
-#}
{% macro expectation_relation(model) -%}
    {%- if model is not string -%}
        {{ return(model) }}
    {%- endif -%}
    {%- set found = modules.re.match('^\\(select \\* from (.+?) where ', model | trim, modules.re.IGNORECASE) -%}
    {%- if found is none -%}
        {{ exceptions.raise_compiler_error("harbor_expectations: cannot read a relation from " ~ model) }}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- for quoted, bare in modules.re.findall('"((?:[^"]|"")*)"|([^".\\s]+)', found.group(1)) -%}
        {%- do parts.append(quoted | replace('""', '"') if quoted else bare) -%}
    {%- endfor -%}
    {%- set parts = [none] * (3 - parts | length) + parts -%}
    {{ return(api.Relation.create(database=parts[-3], schema=parts[-2], identifier=parts[-1])) }}
{%- endmacro %}

{% macro expectation_columns(model) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(adapter.get_columns_in_relation(harbor_expectations.expectation_relation(model))) }}
{%- endmacro %}

{% macro expectation_find_column(model, column_name) -%}
    {%- for column in harbor_expectations.expectation_columns(model) -%}
        {%- if column.name | lower == column_name | replace('"', '') | lower -%}
            {{ return(column) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{#- A check decided in Jinja from metadata: one row carrying the message when it fails, none when it holds. -#}
{% macro expectation_check(holds, message) -%}
select cast({{ harbor_expectations.expectation_sql_literal(message) }} as {{ dbt.type_string() }}) as expectation_failure
{% if holds or not execute %}where 1 = 0{% endif %}
{%- endmacro %}

{% macro expectation_transform(name, transform) -%}
    {%- if transform == 'upper' -%}
        {{ return(name | upper) }}
    {%- elif transform == 'lower' -%}
        {{ return(name | lower) }}
    {%- else -%}
        {{ return(name) }}
    {%- endif -%}
{%- endmacro %}

{% macro expectation_column_ref(column, quote_columns=false) -%}
    {{ adapter.quote(column) if quote_columns else column }}
{%- endmacro %}

{#- Engine-specific expressions, through adapter.dispatch so other adapters can add their own. -#}
{% macro expectation_regex_match(column, regex, flags='') -%}
    {{ return(adapter.dispatch('expectation_regex_match', 'harbor_expectations')(column, regex, flags)) }}
{%- endmacro %}

{#-
    PostgreSQL, made to read a regex as DuckDB's RE2 does:
    - `\b` and `\B` (word boundary, not) are `\y` and `\Y` in PostgreSQL, where `\b` is a backspace. The escape is
      translated wherever it stands, even inside brackets, where `[\b]` becomes an error as in RE2; an escaped
      backslash and a b (`\\b`) is left alone.
    - The embedded option `p` (partial newline-sensitive): `.` does not match a newline and `^`/`$` match only at the
      ends of the value, as in RE2. One difference remains: a negated bracket expression such as `[^@]` does not
      match a newline here and does in RE2.
    - `flags` follow `p` among the embedded options (a later option wins, so `s` turns newline matching back on), and
      options the regex starts with, e.g. `(?i)`, join them: PostgreSQL allows one such group, at the very start.
-#}
{% macro default__expectation_regex_match(column, regex, flags='') -%}
    {#- A backslash and b or B, after no backslash or an even number of them (which are escaped backslashes). -#}
    {%- set boundary = '(?<!\\\\)((?:\\\\\\\\)*)\\\\' -%}
    {%- set regex = modules.re.sub(boundary ~ 'b', '\\g<1>\\\\y', regex) -%}
    {%- set regex = modules.re.sub(boundary ~ 'B', '\\g<1>\\\\Y', regex) -%}
    {%- set leading = modules.re.match('^\\(\\?([a-z]+)\\)', regex) -%}
    {%- if leading -%}
        {%- set flags = flags ~ leading.group(1) -%}
        {%- set regex = regex[leading.end():] -%}
    {%- endif -%}
    ({{ column }} ~ {{ harbor_expectations.expectation_sql_literal('(?p' ~ flags ~ ')' ~ regex) }})
{%- endmacro %}

{% macro duckdb__expectation_regex_match(column, regex, flags='') -%}
    regexp_matches({{ column }}, {{ harbor_expectations.expectation_sql_literal(regex) }}
        {%- if flags %}, {{ harbor_expectations.expectation_sql_literal(flags) }}{% endif %})
{%- endmacro %}

{% macro expectation_quantile(column, quantile) -%}
    {{ return(adapter.dispatch('expectation_quantile', 'harbor_expectations')(column, quantile)) }}
{%- endmacro %}

{% macro default__expectation_quantile(column, quantile) -%}
    percentile_cont({{ quantile }}) within group (order by {{ column }})
{%- endmacro %}

{% macro duckdb__expectation_quantile(column, quantile) -%}
    quantile_cont({{ column }}, {{ quantile }})
{%- endmacro %}

{#- The current wall-clock time in a time zone, as a timestamp without time zone. -#}
{% macro expectation_now_in(timezone='UTC') -%}
    {{ return(adapter.dispatch('expectation_now_in', 'harbor_expectations')(timezone)) }}
{%- endmacro %}

{% macro default__expectation_now_in(timezone='UTC') -%}
    (current_timestamp at time zone {{ harbor_expectations.expectation_sql_literal(timezone) }})
{%- endmacro %}
