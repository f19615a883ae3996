{#- A compound primary key: no two rows share the same values in `columns` (dbt_utils is out of reach offline). -#}
{% test unique_key_combination(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
