"""The shop source: tables of an OLTP database loaded incrementally through dlt's `sql_database`.

Any SQLAlchemy URL works; the demo shop is just the default configuration. Everything is configuration
(`[sources.shop]` in .dlt/config.toml, or SOURCES__SHOP__* environment variables):

- `credentials`: the SQLAlchemy URL (a secret), or its fields one by one as dlt documents them (`settings.py`
  turns them into the URL); `schema`: the database schema (default: the URL's default);
- `table_names`: the tables to load, or `["*"]` for every table of the schema;
- `cursor_column` (default `updated_at`) and `lag_seconds` (default 3600) for every table, and per table
  `table_options.<table>.primary_key / cursor_column / lag_seconds` to override them. Primary keys are read
  from the database unless configured.

A table with a cursor is read from `cursor - lag` on every run, so a row committed late by a long
transaction is still picked up; the merge on the primary key makes the re-read harmless. Its first load (no
cursor in dlt's state yet) replaces instead of merging: the same rows, without dlt's merge of a whole table
(staging copy, deduplication, delete-insert), which cost most of a first load's time and memory. A table
without a cursor (no such column, or `cursor_column = ""`) is reloaded in full each run (replace).

Backends (`backend`): `auto` reads PostgreSQL with DuckDB's own scanner (`duckdb`, see
`ingestion/sources/postgres_scan.py`) and any other database through dlt's `sql_database` with `pyarrow`;
`connectorx`, `pyarrow` and `sqlalchemy` pick a `sql_database` backend explicitly.

Deletes: Harbor expects sources to soft-delete (a `deleted_at` timestamp that also bumps the cursor), as the
demo shop does. The row then arrives again with `deleted_at` set and replaces the live version in raw;
staging keeps it flagged and marts drop it. Hard deletes are only seen by tables reloaded in full.

Schema drift: a new source column simply appears in raw, nullable; a dropped one stays there, null from then on. A
changed column type, a wider integer included, stops the load with an error naming the table and column, before
anything is written (`drift.py`).

`shop_source` is here; what it is built from, one module a concern:
- `config.py`: the settings' defaults, the checks of the table options, and `SourceConfigError`;
- `database.py`: connecting to the source database, its clock, and which database the warehouse was loaded from;
- `tables.py`: the tables to load, reflected, and each one's plan (key, cursor, lag, write disposition);
- `backends.py`: the backend that reads them, and what its reader is given;
- `drift.py`: raw's schema against the source's (nullability, former keys, lost and new columns, integer widths);
- `value_checks.py`: SQLite's values read through a check of their column's type;
- `invalid_rows.py`: the step that sends the rows that cannot load to the dead letters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.common.exceptions import DltException
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from ingestion.demo.shop import SHOP_TABLES, engine_for
from ingestion.settings import non_negative_number
from ingestion.sources.http import WRONG_SETTING_SIGNS
from ingestion.sources.metadata import metadata_adder
from ingestion.sources.postgres_scan import ScannerSession, scanner_table
from ingestion.sources.quarantine import Tally, own_dead_letter_columns
from ingestion.sources.shop.backends import (
    BACKENDS,
    _backend_kwargs,
    _check_chunk_size,
    _chosen_backend,
    _decimal_caster,
)
from ingestion.sources.shop.config import (
    ALL_TABLES,
    DEFAULT_CURSOR,
    DEFAULT_LAG_SECONDS,
    TABLE_OPTION_KEYS,
    SourceConfigError,
    _table_options,
)
from ingestion.sources.shop.database import (
    SOURCE_DATABASE_STATE,
    _refuse_a_missing_sqlite_file,
    _refuse_another_source_database,
    _remembering,
    _source_clock,
    _source_database,
    wait_for_database,
)
from ingestion.sources.shop.drift import (
    SCHEMA_CONTRACT,
    _narrower_integers,
    _nullable_except,
    _raw_columns,
    _refuse_a_cursor_of_another_zone,
    _release_former_keys,
    _tables_with_a_cursor,
    _warn_about_changed_columns,
)
from ingestion.sources.shop.invalid_rows import _QuarantineInvalid
from ingestion.sources.shop.tables import (
    RESERVED_COLUMNS,
    _reflected_tables,
    _refuse_a_cursor_no_table_has,
    _table_plan,
    incremental_lag,
)
from ingestion.sources.shop.value_checks import _checking_values

__all__ = [
    "ALL_TABLES",
    "BACKENDS",
    "DEFAULT_CURSOR",
    "DEFAULT_LAG_SECONDS",
    "RESERVED_COLUMNS",
    "SCHEMA_CONTRACT",
    "SOURCE_DATABASE_STATE",
    "TABLE_OPTION_KEYS",
    "WRONG_SETTING_SIGNS",
    "SourceConfigError",
    "incremental_lag",
    "shop_source",
    "wait_for_database",
]


@dlt.source(name="shop", max_table_nesting=0)
def shop_source(
    credentials: str = dlt.secrets.value,
    schema: str | None = None,
    table_names: Sequence[str] = SHOP_TABLES,
    cursor_column: str = DEFAULT_CURSOR,
    lag_seconds: str = str(DEFAULT_LAG_SECONDS),  # any number; text, so that a wrong value is named below
    table_options: Mapping[str, Any] | None = None,
    backend: str = "auto",
    chunk_size: int = 50_000,
    extracted_at: datetime | None = None,
    tally: Tally | None = None,
    full_refresh: bool = False,
) -> Iterable[DltResource]:
    """One resource per table: merge + incremental with lag when it has a cursor, replace otherwise.
    `full_refresh`: raw is about to be dropped, so what raw holds now (nullability, integer widths) binds nothing.

    A valid row has its primary key and cursor set; a row without them (possible where the database does
    not enforce them) goes to `_dead_letters` instead of failing the whole table.
    """
    engine = engine_for(str(credentials))
    backend = _chosen_backend(backend, engine)
    _check_chunk_size(chunk_size)
    where = engine.url.render_as_string(hide_password=True) + (f" schema {schema}" if schema else "")
    _refuse_a_missing_sqlite_file(engine.url)
    wait_for_database(engine, where)
    inspector = sa.inspect(engine)
    stamp = extracted_at or datetime.now(UTC)
    add_metadata = metadata_adder("shop", stamp)
    tally = tally if tally is not None else Tally()
    options = _table_options(table_options)
    if not isinstance(cursor_column, str):
        raise SourceConfigError(
            f"shop: cursor_column (sources.shop.cursor_column, SOURCES__SHOP__CURSOR_COLUMN) must be a column name "
            f"or '', not {cursor_column!r}"
        )
    default_lag = non_negative_number(
        lag_seconds, "shop: lag_seconds (sources.shop.lag_seconds, SOURCES__SHOP__LAG_SECONDS)"
    )
    reflected_tables = _reflected_tables(inspector, table_names, schema, where, options)
    _refuse_a_cursor_no_table_has(cursor_column, options, reflected_tables)
    loaded_before = _tables_with_a_cursor()
    raw_tables = {} if full_refresh else _raw_columns()
    plans = {
        table: _table_plan(
            table,
            reflected,
            options.get(table, {}),
            inspector=inspector,
            schema=schema,
            where=where,
            cursor_column=cursor_column,
            default_lag=default_lag,
            text_timestamps=engine.dialect.name == "sqlite",
            raw=raw_tables.get(table) if raw_tables is not None else None,
            first_load=loaded_before is not None and table not in loaded_before,
        )
        for table, reflected in reflected_tables.items()
    }
    # After the settings are checked, before what raw holds is compared with the source: raw is another
    # database's, and would only differ from this one.
    source_database = _source_database(engine.url, schema)
    if not full_refresh:
        _refuse_another_source_database(source_database)
    scanner = ScannerSession(engine.url) if backend == "duckdb" else None
    source_now = _source_clock(engine, stamp)
    postgres_warehouse = _loads_into_postgres()
    for table, plan in plans.items():
        reflected = reflected_tables[table]
        _release_former_keys(table, plan.former_keys)
        if not full_refresh and engine.dialect.name != "sqlite":  # SQLite's cursors are text
            _refuse_a_cursor_of_another_zone(table, plan.cursor, reflected)
        _warn_about_changed_columns(table, reflected, plan.raw, merged=plan.write_disposition == "merge")
        if scanner is not None:
            resource = scanner_table(
                scanner,
                table,
                schema=schema or inspector.default_schema_name,
                primary_key=plan.primary_key,
                cursor=plan.incremental,
                write_disposition=plan.write_disposition,
                batch_rows=chunk_size,
                columns=reflected,
            )
        else:
            resource = sql_table(
                credentials=engine,
                table=table,
                schema=schema,
                backend=backend,
                backend_kwargs=_backend_kwargs(engine, backend, chunk_size),
                chunk_size=chunk_size,
                reflection_level="full_with_precision",
                table_adapter_callback=_nullable_except(plan.not_null),
                # SQLite alone keeps any value in any column; elsewhere the wrappers would only cost time
                query_adapter_callback=_checking_values(table) if engine.dialect.name == "sqlite" else None,
                incremental=plan.incremental,
                write_disposition=plan.write_disposition,
                primary_key=plan.primary_key,
            )
        own_dead_letter_columns(resource)
        # New columns evolve freely; a changed type stops the load instead of corrupting raw.
        resource.apply_hints(schema_contract=SCHEMA_CONTRACT)
        if backend == "connectorx":
            resource.add_map(_decimal_caster(reflected))
        # Right after the reader, before the incremental step: a row held back must not move the cursor. Not on
        # the sqlalchemy backend's Python rows: there dlt 1.31's incremental step failed an internal assertion
        # behind it, so that backend quarantines only null keys and cursors, at the end as before.
        python_rows = backend == "sqlalchemy"
        resource.add_yield_map(
            _QuarantineInvalid(
                table,
                plan.required,
                "" if python_rows else plan.cursor,
                where,
                stamp,
                tally,
                not_null=plan.not_null,
                narrower=_narrower_integers(plan.raw),
                source_now=source_now,
                future_tolerance=plan.future_tolerance,
                postgres_warehouse=postgres_warehouse,
            ),
            insert_at=None if python_rows else 1,
        )
        yield resource.add_map(add_metadata).add_map(_remembering(source_database))


def _loads_into_postgres() -> bool:
    """Whether the pipeline running this source loads a PostgreSQL warehouse (False outside a run)."""
    try:
        return dlt.current.pipeline().destination.destination_name == "postgres"
    except (DltException, AttributeError):
        return False
