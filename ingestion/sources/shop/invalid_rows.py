"""The step every shop table's rows pass through before the incremental one, `_QuarantineInvalid`: the rows that
cannot load (marked INVALID by their reader, holding text that is not UTF-8 or a date a PostgreSQL warehouse cannot
take, a null key or cursor, a cursor too far ahead of the source's clock) go to the dead letters instead of failing
the table, and a batch of integers wider than raw holds stops the run before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.exceptions import DltException
from dlt.common.schema.exceptions import DataValidationError

from ingestion.sources.postgres_scan import INVALID
from ingestion.sources.quarantine import COLUMN_NAMING, FUTURE_TOLERANCE, Tally, dead_letter, shown_tolerance
from ingestion.sources.shop.drift import SCHEMA_CONTRACT, _nullability


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
