{% snapshot snp_shop__customers %}

    -- A new version when any of the source's own columns differs from the current one, not when `updated_at` is
    -- later: a source whose clock stepped back writes a newer version with an older `updated_at`, which staging
    -- keeps (it orders by load first) and the timestamp strategy skipped for good. A key the source hard-deleted
    -- ends its current version (`end_versions_staging_lost()`, macros/snapshots.sql).
    {{ config(
        unique_key='customer_id',
        strategy='check',
        check_cols=['first_name', 'last_name', 'email', 'phone', 'country_code', 'created_at', 'updated_at', 'deleted_at'],
        post_hook="{{ end_versions_staging_lost() }}",
    ) }}

    -- Every column of the staging model: a column added there is added to the history too.
    select * from {{ ref('stg_shop__customers') }}  -- noqa: AM04
    where {{ staged_since_last_snapshot() }}

{% endsnapshot %}
