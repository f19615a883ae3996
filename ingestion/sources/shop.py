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

Schema drift: a new source column simply appears in raw; a dropped one stays there, null from then on (raw
columns are nullable but for the key and the cursor). A changed column type stops the load (dlt schema
contract `data_type: freeze`) with an error naming the table and column, before anything is written.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from dlt.common.exceptions import DltException
from dlt.sources import DltResource
from dlt.sources.sql_database import sql_table

from ingestion.demo.shop import SHOP_TABLES, engine_for
from ingestion.settings import ConfigError, non_negative_number
from ingestion.sources.http import RetryPolicy
from ingestion.sources.metadata import metadata_adder
from ingestion.sources.postgres_scan import ScannerSession, scanner_table
from ingestion.sources.quarantine import FUTURE_TOLERANCE, Tally, dead_letter, own_dead_letter_columns

log = logging.getLogger("harbor.ingestion.shop")

DEFAULT_CURSOR = "updated_at"
DEFAULT_LAG_SECONDS = 3600
ALL_TABLES = "*"
BACKENDS = ("auto", "duckdb", "connectorx", "pyarrow", "sqlalchemy")


class SourceConfigError(ConfigError):
    """The source's configuration does not match the database it points at."""


@dlt.source(name="shop", max_table_nesting=0)
def shop_source(
    credentials: str = dlt.secrets.value,
    schema: str | None = None,
    table_names: Sequence[str] = SHOP_TABLES,
    cursor_column: str = DEFAULT_CURSOR,
    lag_seconds: int = DEFAULT_LAG_SECONDS,
    table_options: Mapping[str, Mapping] | None = None,
    backend: str = "auto",
    chunk_size: int = 50_000,
    extracted_at: datetime | None = None,
    tally: Tally | None = None,
) -> Iterable[DltResource]:
    """One resource per table: merge + incremental with lag when it has a cursor, replace otherwise.

    A valid row has its primary key and cursor set; a row without them (possible where the database does
    not enforce them) goes to `_dead_letters` instead of failing the whole table.
    """
    engine = engine_for(str(credentials))
    if backend not in BACKENDS:
        raise SourceConfigError(f"shop: backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        # DuckDB's scanner reads PostgreSQL into Arrow with no per-row Python work: at 10M order items 11.7 s
        # against connectorx's 17.4 s, in less memory (README, "Performance"). SQLite and other databases keep
        # pyarrow, which works through any SQLAlchemy dialect.
        backend = "duckdb" if engine.dialect.name == "postgresql" else "pyarrow"
    if backend == "duckdb" and engine.dialect.name != "postgresql":
        raise SourceConfigError(f"shop: backend 'duckdb' reads PostgreSQL only, not {engine.dialect.name}")
    where = engine.url.render_as_string(hide_password=True) + (f" schema {schema}" if schema else "")
    wait_for_database(engine, where)
    inspector = sa.inspect(engine)
    stamp = extracted_at or datetime.now(UTC)
    add_metadata = metadata_adder("shop", stamp)
    tally = tally if tally is not None else Tally()
    options = {name: dict(value) for name, value in (table_options or {}).items()}
    if isinstance(table_names, str):
        table_names = [table_names]
    if list(table_names) == [ALL_TABLES]:
        table_names = sorted(inspector.get_table_names(schema=schema))
    unknown = sorted(set(options) - set(table_names))
    if unknown:
        raise SourceConfigError(f"shop: table_options for {', '.join(unknown)}, which are not among the loaded tables")
    loaded_before = _tables_with_a_cursor()
    scanner = ScannerSession(engine.url) if backend == "duckdb" else None
    for table in table_names:
        if not inspector.has_table(table, schema=schema):
            raise SourceConfigError(f"shop: table {table!r} not found in {where}")
        table_option = options.get(table, {})
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
        reflected = inspector.get_columns(table, schema=schema)
        columns = {c["name"] for c in reflected}
        missing = sorted(set(primary_key) - columns)
        if missing:
            raise SourceConfigError(f"shop: table {table!r} has no column(s) {', '.join(missing)} (primary key)")
        cursor = table_option.get("cursor_column", cursor_column if cursor_column in columns else "")
        if cursor and cursor not in columns:
            raise SourceConfigError(f"shop: table {table!r} has no cursor column {cursor!r}")
        # Whole seconds, rounded down.
        lag = int(
            non_negative_number(table_option.get("lag_seconds", lag_seconds), f"shop: lag_seconds of table {table!r}")
        )
        required = [*primary_key, *([cursor] if cursor else [])]
        # rows without a cursor are quarantined by the step below rather than failing the table
        incremental = dlt.sources.incremental(cursor, lag=lag, on_cursor_value_missing="include") if cursor else None
        first_load = loaded_before is not None and table not in loaded_before
        write_disposition = "merge" if cursor and not first_load else "replace"
        if backend == "duckdb":
            resource = scanner_table(
                scanner,
                table,
                schema=schema or inspector.default_schema_name,
                primary_key=primary_key,
                cursor=incremental,
                write_disposition=write_disposition,
                batch_rows=chunk_size,
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
                table_adapter_callback=_nullable_except(required),
                incremental=incremental,
                write_disposition=write_disposition,
                primary_key=primary_key,
            )
        own_dead_letter_columns(resource)
        # New columns evolve freely; a changed type stops the load instead of corrupting raw.
        resource.apply_hints(schema_contract={"tables": "evolve", "columns": "evolve", "data_type": "freeze"})
        if backend == "connectorx":
            resource.add_map(_decimal_caster(reflected))
        # Right after the reader, before the incremental step: a row held back must not move the cursor. Not on
        # the sqlalchemy backend's Python rows: there dlt 1.31's incremental step failed an internal assertion
        # behind it, so that backend quarantines only null keys and cursors, at the end as before.
        python_rows = backend == "sqlalchemy"
        resource.add_yield_map(
            _quarantine_invalid(table, required, "" if python_rows else cursor, where, stamp, tally),
            insert_at=None if python_rows else 1,
        )
        yield resource.add_map(add_metadata)


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


def _nullable_except(required: list[str]) -> Callable[[sa.Table], sa.Table]:
    """A `sql_table` table adapter: every reflected column but the key and cursor becomes nullable in raw.

    Why: dlt copies NOT NULL from the source, and a NOT NULL column the source later drops then fails every load
    (pyarrow refuses the missing values, the warehouse its constraint) until a full refresh. Raw keeps a dropped
    column, null from then on, as DuckDB's scanner already does."""

    def adapt(table: sa.Table) -> sa.Table:
        for column in table.columns:
            if column.name not in required:
                column.nullable = True
        return table

    return adapt


def _quarantine_invalid(table: str, required: list[str], cursor: str, where: str, extracted_at: datetime, tally: Tally):
    """A yield-map step over arrow batches and single rows (the sqlalchemy backend's): rows with a null key or
    cursor, or a cursor more than FUTURE_TOLERANCE after the run's start, go to the dead-letter table. Such a
    cursor would move the table's incremental cursor past every change until then; held back, the row is read
    again by each run and loads once its time has come (its dead letter is replaced, not repeated)."""
    latest = extracted_at + FUTURE_TOLERANCE

    def reason(row: dict) -> str:
        missing = next((c for c in required if row.get(c) is None), None)
        if missing is not None:
            return f"{table}.{missing}: required field is missing or null"
        return (
            f"{table}.{cursor}: {row[cursor]} is more than {FUTURE_TOLERANCE.days} day after the run started "
            "(the incremental cursor would skip every change until then)"
        )

    def quarantined(rows: list[dict]) -> Iterator:
        for row in rows:
            tally.quarantined[table] += 1
            key = ", ".join(f"{c}={row.get(c)!r}" for c in required)
            yield dead_letter(
                table,
                f"{where} table {table} row ({key})",
                reason(row),
                row,
                source="shop",
                extracted_at=extracted_at,
            )

    def in_future(value: object) -> bool:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)) > latest
        return isinstance(value, date) and value > latest.date()

    def future_mask(item: pa.Table):
        """Where the batch's cursor is later than allowed; None for a cursor that is no date or time."""
        kind = item.schema.field(cursor).type
        if pa.types.is_timestamp(kind):
            bound = latest if kind.tz else latest.astimezone(UTC).replace(tzinfo=None)
        elif pa.types.is_date(kind):
            bound = latest.date()
        else:
            return None
        return pc.fill_null(pc.greater(item[cursor], pa.scalar(bound, type=kind)), False)

    def step(item):
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        if isinstance(item, dict):  # a row of the sqlalchemy backend (dlt maps the rows of a list one by one)
            if any(item.get(c) is None for c in required) or (cursor and in_future(item.get(cursor))):
                yield from quarantined([item])
            else:
                yield item
            return
        if not isinstance(item, pa.Table):
            yield item
            return
        masks = [pc.is_null(item[column]) for column in required]
        if cursor and (ahead := future_mask(item)) is not None:
            masks.append(ahead)
        mask = None
        for each in masks:
            mask = each if mask is None else pc.or_(mask, each)
        if mask is None or not pc.any(mask).as_py():
            yield _not_nullable(item, required)
            return
        yield from quarantined(item.filter(mask).to_pylist())
        valid = item.filter(pc.invert(mask))
        if valid.num_rows:
            yield _not_nullable(valid, required)

    return step


def _not_nullable(item: pa.Table, required: list[str]) -> pa.Table:
    """Mark the checked columns not nullable in the Arrow schema, as dlt's primary-key hint says they are:
    otherwise dlt warns about the differing hint on every batch."""
    schema = item.schema
    for column in required:
        index = schema.get_field_index(column)
        if schema.field(index).nullable:
            schema = schema.set(index, schema.field(index).with_nullable(False))
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
