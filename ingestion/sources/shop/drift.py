"""Schema drift: a new source column simply appears in raw, nullable; a dropped one stays there, null from then on
(raw columns are nullable but for the key and the cursor, `_not_null_columns`; a column that stops being either
is made nullable, `_release_former_keys`). A changed column type, a wider integer included, stops the load (dlt
schema contract `data_type: freeze`) with an error naming the table and column, before anything is written.

Here: what raw holds (dlt's schema of the shop, and which tables its state has a cursor for), the columns loaded
NOT NULL (`_not_null_columns`, applied by `_nullable_except` and `_nullability`), the release of former keys, the
warnings about lost and new columns, the refusal of a cursor column that changed time zone, and the integer widths
each batch is checked against (`_narrower_integers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
import sqlalchemy as sa
from dlt.common.exceptions import DltException
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ingestion.sources.postgres_scan import INVALID
from ingestion.sources.quarantine import COLUMN_NAMING
from ingestion.sources.shop.config import SourceConfigError

log = logging.getLogger("harbor.ingestion.shop")

# The contract every shop table is loaded under: new tables and columns evolve, a changed type stops the load.
SCHEMA_CONTRACT = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}


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
            "renamed column loads under its new name); `harbor ingest shop --full-refresh` drops them, once no model reads "
            "them (staging, snapshots, marts)",
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
