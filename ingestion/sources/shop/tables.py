"""The tables to load and how: their columns reflected from the database (names raw could not keep apart, and a
cursor column no table has, refused), and a plan per table settled before any row is read: primary key, cursor, lag
(`incremental_lag`), write disposition, and the columns loaded NOT NULL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import dlt
import sqlalchemy as sa

from ingestion.settings import non_negative_number
from ingestion.sources.metadata import EXTRACTED_AT, SOURCE
from ingestion.sources.quarantine import COLUMN_NAMING, FUTURE_TOLERANCE, future_tolerance
from ingestion.sources.shop.config import ALL_TABLES, DEFAULT_CURSOR, SourceConfigError
from ingestion.sources.shop.drift import _former_keys, _not_null_columns


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
