"""The dbt project's promises: every mart is the same on DuckDB and PostgreSQL, and the same after N
incremental runs (with late and duplicate raw rows) as after one `--full-refresh`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.demo import shop
from ingestion.demo.fx_api import FxApi
from ingestion.pipeline import ingest_events, ingest_fx, ingest_shop
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import run_dbt

MARTS = sorted(p.stem for p in (PROJECT_DIR / "models" / "marts").glob("*.sql"))


class Warehouse:
    """One warehouse (DuckDB file or PostgreSQL database) seen the same way by the test."""

    def __init__(self, settings: Settings, target: str, postgres_url: str | None = None) -> None:
        self.settings = settings
        self.target = target
        self.postgres_url = postgres_url

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A DB-API connection; parameters are written `%s` for both engines."""
        if self.postgres_url is None:
            conn = duckdb.connect(str(self.settings.warehouse))
            try:
                yield _QmarkConnection(conn)
            finally:
                conn.close()
        else:
            engine = sa.create_engine(self.postgres_url)
            raw = engine.raw_connection()
            try:
                yield raw
                raw.commit()
            finally:
                raw.close()
                engine.dispose()

    def ingest(self, monkeypatch: pytest.MonkeyPatch, fx_api: FxApi) -> None:
        """All three sources, as `harbor ingest` loads them."""
        with monkeypatch.context() as m:
            if self.postgres_url is not None:
                m.setenv("HARBOR_DESTINATION", "postgres")
            ingest_shop(self.settings)
            ingest_events(self.settings)
            ingest_fx(self.settings, base_url=fx_api.base_url)

    def build(self, *args: str) -> None:
        # No lookback: each incremental run reads only rows loaded since the last one, as it would hours later
        # (with the default hour of lookback, a fast test would re-read all of raw every time).
        # A target path per engine keeps dbt's partial parsing valid between runs.
        target_path = self.settings.warehouse.parent.parent / f"target_{self.target}"
        vars_ = '{"staging_lookback_hours": 0}'
        run_dbt(
            self.settings, "build", "--target", self.target, "--target-path", str(target_path), "--vars", vars_, *args
        )

    def marts(self) -> dict[str, list[tuple]]:
        """Every mart's rows, sorted, with columns in name order. `_loaded_at` (when an incremental mart last
        recomputed the row) is left out: it is bookkeeping that differs by design between runs."""
        result = {}
        with self.connect() as conn:
            for mart in MARTS:
                cursor = conn.cursor()
                cursor.execute(f"select * from marts.{mart}")
                names = [d[0] for d in cursor.description]
                order = sorted((i for i, name in enumerate(names) if name != "_loaded_at"), key=names.__getitem__)
                rows = [tuple(row[i] for i in order) for row in cursor.fetchall()]
                result[mart] = sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))
        return result


