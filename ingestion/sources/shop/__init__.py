"""The shop source: tables of an OLTP database loaded incrementally through dlt's `sql_database`.

Any SQLAlchemy URL works; the demo shop is just the default configuration. Everything is configuration
(`[sources.shop]` in .dlt/config.toml, or SOURCES__SHOP__* environment variables):

- `credentials`: the SQLAlchemy URL (a secret); `schema`: the database schema (default: the URL's default);
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

Schema drift: a new source column simply appears in raw, nullable; a dropped one stays there, null from then on
(raw columns are nullable but for the key and the cursor, `_not_null_columns`; a column that stops being either
is made nullable, `_release_former_keys`). A changed column type, a wider integer included, stops the load (dlt
schema contract `data_type: freeze`) with an error naming the table and column, before anything is written.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from dlt.common.exceptions import DltException
from dlt.common.schema.exceptions import DataValidationError
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from ingestion.demo.shop import SHOP_TABLES, engine_for, missing_sqlite_file
from ingestion.settings import ConfigError, non_negative_number
from ingestion.sources.http import RetryPolicy
from ingestion.sources.metadata import EXTRACTED_AT, SOURCE, metadata_adder
from ingestion.sources.postgres_scan import INVALID, ScannerSession, scanner_table
from ingestion.sources.quarantine import (
    COLUMN_NAMING,
    FUTURE_TOLERANCE,
    Tally,
    dead_letter,
    future_tolerance,
    own_dead_letter_columns,
    shown_tolerance,
)

log = logging.getLogger("harbor.ingestion.shop")

DEFAULT_CURSOR = "updated_at"
DEFAULT_LAG_SECONDS = 3600
ALL_TABLES = "*"
BACKENDS = ("auto", "duckdb", "connectorx", "pyarrow", "sqlalchemy")
TABLE_OPTION_KEYS = ("primary_key", "cursor_column", "lag_seconds")
# The contract every shop table is loaded under: new tables and columns evolve, a changed type stops the load.
SCHEMA_CONTRACT = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
SOURCE_DATABASE_STATE = "source_database"


class SourceConfigError(ConfigError):
    """The source's configuration does not match the database it points at."""


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


def _source_clock(engine: sa.Engine, stamp: datetime) -> datetime:
    """Now on the source's clock, which stamps its rows, for the check of cursors in the future: a PostgreSQL
    server whose clock runs ahead of this machine's would otherwise have its newest rows held back. Elsewhere
    (SQLite is a local file) this machine's clock, `stamp`."""
    if engine.dialect.name != "postgresql":
        return stamp
    with engine.connect() as conn:
        return conn.execute(sa.text("select now()")).scalar_one().astimezone(UTC)


def _source_database(url: sa.URL, schema: str | None) -> str:
    """Which database the shop is read from, as the warehouse remembers it: the engine and the database (a SQLite
    file's full path), and the schema. Not the host: the same database reached by another address is the same."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        database = str(Path(database).resolve())
    return f"{url.get_backend_name()} {database}" + (f" schema {schema}" if schema else "")


def _refuse_another_source_database(source_database: str) -> None:
    """The stored cursors are another database's: an incremental run read only its rows newer than them (often
    none: every table loaded 0 rows, exit 0) and staging kept the other database's rows beside them."""
    try:
        remembered = dlt.current.source_state().get(SOURCE_DATABASE_STATE)
    except DltException:  # no active pipeline: the source is being built outside a run
        return
    if remembered is not None and remembered != source_database:
        raise SourceConfigError(
            f"shop: the warehouse's shop tables were loaded from another database ({remembered}; now "
            f"{source_database}, sources.shop.credentials): their incremental cursors are that database's, so an "
            "incremental run would load only part of this one, or nothing. Run `harbor ingest shop --full-refresh`, "
            "then `harbor build --full-refresh`; or give this source a warehouse of its own (HARBOR_WAREHOUSE)"
        )


def _remembering(source_database: str) -> Callable[[Any], Any]:
    """A map step that records the source database in dlt's source state, committed with the load (state set
    while the source is built, outside extraction, is not kept)."""

    def remember(item: Any) -> Any:
        dlt.current.source_state()[SOURCE_DATABASE_STATE] = source_database
        return item

    return remember


