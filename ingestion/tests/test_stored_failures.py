"""Failing rows are kept in the `audit` schema for the tests that warn or fail, and only while they do."""

from __future__ import annotations

import duckdb

from ingestion.demo import shop
from ingestion.pipeline import ingest_shop
from ingestion.transform import run_dbt

CUSTOMERS = ["--select", "source:shop.customers"]
UNIQUE_KEY_TEST = "source_unique_shop_customers_customer_id"


def audit_tables(settings) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        names = [
            name
            for (name,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'audit'"
            ).fetchall()
        ]
        return {name: conn.execute(f'select count(*) from audit."{name}"').fetchone()[0] for name in names}


def test_a_failing_test_stores_its_rows_and_a_passing_one_stores_nothing(settings):
    shop.create_shop(settings.shop_url, scale=0.2)
    ingest_shop(settings)

    assert run_dbt(settings, "test", *CUSTOMERS, check=False) == 0
    assert audit_tables(settings) == {}

    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("insert into raw_shop.customers select * from raw_shop.customers order by customer_id limit 1")
    assert run_dbt(settings, "test", *CUSTOMERS, check=False) == 0  # a duplicate raw key warns
    assert audit_tables(settings) == {UNIQUE_KEY_TEST: 1}

    # Fixed: the next run drops the failure it stored, so `audit` lists what fails now.
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "delete from raw_shop.customers where rowid = (select max(rowid) from raw_shop.customers"
            " where customer_id = (select min(customer_id) from raw_shop.customers))"
        )
    assert run_dbt(settings, "test", *CUSTOMERS, check=False) == 0
    assert audit_tables(settings) == {}
