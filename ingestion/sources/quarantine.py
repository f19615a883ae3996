"""Record validation and the dead-letter queue shared by every source.

Each resource declares what a valid record is (`RecordSpec`: required fields, types, allowed values). A record
that fails is not dropped: it is routed, in the same load package as the good rows, to the `_dead_letters`
table of the source's dataset with its raw payload, the reason, where it came from and `_extracted_at`.
Being in the same package makes the quarantine exactly-once too: a package loads whole or is replayed whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.time import ensure_pendulum_datetime, parse_iso_like_datetime

from ingestion.sources.metadata import EXTRACTED_AT, SOURCE

DEAD_LETTERS = "_dead_letters"
# dlt's default naming of columns (Harbor's schemas keep it): what a record's field is called in the warehouse.
COLUMN_NAMING = NamingConvention()

DEAD_LETTER_COLUMNS = {
    "dead_letter_id": {"data_type": "text", "nullable": False},
    "table_name": {"data_type": "text", "nullable": False},
    "origin": {"data_type": "text", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "payload": {"data_type": "text", "nullable": True},
    EXTRACTED_AT: {"data_type": "timestamp", "nullable": False},
    SOURCE: {"data_type": "text", "nullable": False},
}


class InvalidRecord(ValueError):
    """Why one record cannot be loaded."""


# What the warehouse can hold: a value outside these would pass validation and then fail the whole load (and every
# retry of it) instead of landing in the dead-letter table.
BIGINT_RANGE = (-(2**63), 2**63 - 1)
# dlt's default decimal, DECIMAL(38, 9): 29 digits before the point. More decimals than 9 are rounded, as dlt does.
DECIMAL_INTEGER_DIGITS = 29
# A number sent as text: ASCII digits only. Python's Decimal also reads `1_091` (as 1091) and other scripts'
# digits (Arabic-Indic seven as 7), which no source means as a rate.
NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)
# How deep a record's values may nest: dlt writes rows with orjson, which refuses more than about 254 levels and
# failed the whole source.
MAX_NESTING = 200


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRecord(f"expected text, got {type(value).__name__}")
    return value


def _bigint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecord(f"expected an integer, got {type(value).__name__} {value!r}")
    if not BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1]:
        raise InvalidRecord(f"integer {value} is outside the 64-bit range")
    return value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        # RFC 3339 allows a lower-case `t` and `z`, which Python's parser refuses
        text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
        if text[10:11] == "t":
            text = text[:10] + "T" + text[11:]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as error:
            raise InvalidRecord(f"expected an ISO timestamp, got {value!r}") from error
    else:
        raise InvalidRecord(f"expected an ISO timestamp, got {type(value).__name__}")
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError as error:  # 9999-12-31T23:00-05:00 is past the last moment Python can hold in UTC
        raise InvalidRecord(f"timestamp {value!r} is outside the range a warehouse can hold") from error


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as error:
        raise InvalidRecord(f"expected an ISO date, got {value!r}") from error


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InvalidRecord(f"expected a number, got {type(value).__name__}")
    if isinstance(value, str) and not NUMBER_TEXT.fullmatch(value):
        raise InvalidRecord(f"expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as error:
        raise InvalidRecord(f"expected a number, got {value!r}") from error
    if not number.is_finite():
        raise InvalidRecord(f"expected a finite number, got {value!r}")
    if number != 0 and number.adjusted() >= DECIMAL_INTEGER_DIGITS:
        raise InvalidRecord(f"{value!r} has more than {DECIMAL_INTEGER_DIGITS} digits before the point")
    return number


def _as_sent(value: Any) -> Any:
    """A dead letter's payload shows NaN and Infinity bare, as the source sent them (not as the string "NaN")."""
    return float(value.constant) if isinstance(value, NotJson) else str(value)


