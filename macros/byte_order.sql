{#- `expression` sorted and compared byte by byte, whatever the database's collation: DuckDB's order (its default
    collation is binary), so a tie broken on text picks the same row on every engine. PostgreSQL sorts text in
    the database's collation, where 'a' < 'B' and 'x' < 'X' (en_US, ICU) and, in an ICU collation with `-u-kn`,
    '1796462503.5' < '1796462503.123456': staging would keep another copy of an event re-sent in one load, a
    session would start at another of two events at one time, and two loads of one second would swap places. -#}
{% macro in_byte_order(expression) -%}
    {{ return(adapter.dispatch('in_byte_order', 'harbor')(expression)) }}
{%- endmacro %}

{#- DuckDB, and the engines whose default collation is binary too (Snowflake, BigQuery, Databricks): as it is. -#}
{% macro default__in_byte_order(expression) -%}
    {{ return(expression) }}
{%- endmacro %}

{#- "C" exists in every PostgreSQL database and orders UTF-8 text by its bytes, as DuckDB does. -#}
{% macro postgres__in_byte_order(expression) -%}
    {{ return('(' ~ expression ~ ') collate "C"') }}
{%- endmacro %}
