{#- The reconciliation tests' comparison of an amount with the one expected (tests/assert_*.sql): true when they
    differ by more than `tolerance` (half a cent: the marts round amounts to cents), or when one of them is null
    and the other is not. `abs(actual - expected) > tolerance` alone is null, so never true, when either side is
    null: a mart that lost an amount passed (found by review: amount_paid without its `coalesce(..., 0)`).
    `is distinct from` (DuckDB and PostgreSQL) decides only where the difference is null. -#}
{% macro amounts_differ(actual, expected, tolerance=0.005) -%}
    coalesce(abs({{ actual }} - {{ expected }}) > {{ tolerance }}, {{ actual }} is distinct from {{ expected }})
{%- endmacro %}