def _chosen_backend(backend: str, engine: sa.Engine) -> str:
    if backend not in BACKENDS:
        raise SourceConfigError(f"shop: backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        # DuckDB's scanner reads PostgreSQL into Arrow with no per-row Python work: at 10M order items 11.7 s
        # against connectorx's 17.4 s, in less memory (README, "Performance"). SQLite and other databases keep
        # pyarrow, which works through any SQLAlchemy dialect.
        return "duckdb" if engine.dialect.name == "postgresql" else "pyarrow"
    if backend == "duckdb" and engine.dialect.name != "postgresql":
        raise SourceConfigError(f"shop: backend 'duckdb' reads PostgreSQL only, not {engine.dialect.name}")
    return backend


def _check_chunk_size(chunk_size: object) -> None:
    # dlt takes a chunk of 0 or fewer rows and extracts nothing: every run loaded nothing, and exited 0.
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise SourceConfigError(
            f"shop: chunk_size (sources.shop.chunk_size, SOURCES__SHOP__CHUNK_SIZE) must be a whole number of rows, "
            f"1 or more, not {chunk_size!r}"
        )


def _reflected_tables(
    inspector: sa.Inspector,
    table_names: Sequence[str] | str,
    schema: str | None,
    where: str,
    options: dict[str, dict],
) -> dict[str, list[dict]]:
    """The columns of every table to load, by table, in the order configured (`["*"]`: every table, by name)."""
    if isinstance(table_names, str):
        table_names = [table_names]
    if list(table_names) == [ALL_TABLES]:
        table_names = sorted(inspector.get_table_names(schema=schema))
    if not table_names:  # an empty list, or `["*"]` in a schema without tables (a mistyped schema): a quiet day
        raise SourceConfigError(
            f"shop: no table to load in {where} (sources.shop.table_names, SOURCES__SHOP__TABLE_NAMES; "
            "sources.shop.schema, SOURCES__SHOP__SCHEMA)"
        )
    unknown = sorted(set(options) - set(table_names))
    if unknown:
        raise SourceConfigError(f"shop: table_options for {', '.join(unknown)}, which are not among the loaded tables")
    reflected_tables: dict[str, list[dict]] = {}
    for table in table_names:
        if not inspector.has_table(table, schema=schema):
            raise SourceConfigError(f"shop: table {table!r} not found in {where}")
        reflected_tables[table] = inspector.get_columns(table, schema=schema)
        _refuse_names_raw_cannot_keep_apart(table, [c["name"] for c in reflected_tables[table]])
    _refuse_names_raw_cannot_keep_apart(None, list(reflected_tables))
    return reflected_tables


# Written by Harbor and dlt into every raw row: a source column of one of these names would be overwritten.
RESERVED_COLUMNS = (EXTRACTED_AT, SOURCE, "_dlt_load_id")


def _refuse_names_raw_cannot_keep_apart(table: str | None, names: list[str]) -> None:
    """raw names tables and columns in snake case: two source names that become one (`Orders` and `orders`,
    `OrderId` and `order_id`) loaded into one raw table or column, the second's rows replacing the first's by key;
    a column named like a metadata column had its values overwritten. Both silently. `table` None: `names` are
    the tables."""
    normalize = COLUMN_NAMING.normalize_table_identifier if table is None else COLUMN_NAMING.normalize_identifier
    seen: dict[str, str] = {}
    for name in names:
        raw_name = normalize(name)
        if table is not None and raw_name in RESERVED_COLUMNS:
            raise SourceConfigError(
                f"shop: table {table!r} column {name!r} would load into raw column {raw_name!r}, which Harbor and "
                "dlt write into every raw row: rename it in the source, or load a view that does"
            )
        if raw_name in seen:
            what = "tables" if table is None else f"table {table!r} columns"
            hint = "load one of them (sources.shop.table_names)" if table is None else "rename one in the source"
            raise SourceConfigError(
                f"shop: {what} {seen[raw_name]!r} and {name!r} would both load into raw "
                f"{'table' if table is None else 'column'} {raw_name!r}: {hint}, or load a view that renames it"
            )
        seen[raw_name] = name


def _refuse_a_cursor_no_table_has(
    cursor_column: str, options: dict[str, dict], reflected_tables: dict[str, list[dict]]
) -> None:
    """A mistyped cursor_column would find no table to follow, and every table would quietly reload in full. The
    default is exempt: a database without `updated_at` anywhere (TPC-H) reloads in full by design."""
    following = [t for t in reflected_tables if "cursor_column" not in options.get(t, {})]
    if (
        cursor_column
        and cursor_column != DEFAULT_CURSOR
        and following
        and not any(cursor_column in {c["name"] for c in reflected_tables[t]} for t in following)
    ):
        raise SourceConfigError(
            f"shop: cursor_column {cursor_column!r} (sources.shop.cursor_column, SOURCES__SHOP__CURSOR_COLUMN) is a "
            f"column of none of the tables {', '.join(following)}; name a column they have, or set it to '' to "
            "reload every table in full"
        )


@dataclass(frozen=True)
class _TablePlan:
    """How one table is read and loaded, settled before any row is."""

    primary_key: list[str]
    cursor: str  # "" when the table reloads in full
    incremental: dlt.sources.incremental | None
    write_disposition: str
    required: list[str]  # the key and the cursor: a row without them is a dead letter
    not_null: set[str]
    raw: dict[str, dict] | None  # the raw table's columns, None before its first load
    former_keys: list[str]  # raw's columns to release from NOT NULL before loading (`_former_keys`)
    future_tolerance: timedelta = FUTURE_TOLERANCE  # how far ahead of the source's clock a cursor may be


def _table_plan(
    table: str,
    reflected: list[dict],
    table_option: dict,
    *,
    inspector: sa.Inspector,
    schema: str | None,
    where: str,
    cursor_column: str,
    default_lag: float,
    text_timestamps: bool,
    raw: dict[str, dict] | None,
    first_load: bool,
) -> _TablePlan:
    configured_key = table_option.get("primary_key") or []
    if isinstance(configured_key, str):  # one column, written without a list
        configured_key = [configured_key]
    primary_key = list(configured_key) or (
        inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    )
    if not primary_key:
        raise SourceConfigError(
            f"shop: table {table!r} has no primary key in {where}; "
            f"configure sources.shop.table_options.{table}.primary_key"
        )
    columns = {c["name"] for c in reflected}
    missing = sorted(set(primary_key) - columns)
    if missing:
        raise SourceConfigError(f"shop: table {table!r} has no column(s) {', '.join(missing)} (primary key)")
    cursor = table_option.get("cursor_column", cursor_column if cursor_column in columns else "")
    if cursor and cursor not in columns:
        raise SourceConfigError(f"shop: table {table!r} has no cursor column {cursor!r}")
    lag = default_lag
    if "lag_seconds" in table_option:
        lag = non_negative_number(
            table_option["lag_seconds"],
            f"shop: lag_seconds of table {table!r} (sources.shop.table_options.{table}.lag_seconds)",
        )
    cursor_type = next((c["type"] for c in reflected if c["name"] == cursor), None)
    is_date = isinstance(cursor_type, sa.Date) and not isinstance(cursor_type, sa.DateTime)
    lag = incremental_lag(
        lag,
        is_date=is_date,
        # a TEXT cursor compares text with text (and dlt cannot lag a string it does not parse)
        text_timestamps=text_timestamps and isinstance(cursor_type, sa.DateTime),
    )
    required = [*primary_key, *([cursor] if cursor else [])]
    # Rows without a cursor are quarantined rather than failing the table. `primary_key=()` turns off dlt's
    # deduplication of the rows at the cursor's last value: it remembers them by primary key, so with
    # `lag_seconds = 0` a row changed again without a new cursor value (a status fixed in the same second) was
    # skipped for good. They are read again instead and the merge on the key replaces them (with a lag dlt
    # already reads the window again and deduplicates nothing).
    incremental = (
        dlt.sources.incremental(cursor, lag=lag, on_cursor_value_missing="include", primary_key=()) if cursor else None
    )
    return _TablePlan(
        primary_key=primary_key,
        cursor=cursor,
        incremental=incremental,
        write_disposition="merge" if cursor and not first_load else "replace",
        required=required,
        not_null=_not_null_columns(required, raw),
        former_keys=_former_keys(required, raw),
        raw=raw,
        future_tolerance=future_tolerance(timedelta(days=lag) if is_date else timedelta(seconds=lag)),
    )


def _refuse_a_missing_sqlite_file(url: sa.URL) -> None:
    """A SQLite URL naming no file is a wrong setting. Connecting would create an empty database there (a typo
    in the path left a stray file behind) and then find none of the tables."""
    database = missing_sqlite_file(url)
    if database:
        raise SourceConfigError(
            f"shop: no SQLite database at {database} (sources.shop.credentials, SOURCES__SHOP__CREDENTIALS); "
            "`harbor demo create` makes the demo shop"
        )


def _table_options(table_options: Any) -> dict[str, dict]:
    """`table_options` checked: a mapping of table to a mapping of TABLE_OPTION_KEYS. A mistyped key
    (`primary_keys`, `cursor_colum`) would otherwise be ignored, and the table loaded as if it were not there."""
    setting = "sources.shop.table_options (SOURCES__SHOP__TABLE_OPTIONS)"
    allowed = ", ".join(TABLE_OPTION_KEYS)
    if table_options is None:
        return {}
    if not isinstance(table_options, Mapping):
        raise SourceConfigError(f"shop: {setting} must map table names to options ({allowed}), not {table_options!r}")
    options: dict[str, dict] = {}
    for table, value in table_options.items():
        name = f"sources.shop.table_options.{table}"
        if not isinstance(value, Mapping):
            raise SourceConfigError(f"shop: {name} must be a mapping of {allowed}, not {value!r}")
        unknown = sorted(str(key) for key in set(value) - set(TABLE_OPTION_KEYS))
        if unknown:
            raise SourceConfigError(f"shop: {name} has unknown key(s) {', '.join(unknown)}; the keys are {allowed}")
        key = value.get("primary_key")
        if key is not None and not (
            isinstance(key, str) or (isinstance(key, Sequence) and all(isinstance(c, str) for c in key))
        ):
            raise SourceConfigError(f"shop: {name}.primary_key must be a column name or a list of them, not {key!r}")
        cursor = value.get("cursor_column")
        if cursor is not None and not isinstance(cursor, str):
            raise SourceConfigError(f"shop: {name}.cursor_column must be a column name or '', not {cursor!r}")
        options[str(table)] = dict(value)
    return options


def incremental_lag(lag_seconds: float, *, is_date: bool, text_timestamps: bool = False) -> float:
    """The lag to give dlt's incremental. dlt reads a lag in the cursor's own unit: seconds on a timestamp, but
    days on a DATE cursor, where `lag_seconds = 3600` would have re-read ten years. A date cursor gets whole days,
    rounded up (ceil(lag_seconds / 86400): 3600 s re-reads one day, 0 none); a timestamp whole seconds, rounded
    down. Where timestamps compare as text (SQLite), a microsecond more: dlt binds the cursor with microseconds,
    and `... 00:00:00` (no fraction, as SQLite's CURRENT_TIMESTAMP writes) sorts before `... 00:00:00.000000`, so
    a row at the window's lower bound (with no lag: at the cursor's last value) was not read again."""
    if is_date:
        return math.ceil(lag_seconds / 86400)
    return int(lag_seconds) + (1e-6 if text_timestamps else 0)


def _raw_columns() -> dict[str, dict[str, dict]] | None:
    """The complete columns (those with a type) of each table in the shop schema as the warehouse has them, by
    table and column name; None when there is no active pipeline to ask."""
    try:
        pipeline = dlt.current.pipeline()
    except DltException:
        return None
    if "shop" not in pipeline.schema_names:
        return {}
    tables = pipeline.schemas["shop"].tables
    return {
        name: {column: hints for column, hints in table.get("columns", {}).items() if hints.get("data_type")}
        for name, table in tables.items()
    }


def _not_null_columns(required: list[str], raw: dict[str, dict] | None) -> set[str]:
    """The source columns to load as NOT NULL: the key and the cursor, those raw holds NOT NULL (a table new to
    raw: all of them). Why not every key and cursor: dlt's frozen data types count nullability as part of the
    type, both ways, so a cursor turned off (its column released, `_former_keys`) then on again (not null) stopped
    every later load; and a NOT NULL column added to the source is added to raw nullable (DuckDB adds no column
    with a constraint, and the package stayed stuck)."""
    if not raw:
        return set(required)
    return {
        column
        for column in required
        if (raw.get(COLUMN_NAMING.normalize_identifier(column)) or {}).get("nullable") is False
    }


def _former_keys(required: list[str], raw: dict[str, dict] | None) -> list[str]:
    """Raw's columns held NOT NULL that are no longer the key or the cursor (their settings changed): loaded as
    they were, a null the source now sends in one, or the column dropped, would fail the load."""
    still_required = {COLUMN_NAMING.normalize_identifier(column) for column in required}
    return sorted(
        name
        for name, hints in (raw or {}).items()
        if hints.get("nullable") is False and name not in still_required and not name.startswith("_")
    )


def _release_former_keys(table: str, columns: list[str]) -> None:
    """Makes the columns of `_former_keys` nullable in raw, in the warehouse and in dlt's schema alike, before
    anything is read. dlt alters no existing column, so until a full refresh such a column refused any null,
    and a source that dropped it could not load at all. Dropping NOT NULL again does nothing: a run stopped after
    the warehouse's change and before dlt stored its schema does it again."""
    if not columns:
        return
    pipeline = dlt.current.pipeline()
    with pipeline.sql_client() as client:
        _drop_not_null(client, table, columns)
        # dlt's merge inserts into a table of the same shape in the staging dataset first, which it creates once
        # and only ever adds columns to: left NOT NULL there, the load failed on the first null all the same.
        with client.with_staging_dataset():
            _drop_not_null(client, table, columns)
    raw_columns = pipeline.schemas["shop"].tables[table]["columns"]
    for column in columns:
        raw_columns[column]["nullable"] = True
    log.warning(
        "shop: table %r column(s) %s are no longer its key or cursor: raw holds them nullable from now on",
        table,
        ", ".join(columns),
        extra={"source": "shop", "table": table, "columns": columns},
    )


def _drop_not_null(client: Any, table: str, columns: list[str]) -> None:
    qualified = client.make_qualified_table_name(table)
    for column in columns:
        try:
            client.execute_sql(
                f"alter table {qualified} alter column {client.escape_column_name(column)} drop not null"
            )
        except DatabaseUndefinedRelation:  # not created yet (no load, or no merge): created as the schema says
            return


def _refuse_a_cursor_of_another_zone(table: str, cursor: str, reflected: list[dict]) -> None:
    """A cursor column changed between `timestamp` and `timestamptz`: dlt's stored cursor cannot be compared with
    its values, and the run failed naming neither table nor column."""
    kind = next((c["type"] for c in reflected if c["name"] == cursor), None)
    if not cursor or not isinstance(kind, sa.DateTime):
        return
    try:
        resources = dlt.current.source_state().get("resources", {})
    except DltException:  # no active pipeline: the source is being built outside a run
        return
    last = resources.get(table, {}).get("incremental", {}).get(cursor, {}).get("last_value")
    if isinstance(last, datetime) and (last.tzinfo is not None) != bool(kind.timezone):
        now, before = ("with", "without") if kind.timezone else ("without", "with")
        raise SourceConfigError(
            f"shop: table {table!r} cursor column {cursor!r} is now a timestamp {now} time zone, and the cursor "
            f"stored from the loads before is {before} one: they cannot be compared. "
            "`harbor ingest shop --full-refresh` reloads the source"
        )


def _warn_about_changed_columns(
    table: str, reflected: list[dict], raw: dict[str, dict] | None, *, merged: bool
) -> None:
    """Columns raw holds that the source lost, and, in a table merged by its cursor, columns new to raw: both load,
    but staging and the marts read nulls in them, silently, for the rows changed from now on (a lost or renamed
    column) or for the rows loaded before (a new one, even added with a default: the rows it filled did not
    change). A lost column is said at every run until a full refresh of the table, a new one by the run that adds
    it."""
    if raw is None:
        return
    present = {COLUMN_NAMING.normalize_identifier(c["name"]) for c in reflected}
    gone = sorted(name for name in raw if name not in present and not name.startswith("_"))
    if gone:
        log.warning(
            "shop: table %r no longer has column(s) %s: raw keeps them, null in every row loaded from now on (a "
            "renamed column loads under its new name); `harbor ingest shop --full-refresh` drops them",
            table,
            ", ".join(gone),
            extra={"source": "shop", "table": table, "columns": gone},
        )
    new = sorted(name for name in present if name not in raw)
    if new and merged:
        log.warning(
            "shop: table %r has new column(s) %s: rows loaded before hold null in them until they change (a "
            "default the source filled in is not read back); `harbor ingest shop --full-refresh` reloads them all",
            table,
            ", ".join(new),
            extra={"source": "shop", "table": table, "columns": new},
        )


def _narrower_integers(raw: dict[str, dict] | None) -> dict[str, int]:
    """Integer columns raw holds narrower than 64 bits, by raw's column name, with their width."""
    return {
        name: column["precision"]
        for name, column in (raw or {}).items()
        if column.get("data_type") == "bigint" and column.get("precision") and column["precision"] < 64
    }


def _tables_with_a_cursor() -> set[str] | None:
    """Tables whose incremental cursor is in dlt's state: loaded before, so merged from now on; None when
    there is no pipeline state to ask (every table then merges, which is always correct). The pipeline syncs
    its state with the warehouse before the source is built (`ingestion.pipeline.run_source`), so a lost local
    state never turns a merge of the changed rows into a replace of the whole table by them."""
    try:
        resources = dlt.current.source_state().get("resources", {})
    except DltException:  # no active pipeline: the source is being built outside a run
        return None
    return {
        name
        for name, state in resources.items()
        if any(cursor.get("last_value") is not None for cursor in state.get("incremental", {}).values())
    }


def _backend_kwargs(engine: sa.Engine, backend: str, chunk_size: int) -> dict:
    if backend != "connectorx":
        return {}
    # connectorx takes a plain URL (no SQLAlchemy driver suffix) and streams arrow batches
    return {
        "conn": engine.url.set(drivername=engine.url.get_backend_name()).render_as_string(hide_password=False),
        "return_type": "arrow_stream",
        "batch_size": chunk_size,
    }


def _decimal_caster(reflected: list[dict]):
    """connectorx hands every numeric over as decimal128(38, 10): cast to the database's own precision, so
    the warehouse column keeps the source type and DuckDB need not cast every value on load."""
    decimals = {
        c["name"]: pa.decimal128(c["type"].precision, c["type"].scale or 0)
        for c in reflected
        if isinstance(c["type"], sa.Numeric) and not isinstance(c["type"], sa.Float) and c["type"].precision
    }

    def cast(item):
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        if not isinstance(item, pa.Table) or not decimals:
            return item
        for name, target in decimals.items():
            if name in item.column_names and item.schema.field(name).type != target:
                index = item.column_names.index(name)
                item = item.set_column(index, pa.field(name, target), pc.cast(item[name], target))
        return item

    return cast


def _nullable_except(not_null: set[str]) -> Callable[[sa.Table], sa.Table]:
    """A `sql_table` table adapter: the columns of `not_null` (`_not_null_columns`) are NOT NULL in raw, every
    other reflected column nullable, whatever the source declares.

    Why: dlt copies NOT NULL from the source, and a NOT NULL column the source later drops then fails every load
    (pyarrow refuses the missing values, the warehouse its constraint) until a full refresh. Raw keeps a dropped
    column, null from then on, as DuckDB's scanner already does."""

    def adapt(table: sa.Table) -> sa.Table:
        for column in table.columns:
            column.nullable = column.name not in not_null
        return table

    return adapt


class _BadSourceValues:
    """The values of one row that its column's type could not read (SQLite keeps any value in any column:
    `'abc'` in a NUMERIC, `'2026-13-45'` in a DATETIME). Each column's reader records the failure here and
    gives None; the row's INVALID column, read last, hands the reasons over, so the row goes to the dead letters
    instead of failing every table of the run with a message naming none."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.reasons: list[str] = []

    def checked(self, column: sa.ColumnElement) -> sa.ColumnElement:
        bad = self

        class Checked(sa.types.TypeDecorator):
            impl = sa.types.NullType
            cache_ok = False

            def load_dialect_impl(self, dialect):
                return dialect.type_descriptor(column.type)

            def result_processor(self, dialect, coltype):
                read = dialect.type_descriptor(column.type).result_processor(dialect, coltype)
                if read is None and not _range_checked(column.type):
                    return None

                def process(value):
                    try:
                        result = read(value) if read is not None else value
                        _check_fits(result, column.type)
                        return result
                    except (ValueError, TypeError, ArithmeticError) as error:
                        bad.reasons.append(
                            f"{bad.table}.{column.name}: {value!r} is not a valid {column.type} ({error}): a bad "
                            "value in the source"
                        )
                        return None

                return process

        return sa.type_coerce(column, Checked()).label(column.name)

    def invalid(self) -> sa.ColumnElement:
        bad = self

        class Reasons(sa.types.TypeDecorator):
            impl = sa.types.String
            cache_ok = False

            def process_result_value(self, value, dialect):
                reasons, bad.reasons = bad.reasons, []
                return "; ".join(reasons) or None

        return sa.type_coerce(sa.null(), Reasons()).label(INVALID)


def _range_checked(column_type: sa.types.TypeEngine) -> bool:
    """Types whose values `_check_fits` checks: SQLite reads them with no converter of SQLAlchemy's, so text or a
    fraction in an INTEGER column, or too many digits for a NUMERIC, reached pyarrow, which failed the whole
    source naming no column (or cut 3.7 to 3)."""
    return isinstance(column_type, sa.Integer) or (
        isinstance(column_type, sa.Numeric) and getattr(column_type, "precision", None) is not None
    )


def _check_fits(value: object, column_type: sa.types.TypeEngine) -> None:
    """ValueError when `value` is not one `column_type` holds: an INTEGER that is not a whole number, a NUMERIC
    with more digits before the point than its precision less its scale allows."""
    if value is None:
        return
    if isinstance(column_type, sa.Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not a whole number")
    elif isinstance(column_type, sa.Numeric) and column_type.precision is not None:
        whole_digits = column_type.precision - (column_type.scale or 0)
        if abs(Decimal(str(value))) >= Decimal(10) ** whole_digits:
            raise ValueError(f"more than {whole_digits} digits before the point")


def _checking_values(table: str):
    """A `sql_table` query adapter: each column read through `_BadSourceValues`, which routes a row holding a
    value its column's type cannot read to the dead letters. The row's INVALID column comes last: SQLAlchemy reads
    a row's values in order, so it sees what the others recorded."""

    def adapt(query, table_object, incremental=None, engine=None):
        bad = _BadSourceValues(table)
        return query.with_only_columns(*(bad.checked(c) for c in query.selected_columns), bad.invalid())

    return adapt


class _QuarantineInvalid:
    """A yield-map step over arrow batches and single rows (the sqlalchemy backend's): rows the reader marked
    invalid (a value that does not fit its column: the INVALID column), rows with text that is not UTF-8 or (loading
    PostgreSQL) a date it cannot take, rows with a null key or cursor, or a cursor more than `future_tolerance` (the
    lag, at most a day) after the run's start, go to the dead-letter table. Such a cursor would move the table's
    incremental cursor past every change until then; held back, the row is read again by each run and loads once
    its time has come (its dead letter is replaced, not repeated).

    It also stops the run, before anything is written, when a batch brings an integer column wider than raw holds
    it (`narrower`): dlt's frozen types compare integer widths only one way, and a 64-bit value loaded into a
    32-bit column failed the load midway, naming no table."""

    def __init__(
        self,
        table: str,
        required: list[str],
        cursor: str,
        where: str,
        extracted_at: datetime,
        tally: Tally,
        *,
        not_null: set[str] | None = None,
        narrower: Mapping[str, int] | None = None,
        source_now: datetime | None = None,
        future_tolerance: timedelta = FUTURE_TOLERANCE,
        postgres_warehouse: bool = False,
    ) -> None:
        self.table, self.required, self.cursor, self.where = table, required, cursor, where
        self.extracted_at, self.tally = extracted_at, tally
        self.future_tolerance = future_tolerance
        self.latest = (source_now or extracted_at) + future_tolerance
        self.postgres_warehouse = postgres_warehouse
        self.not_null = set(required) if not_null is None else not_null
        self.narrower = narrower or {}

    def __call__(self, item: Any) -> Iterator:
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        if isinstance(item, dict):  # a row of the sqlalchemy backend (dlt maps the rows of a list one by one)
            yield from self._row(item)
        elif isinstance(item, pa.Table):
            yield from self._batch(item)
        else:
            yield item

    def _row(self, row: dict) -> Iterator:
        if (
            row.get(INVALID)
            or any(row.get(c) is None for c in self.required)
            or (self.cursor and self._in_future(row.get(self.cursor)))
        ):
            yield from self._quarantined([row])
        else:
            row.pop(INVALID, None)
            yield row

    def _batch(self, item: pa.Table) -> Iterator:
        if self.narrower:
            self._check_widths(item)
        item = _marking_invalid_text(item, self.table)
        if self.postgres_warehouse:
            item = _marking_what_postgres_cannot_load(item, self.table)
        masks = [pc.is_null(item[column]) for column in self.required]
        if INVALID in item.column_names:
            masks.append(pc.is_valid(item[INVALID]))
            _forget_the_invalid_column()
        if self.cursor and (ahead := self._future_mask(item)) is not None:
            masks.append(ahead)
        mask = None
        for each in masks:
            mask = each if mask is None else pc.or_(mask, each)
        if mask is None or not pc.any(mask).as_py():
            yield _nullability(item, self.not_null)
            return
        yield from self._quarantined(_python_rows(item.filter(mask)))
        valid = item.filter(pc.invert(mask))
        if valid.num_rows:
            yield _nullability(valid, self.not_null)

    def _reason(self, row: dict) -> str:
        if row.get(INVALID):
            return row[INVALID]
        missing = next((c for c in self.required if row.get(c) is None), None)
        if missing is not None:
            return f"{self.table}.{missing}: required field is missing or null"
        return (
            f"{self.table}.{self.cursor}: {row[self.cursor]} is more than {shown_tolerance(self.future_tolerance)} "
            "after the run started, on the source's clock (the incremental cursor would skip every change until then)"
        )

    def _quarantined(self, rows: list[dict]) -> Iterator:
        for row in rows:
            self.tally.quarantined[self.table] += 1
            key = ", ".join(f"{c}={row.get(c)!r}" for c in self.required)
            why = self._reason(row)
            row.pop(INVALID, None)
            yield dead_letter(
                self.table,
                f"{self.where} table {self.table} row ({key})",
                why,
                row,
                source="shop",
                extracted_at=self.extracted_at,
            )

    def _in_future(self, value: object) -> bool:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)) > self.latest
        return isinstance(value, date) and value > self.latest.date()

    def _future_mask(self, item: pa.Table) -> pa.ChunkedArray | None:
        """Where the batch's cursor is later than allowed; None for a cursor that is no date or time."""
        kind = item.schema.field(self.cursor).type
        if pa.types.is_timestamp(kind):
            bound = self.latest if kind.tz else self.latest.astimezone(UTC).replace(tzinfo=None)
        elif pa.types.is_date(kind):
            bound = self.latest.date()
        else:
            return None
        return pc.fill_null(pc.greater(item[self.cursor], pa.scalar(bound, type=kind)), False)

    def _check_widths(self, item: pa.Table) -> None:
        for field in item.schema:
            column = COLUMN_NAMING.normalize_identifier(field.name)  # raw's name for it (`Qty` loads as `qty`)
            bits, kind = self.narrower.get(column), field.type
            if bits and pa.types.is_integer(kind) and kind.bit_width > bits:
                raise DataValidationError(
                    "shop",
                    self.table,
                    column,
                    "data_type",
                    "freeze",
                    None,
                    SCHEMA_CONTRACT,
                    None,
                    f"Can't evolve column type of `{column}` in table `{self.table}` because `data_types` are "
                    f"frozen: raw holds a {bits}-bit integer, the source now sends {kind.bit_width}-bit ones "
                    f"({kind}). Nothing was loaded; `harbor ingest shop --full-refresh` reloads the table with the "
                    "new type",
                )


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _marking_invalid_text(item: pa.Table, table: str) -> pa.Table:
    """Rows holding text that is not UTF-8 marked INVALID, the bytes shown escaped (`\\xff`). A PostgreSQL database
    in SQL_ASCII keeps any bytes, and DuckDB's scanner passes them on: the load failed on them, naming a parquet
    file, and the package stayed pending, so every later run of the source failed until a full refresh. Arrow's
    own check, in C++, finds nothing in the usual batch; only a batch with such text is read in Python."""
    broken = []
    for index, field in enumerate(item.schema):
        if _is_text(field.type):
            try:
                item.column(index).validate(full=True)
            except pa.ArrowInvalid:
                broken.append(index)
    if not broken:
        return item
    reasons: list[str | None] = item[INVALID].to_pylist() if INVALID in item.column_names else [None] * item.num_rows
    for index in broken:
        field = item.schema.field(index)
        shown = []
        for row, value in enumerate(item.column(index).cast(pa.large_binary()).to_pylist()):
            text = None if value is None else value.decode("utf-8", "backslashreplace")
            if value is not None and text.encode("utf-8") != value:
                why = f"{table}.{field.name}: text that is not UTF-8 ({text!r}: the source database's encoding lets any bytes in)"
                reasons[row] = f"{reasons[row]}; {why}" if reasons[row] else why
            shown.append(text)
        item = item.set_column(index, field, pa.array(shown, type=field.type))
    return _with_reasons(item, reasons)


