"""Reading PostgreSQL tables with DuckDB's own PostgreSQL scanner: the shop source's default backend there.

Why: dlt's `sql_database` backends decode rows in Python (sqlalchemy, pyarrow) or through connectorx; DuckDB's
scanner reads PostgreSQL's binary COPY protocol straight into columns and hands dlt Arrow batches, which is
what brings ingestion close to DuckDB's own copy of the same tables (README "Performance"). dlt still owns
everything else: the incremental cursor and its state, the merge on the primary key, schema contracts and the
load. The scanner comes from the `duckdb-extension-postgres` wheel on PyPI: nothing is downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import dlt
import duckdb
import pyarrow as pa
import sqlalchemy as sa
from dlt.sources import DltResource
from sqlalchemy.dialects.postgresql import DOMAIN, INTERVAL

from ingestion.duckdb_extensions import load_postgres_scanner, sql_string

# A column the scanner (and the shop source's SQLAlchemy readers) add to a batch: why the row cannot load as it is
# (a value no warehouse column of its type holds exactly), null for a good row. The shop source sends the rows
# where it is set to the dead letters and drops the column.
INVALID = "_harbor_invalid"
# The widest decimal DuckDB (and dlt) hold exactly; `numeric` without a precision gets this scale, dlt's default.
MAX_DECIMAL_PRECISION = 38
DEFAULT_DECIMAL_SCALE = 9


class ScannerSession:
    """DuckDB with the scanner loaded and the source database attached, shared by the table readers of one
    source: each reader takes a cursor of its own (a DuckDB connection per thread). Started by the first reader
    and closed by the last, so a source whose tables are never read connects to nothing. Why: starting DuckDB
    and the scanner costs about 0.06 s, and five tables starting at once took 0.33 s at the head of a run."""

    def __init__(self, url: sa.URL, extension_dir: Path | None = None) -> None:
        self._url = url
        self._extension_dir = extension_dir
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._readers = 0

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._start()
            self._readers += 1
            cursor = self._conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            with self._lock:
                self._readers -= 1
                if self._readers == 0 and self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def _start(self) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect()
        try:
            load_postgres_scanner(conn, self._extension_dir)
            attach_postgres(conn, self._url, "source_db")
        except BaseException:
            conn.close()
            raise
        return conn


def scanner_table(
    session: ScannerSession,
    table: str,
    *,
    schema: str,
    primary_key: list[str],
    cursor: dlt.sources.incremental[Any] | None,
    write_disposition: str,
    batch_rows: int,
    columns: list[dict] | None = None,
) -> DltResource:
    """A dlt resource yielding `schema.table` as Arrow tables of `batch_rows` rows, read through `session`.

    With a cursor, only rows at or after dlt's start value (already moved back by the lag) are read, and the
    filter runs inside PostgreSQL so unchanged rows never cross the wire; rows whose cursor is null are read
    too, for the shop source to quarantine. Tables are read in parallel: DuckDB releases the GIL while it scans.
    `columns` (SQLAlchemy's reflection of the table) says which columns need a cast to stay exact (`select_list`).
    """
    reader = _read_changed if cursor is not None else _read_all
    resource = dlt.resource(reader, name=table, write_disposition=write_disposition, primary_key=primary_key)
    arguments: dict[str, Any] = {"select": select_list(table, columns or [])}
    if cursor is not None:
        arguments["cursor"] = cursor
    # Parallelized once bound: dlt's `parallelized=True` wraps the unbound function, and binding the arguments
    # replaces that wrapper, so every table would be read on the main thread one after another.
    return resource(session, schema, table, batch_rows, **arguments).parallelize()


def select_list(table: str, columns: list[dict]) -> str:
    """What to select from `table`: `*` unless a column would not stay exact through the scanner, which reads
    `numeric` without a precision, or wider than 38 digits, as DOUBLE (12345678901234567.89 came back as
    ...567.68), `time with time zone` as a time without its offset, and `interval` into a type dlt's writer
    refuses (the table stopped). Then every column by name, such a numeric cast in PostgreSQL to DECIMAL(38, its
    scale or 9) when it fits exactly, else null with the reason in INVALID (the row goes to the dead letters); a
    timetz or an interval as its text ('09:30:00+02', '1 day 02:00:00'), and an array of any of them as an array
    of their texts. A column raw holds as DOUBLE or TIME (a `double precision` or `time` column changed to one of
    these, or a raw table loaded before the casts) is cast all the same: read as before, its new values lost
    digits and offsets without a word; the new type stops the load under the frozen contract, naming table and
    column (`harbor ingest shop --full-refresh` reloads it exact)."""
    selected, reasons, exact = [], [], True
    for column in columns:
        name, kind = column["name"], column["type"]
        # A domain (`create domain price as numeric`) is read as the type it wraps: as such it missed the casts
        # below, and a domain over `numeric` came back as a double.
        while isinstance(kind, DOMAIN):
            kind = kind.data_type
        quoted = _quoted(name)
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and _needs_a_cast(kind):
            declared = DEFAULT_DECIMAL_SCALE if kind.precision is None else (kind.scale or 0)
            scale = max(0, min(declared, MAX_DECIMAL_PRECISION))
            target = f"numeric({MAX_DECIMAL_PRECISION}, {scale})"
            fits = f"(abs({quoted}) < 1e{MAX_DECIMAL_PRECISION - scale} and {quoted} = round({quoted}, {scale}))"
            selected.append(f"(case when {fits} then {quoted} end)::{target} as {quoted}")
            prefix = sql_string(f"{table}.{name}: ")
            suffix = sql_string(
                f" does not fit DECIMAL({MAX_DECIMAL_PRECISION}, {scale}) exactly, the widest decimal the warehouse "
                f"holds (the source column is {kind}: give it a precision and scale that fit, or round the value)"
            )
            reasons.append(
                f"case when {quoted} is not null and not {fits} then '{prefix}' || {quoted}::text || '{suffix}' end"
            )
            exact = False
        elif isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
            # numeric(p, s) may hold NaN, which the scanner reads as 0: null instead, and the row a dead letter.
            # nullif keeps the column's type and costs least (a case and a cast made the 1M-row scan 30% slower)
            selected.append(f"nullif({quoted}, 'NaN') as {quoted}")
            prefix = sql_string(f"{table}.{name}: NaN is not a number the warehouse's DECIMAL({kind.precision}, ")
            reasons.append(f"case when {quoted} = 'NaN' then '{prefix}{kind.scale or 0}) holds' end")
            exact = False
        elif (isinstance(kind, sa.Time) and kind.timezone) or _is_interval(kind):
            selected.append(f"{quoted}::text as {quoted}")
            exact = False
        elif isinstance(kind, sa.ARRAY) and _text_in_an_array(kind.item_type):
            selected.append(f"{quoted}::text[] as {quoted}")
            exact = False
        else:
            selected.append(quoted)
    if exact:
        return "*"
    if len(reasons) == 1:
        invalid = reasons[0]
    else:
        invalid = f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else "null::text"
    return ", ".join([*selected, f"{invalid} as {_quoted(INVALID)}"])


def _needs_a_cast(kind: sa.Numeric) -> bool:
    return kind.precision is None or kind.precision > MAX_DECIMAL_PRECISION


def _is_interval(kind: sa.types.TypeEngine) -> bool:
    # DuckDB reads an interval into Arrow's month-day-nano type, which dlt's writer refuses: the table stopped.
    return isinstance(kind, sa.Interval | INTERVAL)


def _text_in_an_array(item: sa.types.TypeEngine) -> bool:
    """Array elements the scanner would change, read as their text instead (the array loads as JSON either way):
    a `numeric` without a precision (or wider than 38 digits) read as doubles, a `timetz` without its offset and
    an `interval` stopped the table, as outside an array."""
    while isinstance(item, DOMAIN):
        item = item.data_type
    if isinstance(item, sa.Numeric) and not isinstance(item, sa.Float):
        return _needs_a_cast(item)
    return (isinstance(item, sa.Time) and item.timezone) or _is_interval(item)


def _read_all(session: Any, schema: str, table: str, batch_rows: int, select: str = "*") -> Iterator[pa.Table]:
    yield from _scan(session, f"select {select} from {_quoted(schema)}.{_quoted(table)}", batch_rows)


def _read_changed(
    session: Any,
    schema: str,
    table: str,
    batch_rows: int,
    select: str = "*",
    # dlt finds the incremental through the signature's default; the caller passes the configured one.
    cursor: dlt.sources.incremental[Any] = dlt.sources.incremental("updated_at"),  # noqa: B008
) -> Iterator[pa.Table]:
    query = f"select {select} from {_quoted(schema)}.{_quoted(table)}"
    if cursor.start_value is not None:
        column = _quoted(cursor.cursor_path)
        start_value = cursor.start_value
        start = sql_string(start_value.isoformat() if hasattr(start_value, "isoformat") else str(start_value))
        query += f" where {column} >= '{start}' or {column} is null"
    yield from _scan(session, query, batch_rows)


def _scan(session: ScannerSession, query: str, batch_rows: int) -> Iterator[pa.Table]:
    with session.cursor() as conn:
        # postgres_query runs the query inside PostgreSQL as written (the filter included) and streams the result.
        batches = conn.execute(f"select * from postgres_query('source_db', '{sql_string(query)}')").to_arrow_reader(
            batch_rows
        )
        for batch in batches:
            if batch.num_rows:
                yield pa.Table.from_batches([batch])


class ScannerConnectionError(ConnectionError):
    """DuckDB's scanner could not connect to the source database; the message does not hold the password."""


def attach_postgres(conn: duckdb.DuckDBPyConnection, url: sa.URL | str, alias: str) -> None:
    """Attach the PostgreSQL database of a SQLAlchemy `url` (password included) read-only as `alias`; the
    scanner must be loaded. ScannerConnectionError when it cannot connect."""
    parsed = sa.make_url(url)
    connect = parsed.set(drivername="postgresql")
    if "connect_timeout" not in connect.query:
        from ingestion.sources.http import RetryPolicy

        # A server that accepts the connection and never answers held the scan for ever.
        connect = connect.update_query_dict({"connect_timeout": str(RetryPolicy.libpq_connect_timeout())})
    libpq_url = connect.render_as_string(hide_password=False)
    failure = None
    try:
        conn.execute(f"attach '{sql_string(libpq_url)}' as {alias} (type postgres, read_only)")
    except duckdb.IOException as error:
        failure = str(error)
    if failure is not None:
        # Raised outside the handler: DuckDB's error names the whole URL, and as the context of ours it would still
        # reach logs and tracebacks.
        for secret in {parsed.password, quote(parsed.password or "", safe=""), quote_plus(parsed.password or "")}:
            if secret:
                failure = failure.replace(secret, "***")
        raise ScannerConnectionError(f"cannot connect to {parsed!r}: {failure}")


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
