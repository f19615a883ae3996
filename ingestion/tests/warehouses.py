"""Warehouses the transformation tests build side by side: a DuckDB file and a PostgreSQL database, seen the
same way (ingest all sources, `dbt build`, read the marts, run SQL with `%s` parameters on both)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.demo.fx_api import FxApi
from ingestion.pipeline import ingest_events, ingest_fx, ingest_shop
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import run_dbt

MARTS = sorted(p.stem for p in (PROJECT_DIR / "models" / "marts").glob("*.sql"))


# fx staging and the seed its tests read, with only the tests that read nothing else: a build of it alone.
FX_STAGING = ("--select", "stg_fx__exchange_rates", "currencies", "--indirect-selection", "cautious")


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


def built_demo_shop(settings: Settings, scale: float = 0.2) -> None:
    """The demo shop created in `settings`, ingested and built once in full (SQLite source, DuckDB warehouse)."""
    from ingestion.demo import shop

    shop.create_shop(settings.shop_url, scale=scale)
    ingest_shop(settings)
    run_dbt(settings, "build")


def select(warehouse: Warehouse, sql: str, params: tuple = ()) -> list[tuple]:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]


def duckdb_and_postgres(settings: Settings, postgres_url: str) -> tuple[Warehouse, Warehouse]:
    """The `ci` (DuckDB) and `pg` (PostgreSQL) targets over the same sources."""
    return Warehouse(settings, "ci"), Warehouse(settings, "pg", postgres_url)


def assert_a_full_refresh_gives_the_same_marts(
    warehouses: tuple[Warehouse, ...], incremental: dict[str, dict[str, list[tuple]]]
) -> None:
    """Rebuild every warehouse with `--full-refresh`: its marts must equal the ones its incremental runs left
    (`incremental`: marts by target)."""
    for warehouse in warehouses:
        warehouse.build("--full-refresh")
        full_refresh = warehouse.marts()
        for mart in MARTS:
            assert incremental[warehouse.target][mart] == full_refresh[mart], (
                f"{mart} on {warehouse.target}: incremental differs from full refresh"
            )