class NotJson:
    """What a JSON parser is told to make of NaN, Infinity and -Infinity (`parse_constant`): JSON has no such
    values. Read as floats they loaded as no column at all (a new field) or failed a whole API page (requests'
    simplejson refuses them); as this marker, validation quarantines the record naming the field."""

    def __init__(self, constant: str) -> None:
        self.constant = constant

    def __str__(self) -> str:
        return self.constant


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in `text`, escaped (`\\ud800`): JSON may spell one (`"\\ud800"`), but it is not
    UTF-8, so no warehouse column and no load file can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start].encode("unicode_escape").decode("ascii")
    return None


def _timestamp_out_of_range(text: str) -> bool:
    """Text dlt would read as a timestamp (it types a new column by its first value) that no UTC timestamp holds
    (`9999-12-31T23:00:00-05:00`): dlt's normalize failed on it, and the package with it failed every later run.
    Only years 1 and 9999 can leave the range in UTC, so only they are parsed."""
    if text[:4] not in ("0001", "9999"):
        return False
    try:
        parsed = parse_iso_like_datetime(text)
    except Exception:  # whatever dlt's parser refuses, its detection does not read as a timestamp either
        return False
    if not isinstance(parsed, datetime):
        return False
    try:
        ensure_pendulum_datetime(parsed)
    except (OverflowError, ValueError):
        return True
    return False


def _unloadable(record: dict, table: str) -> str | None:
    """Why `record` (nested values too) cannot load as it is, naming the field: NaN or Infinity (as NotJson, or a
    number too large for a float, which JSON parsers read as infinity and warehouses then held as null), a NUL
    character (warehouses strip it: `/a\\u0000b` loaded as `/ab`), a lone surrogate (not UTF-8: it failed the
    whole source), an integer no 64-bit column holds, or values nested more than MAX_NESTING deep. None when it
    can.
    A loop, not recursion: JSON nested as deep as the parser allows must not stop the source."""
    stack: list[tuple[str, int, Any]] = [(table, 0, record)]
    while stack:
        path, depth, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return f"{path}: text holds a NUL character (\\u0000), which a warehouse column cannot keep"
            if surrogate := _lone_surrogate(value):
                return f"{path}: text holds a lone surrogate ({surrogate}), which is not UTF-8"
        elif isinstance(value, NotJson):
            return f"{path}: {value.constant} is not a JSON value (JSON has no NaN or Infinity)"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{path}: a number too large for a float (read as {value}), which a warehouse column cannot keep"
        elif isinstance(value, int) and not isinstance(value, bool):
            if not BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1]:
                return f"{path}: integer {value} is outside the 64-bit range"
        elif isinstance(value, dict | list) and depth >= MAX_NESTING:
            return f"{path}: values nested more than {MAX_NESTING} levels deep, which dlt cannot write"
        elif isinstance(value, dict):
            for key, child in value.items():
                if "\x00" in str(key):
                    return f"{path}: field name {key!r} holds a NUL character (\\u0000)"
                if surrogate := _lone_surrogate(str(key)):
                    return f"{path}: a field name holds a lone surrogate ({surrogate}), which is not UTF-8"
                stack.append((f"{path}.{key}", depth + 1, child))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", depth + 1, child) for index, child in enumerate(value))
    return None


PARSERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "bigint": _bigint,
    "timestamp": _timestamp,
    "date": _date,
    "decimal": _decimal,
}


@dataclass(frozen=True)
class Field:
    data_type: str  # one of PARSERS
    required: bool = True  # present and not null
    allowed: tuple | None = None


# How far past the run's start a cursor value may be at most. Further is a malformed value, not clock skew: kept,
# the incremental cursor would jump to it and skip every real change until that moment.
FUTURE_TOLERANCE = timedelta(days=1)


def future_tolerance(lag: timedelta) -> timedelta:
    """How far past the run's start a cursor may be in a table read again from `cursor - lag`: no more than the
    lag, or the next run starts after now and skips the changes made in between (a row stamped 5 hours ahead
    under a 1-hour lag lost every change of the next 4 hours); and no more than FUTURE_TOLERANCE."""
    return min(FUTURE_TOLERANCE, lag)