# PostgreSQL holds these, DuckDB too, but a PostgreSQL warehouse's load fails on them (dlt writes them as text
# PostgreSQL does not read back), and the package stayed pending: every later run of the source failed.
_POSTGRES_UNLOADABLE = "infinity, -infinity or a year before 1, which a PostgreSQL warehouse's load cannot take"


def _marking_what_postgres_cannot_load(item: pa.Table, table: str) -> pa.Table:
    """Rows holding a date or timestamp that is infinite or before year 1 marked INVALID (loading PostgreSQL)."""
    reasons = [pc.cast(item[INVALID], pa.string())] if INVALID in item.column_names else []
    found = False
    for index, field in enumerate(item.schema):
        if pa.types.is_date32(field.type):
            first = pa.scalar(date(1, 1, 1), type=field.type)
            ints, largest = pc.cast(item.column(index), pa.int32()), 2**31 - 1
        elif pa.types.is_timestamp(field.type) and field.type.unit != "ns":  # nanoseconds reach neither
            first = pa.scalar(datetime(1, 1, 1, tzinfo=UTC if field.type.tz else None), type=field.type)
            ints, largest = pc.cast(item.column(index), pa.int64()), 2**63 - 1
        else:
            continue
        outside = pc.or_(pc.less(item.column(index), first), pc.greater_equal(ints, largest))
        if pc.any(outside).as_py():
            found = True
            why = pa.scalar(f"{table}.{field.name}: {_POSTGRES_UNLOADABLE}")
            reasons.append(pc.if_else(outside, why, pa.scalar(None, pa.string())))
    if not found:
        return item
    # The first reason of a row: pyarrow 26's binary_join_element_wise drops the rows whose values are all null.
    return _with_reasons(item, pc.coalesce(*reasons))