class _QmarkConnection:
    """DuckDB with psycopg2's `%s` placeholders, so the injection SQL below is written once."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def cursor(self) -> _QmarkConnection:
        return self

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.conn.execute(sql.replace("%s", "?"), params)

    @property
    def description(self) -> Any:
        return self.conn.description

    def fetchall(self) -> list[tuple]:
        return self.conn.fetchall()

    def fetchone(self) -> tuple | None:
        return self.conn.fetchone()


def _inject_late_and_duplicate_rows(warehouse: Warehouse, tick: int) -> None:
    """What a real pipeline sees now and then, written straight into raw as a later load:
    - an exact duplicate of an order (same version, loaded again),
    - an older version of an order arriving after the newer one (a replayed or out-of-order delivery),
    - a brand-new order whose business time is long past (late-arriving data)."""
    load_id = f"{time.time():.6f}"
    now = datetime.now(UTC)
    columns = "order_id, customer_id, status, currency, ordered_at, created_at, updated_at, deleted_at"
    with warehouse.connect() as conn:
        cur = conn.cursor()
        # Rows of the first load: their newest version is staged and no longer in the incremental window.
        cur.execute(
            f"select {columns}, _source from raw_shop.orders "
            "where _extracted_at = (select min(_extracted_at) from raw_shop.orders) order by order_id"
        )
        rows = cur.fetchall()
        duplicate, stale = rows[tick], rows[-1 - tick]
        cur.execute("select max(order_id) from raw_shop.orders")
        (max_id,) = cur.fetchone()
        insert = (
            f"insert into raw_shop.orders ({columns}, _source, _extracted_at, _dlt_load_id) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        cur.execute(insert, (*duplicate, now, load_id))
        older = list(stale)
        older[2] = "cancelled" if stale[2] != "cancelled" else "paid"
        older[6] = stale[6] - timedelta(days=3)
        cur.execute(insert, (*older, now, load_id))
        late = list(duplicate)
        late[0] = max_id + 10_000 + tick
        late[4] = late[5] = late[6] = datetime(2023, 6, 1, 12, 0) + timedelta(days=tick)
        late[2], late[7] = "completed", None
        cur.execute(insert, (*late, now, load_id))


def test_marts_are_the_same_incrementally_after_a_full_refresh_and_on_both_engines(settings, pg_env, monkeypatch):
    """Both warehouses take the same ticks side by side (ingest shop, events and fx; late and duplicate raw rows
    on top of the ones the demo events and rates already have; dbt build), then:
    DuckDB marts == PostgreSQL marts, and on each engine incremental marts == marts after `--full-refresh`.
    Along the way: no personal data in marts, snapshots keep history, analyses compile and run."""
    on_duckdb = Warehouse(settings, "ci")
    on_postgres = Warehouse(settings, "pg", pg_env)
    both = (on_duckdb, on_postgres)
    shop.create_shop(settings.shop_url, seed=5, scale=0.3, events_to=settings.data_dir)
    with FxApi(seed=5, tick=0) as fx_api:
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
    for tick in (1, 2):
        shop.advance_shop(settings.shop_url, events_to=settings.data_dir)
        _reprice_product(settings.shop_url, product_id=1)
        with FxApi(seed=5, tick=tick) as fx_api:
            for warehouse in both:
                warehouse.ingest(monkeypatch, fx_api)
                _inject_late_and_duplicate_rows(warehouse, tick)
                warehouse.build()
    incremental = {w.target: w.marts() for w in both}

    assert set(incremental["ci"]) == set(MARTS) >= {"fct_orders", "dim_customers", "fct_sessions"}
    for mart in MARTS:
        assert incremental["ci"][mart], f"{mart} is empty"
        assert incremental["ci"][mart] == incremental["pg"][mart], f"{mart}: DuckDB and PostgreSQL differ"
    # The late-arriving orders made it; the stale versions did not overwrite newer ones (full refresh below).
    late = _select(on_duckdb, "select count(*) from marts.fct_orders where order_id > 10000")
    assert late == [(2,)]

    # Personal data never reaches a mart in clear.
    emails_and_phones = [
        value
        for rows in incremental["ci"].values()
        for row in rows
        for value in row
        if isinstance(value, str) and ("@" in value or value.startswith("+1-555"))
    ]
    assert emails_and_phones == []
    # The snapshot kept every price of product 1 (created, then repriced at each tick) on both engines.
    for warehouse in both:
        versions = _select(
            warehouse,
            "select count(*), count(dbt_valid_to) from snapshots.snp_shop__products where product_id = 1",
        )
        assert versions == [(3, 2)], warehouse.target

    for warehouse in both:
        warehouse.build("--full-refresh")
        full_refresh = warehouse.marts()
        for mart in MARTS:
            assert incremental[warehouse.target][mart] == full_refresh[mart], (
                f"{mart} on {warehouse.target}: incremental differs from full refresh"
            )

    # The analyses compile, and their SQL runs and finds rows.
    target_path = settings.warehouse.parent.parent / "target_ci"
    run_dbt(
        settings, "compile", "--target", "ci", "--target-path", str(target_path), "--select", "resource_type:analysis"
    )
    compiled = sorted((target_path / "compiled" / "harbor" / "analyses").glob("*.sql"))
    assert [p.stem for p in compiled] == ["order_status_funnel", "top_products_by_revenue"]
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        for path in compiled:
            assert conn.execute(path.read_text()).fetchall(), path.stem


def _reprice_product(url: str, product_id: int) -> None:
    """A price change at the shop's current time: the kind of update snapshots exist for."""
    engine = shop.engine_for(url)
    with engine.begin() as conn:
        (now,) = conn.execute(sa.select(shop.shop_clock.c.shop_time)).one()
        conn.execute(
            sa.update(shop.products)
            .where(shop.products.c.product_id == product_id)
            .values(unit_price=shop.products.c.unit_price + 1, updated_at=now - timedelta(minutes=1))
        )
    engine.dispose()


def _select(warehouse: Warehouse, sql: str, params: tuple = ()) -> list[tuple]:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]