def shown_tolerance(tolerance: timedelta) -> str:
    if tolerance == FUTURE_TOLERANCE:
        return "1 day"
    return f"{tolerance.total_seconds():g} s (the lag, lag_seconds)"


@dataclass(frozen=True)
class RecordSpec:
    """What a valid record of one table is. Fields not named here pass through (new columns are welcome), unless
    they hold a value no warehouse column can (`_unloadable`). `cursor` names the incremental cursor field, if
    any: a record whose cursor is more than `future_tolerance` after the run's start is quarantined, and of two
    versions of a record in one load the one with the later cursor wins."""

    table: str
    fields: Mapping[str, Field]
    cursor: str | None = None
    future_tolerance: timedelta = FUTURE_TOLERANCE

    def validate(self, record: Any) -> dict:
        """The record with declared fields parsed to their types; raises InvalidRecord naming the field."""
        if not isinstance(record, dict):
            raise InvalidRecord(f"expected a JSON object, got {type(record).__name__}")
        if problem := _unloadable(record, self.table):
            raise InvalidRecord(problem)
        record = self._as_columns(record)
        for name, value in record.items():
            # A field the spec does not type is typed by dlt; nested values load as JSON (max_table_nesting=0).
            if name not in self.fields and isinstance(value, str) and _timestamp_out_of_range(value):
                raise InvalidRecord(
                    f"{self.table}.{name}: timestamp {value!r} is outside the range a warehouse can hold"
                )
        clean = dict(record)
        for name, spec in self.fields.items():
            value = record.get(name)
            if value is None:
                if spec.required:
                    raise InvalidRecord(f"{self.table}.{name}: required field is missing or null")
                clean[name] = None
                continue
            try:
                clean[name] = PARSERS[spec.data_type](value)
            except InvalidRecord as error:
                raise InvalidRecord(f"{self.table}.{name}: {error}") from None
            if spec.allowed is not None and clean[name] not in spec.allowed:
                raise InvalidRecord(f"{self.table}.{name}: {value!r} is not one of {', '.join(spec.allowed)}")
        return clean

    def _as_columns(self, record: dict) -> dict:
        """The record with its fields named as the columns they load into (dlt's snake_case naming), so what is
        validated is what loads: left to dlt, `eventId` would become `event_id` after validation and replace the
        checked value. Two fields that would load into one column make the record invalid."""
        named: dict[str, Any] = {}
        first_field: dict[str, str] = {}
        for name, value in record.items():
            if not str(name).strip():  # dlt names no column after it: a bare ValueError failed the source
                raise InvalidRecord(f"{self.table}: field name {name!r} is empty or blank, which no column can be")
            column = COLUMN_NAMING.normalize_identifier(str(name))
            if column in named:
                raise InvalidRecord(
                    f"{self.table}: fields {first_field[column]!r} and {name!r} would both load into column {column!r}"
                )
            named[column] = value
            first_field[column] = name
        return named

    def columns(self) -> dict[str, dict]:
        """dlt column hints, so the raw table has the declared types even before the first row; the cursor's
        `dedup_sort` makes dlt's merge keep the latest of two versions of a key within one load."""
        columns: dict[str, dict] = {
            name: {"data_type": f.data_type, "nullable": not f.required} for name, f in self.fields.items()
        }
        if self.cursor:
            columns[self.cursor]["dedup_sort"] = "desc"
        return columns

    def check_cursor(self, clean: dict, extracted_at: datetime) -> None:
        """InvalidRecord when the record's cursor is further in the future than `future_tolerance`."""
        value = clean.get(self.cursor) if self.cursor else None
        if isinstance(value, datetime) and value > extracted_at + self.future_tolerance:
            raise InvalidRecord(
                f"{self.table}.{self.cursor}: {value.isoformat()} is more than {shown_tolerance(self.future_tolerance)} "
                "after the run started (the incremental cursor would skip every change until then)"
            )


