{% snapshot snp_shop__customers %}

    {{ config(unique_key='customer_id', strategy='timestamp', updated_at='updated_at') }}

    -- Every column of the staging model: a column added there is added to the history too.
    select * from {{ ref('stg_shop__customers') }}  -- noqa: AM04
    where {{ staged_since_last_snapshot() }}

{% endsnapshot %}
