"""The smallest possible warehouse client for the observability tables: DuckDB files and PostgreSQL URLs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import sqlalchemy as sa

from ingestion.demo.shop import engine_for
from ingestion.settings import ConfigError, shown_location

SCHEMA = "observability"
_NAMED_PARAM = re.compile(r"(?<![:\w]):(\w+)")
# The (source_name, created_at) of each source's latest ingestion attempt: what "the source's state now" means to
# the alert and the metrics alike.
LATEST_INGESTION_PER_SOURCE = f"(select source_name, max(created_at) from {SCHEMA}.ingestion_runs group by source_name)"


class Warehouse(Protocol):
    kind: str

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None: ...

    def close(self) -> None: ...


class DuckDBWarehouse:
    kind = "duckdb"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.con = duckdb.connect(str(path), read_only=read_only)

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        cursor = self.con.execute(_NAMED_PARAM.sub(r"$\1", sql), params or None)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
        sql = _NAMED_PARAM.sub(r"$\1", sql)
        if rows:
            self.con.executemany(sql, rows)
        else:
            self.con.execute(sql)

    def close(self) -> None:
        self.con.close()


class PostgresWarehouse:
    kind = "postgres"

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)  # refuses a bare postgresql:// (psycopg 3 is not installed), naming the fix

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]

    def execute(self, sql: str, rows: list[dict[str, Any]] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), rows or {})

    def close(self) -> None:
        self.engine.dispose()


def open_warehouse(location: str | Path, *, read_only: bool = False) -> Warehouse:
    """A DuckDB file path, or a `postgresql+psycopg2://` URL; ConfigError for a URL of anything else (read as
    a file name it would have DuckDB try to download an extension for it)."""
    text = str(location)
    if text.startswith("postgres"):
        return PostgresWarehouse(text)
    if "://" in text:
        raise ConfigError(f"a warehouse is a DuckDB file or a postgresql+psycopg2:// URL, not {shown_location(text)}")
    return DuckDBWarehouse(Path(text), read_only=read_only)


@contextmanager
def connected(location: str | Path, *, read_only: bool = False) -> Iterator[Warehouse]:
    warehouse = open_warehouse(location, read_only=read_only)
    try:
        yield warehouse
    finally:
        warehouse.close()