@dataclass
class Tally:
    """Rows seen and quarantined per table during one run (loaded comes from dlt's normalize counts)."""

    extracted: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)


def dead_letter(
    table: str,
    origin: str,
    reason: str,
    payload: Any,
    *,
    source: str,
    extracted_at: datetime,
    stable_origin: bool = True,
) -> dlt.extract.items.DataItemWithMeta:
    """A dead-letter row routed to the `_dead_letters` table, whatever resource yields it.

    Its key is the payload plus, when the origin is stable (a file and line), the origin: a replayed
    package or a record the source sends again replaces its dead letter instead of adding another.
    """
    text = payload if isinstance(payload, str) else json.dumps(payload, default=_as_sent, sort_keys=True)
    identity = f"{source}\x00{table}\x00{origin if stable_origin else ''}\x00{text}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    row = {
        "dead_letter_id": key,
        "table_name": table,
        "origin": origin,
        "reason": reason,
        "payload": text,
        EXTRACTED_AT: extracted_at,
        SOURCE: source,
    }
    return dlt.mark.with_hints(
        row,
        dlt.mark.make_hints(
            table_name=DEAD_LETTERS,
            write_disposition="merge",
            primary_key="dead_letter_id",
            columns=DEAD_LETTER_COLUMNS,
        ),
        create_table_variant=True,
    )


def own_dead_letter_columns(resource: Any) -> None:
    """Give `resource` a dead-letter table variant with columns of its own. A variant starts from the resource's
    hints: a SQL table's reflected columns (its primary key NOT NULL) became columns of `_dead_letters`, whose rows
    hold none of them, so the first quarantined row failed the whole load, and every retry of it."""
    resource.apply_hints(table_name=DEAD_LETTERS, columns={}, create_table_variant=True)


def validating_map(
    spec: RecordSpec,
    *,
    source: str,
    extracted_at: datetime,
    tally: Tally,
    origin: Callable[[], str] | None = None,
    on_valid: Callable[[dict], None] | None = None,
) -> Callable[[Any], Iterator[Any]]:
    """A dlt yield-map step: valid records go on (with metadata), invalid ones to the dead-letter table.

    `origin()` says where the current record came from (a page); the record's position there is appended.
    `on_valid(record)` sees each valid record, parsed (the fx source keeps its cursor with it).
    Extracted rows are not counted here: a later step (the incremental cursor) may still drop records a
    source serves again, so extracted is loaded + quarantined.
    """
    positions: Counter = Counter()

    def step(item: Any) -> Iterator[Any]:
        records = item if isinstance(item, list) else [item]
        valid = []
        for record in records:
            where = origin() if origin else "batch"
            positions[where] += 1
            try:
                clean = spec.validate(record)
                spec.check_cursor(clean, extracted_at)
            except InvalidRecord as error:
                tally.quarantined[spec.table] += 1
                yield dead_letter(
                    spec.table,
                    f"{where} record {positions[where]}",
                    str(error),
                    record,
                    source=source,
                    extracted_at=extracted_at,
                    stable_origin=False,
                )
                continue
            if on_valid is not None:
                on_valid(clean)
            clean[EXTRACTED_AT] = extracted_at
            clean[SOURCE] = source
            valid.append(clean)
        if valid:
            yield with_columns(spec.table, valid, spec.columns())

    return step


def with_columns(table: str, rows: list[dict], columns: dict[str, dict]) -> Any:
    """Rows with column hints for their table. The hints ride on a table variant, not on the resource,
    because the dead-letter variant of the same resource would inherit the resource's columns."""
    metadata = {
        EXTRACTED_AT: {"data_type": "timestamp", "nullable": False},
        SOURCE: {"data_type": "text", "nullable": False},
    }
    return dlt.mark.with_hints(
        rows, dlt.mark.make_hints(table_name=table, columns={**columns, **metadata}), create_table_variant=True
    )
