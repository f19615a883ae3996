"""The whole chain at a tiny scale: demo source -> dlt -> DuckDB -> dbt, checked against the source itself."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.demo import shop
from ingestion.pipeline import ingest_shop
from ingestion.settings import Settings
from ingestion.transform import run_dbt

REVENUE_STATUSES = ("paid", "shipped", "completed")


def expected_orders(url: str) -> dict[int, tuple]:
    """(customer_id, status, order_total, is_revenue) per live order, computed from the source alone."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        live = conn.execute(
            sa.select(shop.orders.c.order_id, shop.orders.c.customer_id, shop.orders.c.status).where(
                shop.orders.c.deleted_at.is_(None)
            )
        ).all()
        totals: dict[int, Decimal] = {}
        for order_id, quantity, unit_price in conn.execute(
            sa.select(shop.order_items.c.order_id, shop.order_items.c.quantity, shop.order_items.c.unit_price)
        ):
            totals[order_id] = totals.get(order_id, Decimal("0")) + quantity * Decimal(str(unit_price))
    engine.dispose()
    return {
        order_id: (customer_id, status, totals.get(order_id, Decimal("0")), status in REVENUE_STATUSES)
        for order_id, customer_id, status in live
    }


def warehouse_orders(settings: Settings) -> dict[int, tuple]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select order_id, customer_id, order_status, order_total, is_revenue from marts.fct_orders"
        ).fetchall()
    return {r[0]: (r[1], r[2], Decimal(r[3]).quantize(Decimal("0.01")), r[4]) for r in rows}


def assert_marts_match_source(settings: Settings) -> None:
    expected = expected_orders(settings.shop_url)
    actual = warehouse_orders(settings)
    assert actual.keys() == expected.keys()
    assert actual == expected
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (customers,) = conn.execute("select count(*) from marts.dim_customers").fetchone()
        (lifetime,) = conn.execute("select sum(lifetime_value) from marts.dim_customers").fetchone()
    assert customers > 0
    assert Decimal(lifetime).quantize(Decimal("0.01")) == sum(v[2] for v in expected.values() if v[3])


@pytest.mark.parametrize("source_kind", ["sqlite", "postgres"])
def test_demo_chain_matches_the_source_before_and_after_time_moves(settings, source_kind, request):
    if source_kind == "postgres":
        settings = Settings(
            settings.project_dir, settings.warehouse, settings.data_dir, request.getfixturevalue("postgres_url")
        )
    shop.create_shop(settings.shop_url, seed=11, scale=0.3)
    first = ingest_shop(settings)
    assert first.rows_extracted["orders"] == 90
    run_dbt(settings, "build")
    assert_marts_match_source(settings)

    (tick,) = shop.advance_shop(settings.shop_url)
    second = ingest_shop(settings)
    # Incremental: only rows changed within the tick (plus the lag window's re-reads) come again.
    assert 0 < second.rows_extracted["orders"] < first.rows_extracted["orders"]
    assert second.rows_extracted["order_items"] >= tick.inserted["order_items"]
    run_dbt(settings, "build")
    assert_marts_match_source(settings)


def test_raw_rows_carry_metadata_columns(settings):
    shop.create_shop(settings.shop_url, scale=0.2)
    result = ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        for table in shop.SHOP_TABLES:
            missing = conn.execute(
                f"select count(*) from raw_shop.{table} "
                "where _extracted_at is null or _source is null or _dlt_load_id is null"
            ).fetchone()[0]
            assert missing == 0, table
        (load_ids,) = conn.execute("select list(distinct _dlt_load_id) from raw_shop.orders").fetchone()
    assert load_ids == [result.load_id]


def test_rerunning_ingest_without_changes_duplicates_nothing(settings):
    shop.create_shop(settings.shop_url, scale=0.2)
    ingest_shop(settings)
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (rows, keys) = conn.execute("select count(*), count(distinct order_id) from raw_shop.orders").fetchone()
    assert rows == keys == 60