def _with_reasons(item: pa.Table, reasons: list[str | None] | pa.ChunkedArray) -> pa.Table:
    column = reasons if isinstance(reasons, pa.ChunkedArray) else pa.array(reasons, type=pa.string())
    if INVALID in item.column_names:
        return item.set_column(item.column_names.index(INVALID), INVALID, column)
    return item.append_column(INVALID, column)


def _python_rows(item: pa.Table) -> list[dict]:
    """The rows as Python values for the dead letters. A date or time Python cannot hold (PostgreSQL's `infinity`,
    read by DuckDB's scanner as the largest timestamp) failed the conversion, and with it the whole source at every
    run: such columns are then written as text."""
    try:
        return item.to_pylist()
    except (ValueError, OverflowError, pa.ArrowException):
        temporal = [
            i for i, field in enumerate(item.schema) if pa.types.is_temporal(field.type) or pa.types.is_date(field.type)
        ]
        for i in temporal:
            item = item.set_column(i, item.schema.field(i).name, _as_text(item.column(i)))
        return item.to_pylist()


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A temporal column as text, `infinity` for the largest value and `-infinity` for the smallest (DuckDB's
    scanner reads PostgreSQL's infinities so); other values in ISO form."""
    as_int = pc.cast(column, pa.int64()) if not pa.types.is_date(column.type) else pc.cast(column, pa.int32())
    largest, smallest = (2**63 - 1, -(2**63 - 1)) if as_int.type == pa.int64() else (2**31 - 1, -(2**31 - 1))
    text = pc.cast(column, pa.string(), safe=False)
    return pc.if_else(
        pc.greater_equal(as_int, largest),
        "infinity",
        pc.if_else(pc.less_equal(as_int, smallest), "-infinity", text),
    )


def _forget_the_invalid_column() -> None:
    """dlt's pyarrow reader adds each column of a batch its hints lack to the resource's column hints, in place:
    the INVALID column would become a column of the raw table without a type (a warning at every load)."""
    try:
        columns = dlt.current.resource().columns
    except DltException:
        return
    if isinstance(columns, dict):
        columns.pop(INVALID, None)


def _nullability(item: pa.Table, not_null: set[str]) -> pa.Table:
    """The batch without the INVALID column, its fields NOT NULL exactly where raw has (or, new, will have) the
    column NOT NULL (`_not_null_columns`): dlt compares nullability with raw's under its frozen types (a difference
    stops the load), and warns about a field differing from the primary-key hint on every batch."""
    if INVALID in item.column_names:
        item = item.drop_columns([INVALID])
    schema = item.schema
    for index, field in enumerate(schema):
        wanted = field.name not in not_null
        if field.nullable != wanted:
            schema = schema.set(index, field.with_nullable(wanted))
    return item if schema is item.schema else item.cast(schema)


# Refusals that waiting does not change: a wrong setting, not an outage.
WRONG_SETTING_SIGNS = (
    "does not exist",  # database or role
    "authentication failed",
    "no password supplied",
    "pg_hba.conf",
    "unable to open database file",  # SQLite: no such folder
)


def wait_for_database(engine: sa.Engine, where: str, policy: RetryPolicy | None = None) -> None:
    """Connect, retrying with jittered exponential backoff (dlt's [runtime] request_* settings) while the
    database is unreachable; the last OperationalError propagates when the attempts run out. A refusal that
    names a wrong setting (no such database or role, bad password) is a SourceConfigError at once."""
    policy = policy or RetryPolicy.from_dlt_config()
    rng = random.Random()
    for attempt in range(1, policy.max_attempts + 1):
        try:
            with engine.connect():
                return
        except sa.exc.OperationalError as error:
            lines = (str(error.orig) if error.orig else str(error)).strip().splitlines()
            # libpq tries each address of a host name in turn and says so a line each: the refusal may be any line.
            refusal = next((line for line in lines if any(sign in line for sign in WRONG_SETTING_SIGNS)), None)
            if refusal is not None:
                raise SourceConfigError(
                    f"shop: cannot connect to {where}: {refusal.strip()} "
                    "(sources.shop.credentials, SOURCES__SHOP__CREDENTIALS)"
                ) from None
            reason = lines[0] if lines else type(error).__name__
            if attempt == policy.max_attempts:
                raise
            wait = policy.delay(attempt, None, rng)
            log.warning(
                "shop database %s unreachable, retrying in %.2fs (attempt %d of %d): %s",
                where,
                wait,
                attempt + 1,
                policy.max_attempts,
                reason,
            )
            time.sleep(wait)
