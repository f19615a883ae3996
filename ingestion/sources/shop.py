"""The shop source: tables of an OLTP database loaded incrementally through dlt's `sql_database`.

Any SQLAlchemy URL works; the demo shop is just the default configuration. Per table the source needs a
primary key (read from the database unless configured) and a cursor column (`updated_at` by default).
Rows are re-read from `cursor - lag` on every run, so a row committed late by a long transaction is still
picked up; the merge on the primary key makes the re-read harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import dlt
import sqlalchemy as sa
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from ingestion.demo.shop import SHOP_TABLES, engine_for
from ingestion.sources.metadata import metadata_adder

DEFAULT_CURSOR = "updated_at"
DEFAULT_LAG_SECONDS = 3600


class SourceConfigError(ValueError):
    """The source's configuration does not match the database it points at."""


@dlt.source(name="shop", max_table_nesting=0)
def shop_source(
    credentials: str = dlt.secrets.value,
    table_names: Sequence[str] = SHOP_TABLES,
    cursor_column: str = DEFAULT_CURSOR,
    lag_seconds: int = DEFAULT_LAG_SECONDS,
    backend: str = "pyarrow",
    chunk_size: int = 50_000,
    extracted_at: datetime | None = None,
) -> Iterable[DltResource]:
    """One merge resource per table, incremental on `cursor_column` with a `lag_seconds` re-read window."""
    engine = engine_for(str(credentials))
    inspector = sa.inspect(engine)
    add_metadata = metadata_adder("shop", extracted_at or datetime.now(UTC))
    for table in table_names:
        if not inspector.has_table(table):
            raise SourceConfigError(f"shop: table {table!r} not found in {engine.url.render_as_string()}")
        primary_key = inspector.get_pk_constraint(table).get("constrained_columns") or []
        if not primary_key:
            raise SourceConfigError(f"shop: table {table!r} has no primary key; configure one")
        columns = {c["name"] for c in inspector.get_columns(table)}
        if cursor_column not in columns:
            raise SourceConfigError(f"shop: table {table!r} has no cursor column {cursor_column!r}")
        resource = sql_table(
            credentials=engine,
            table=table,
            backend=backend,
            chunk_size=chunk_size,
            reflection_level="full_with_precision",
            incremental=dlt.sources.incremental(cursor_column, lag=lag_seconds),
            write_disposition="merge",
            primary_key=primary_key,
        )
        yield resource.add_map(add_metadata)
