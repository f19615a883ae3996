{#- Models land in the schema their folder names (staging, intermediate, marts), not <target>_<folder>:
    each target has a database (or DuckDB file) of its own, so the prefix would only add noise. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
