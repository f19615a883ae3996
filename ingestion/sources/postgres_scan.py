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

from ingestion.duckdb_extensions import load_postgres_scanner, sql_string


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
) -> DltResource:
    """A dlt resource yielding `schema.table` as Arrow tables of `batch_rows` rows, read through `session`.

    With a cursor, only rows at or after dlt's start value (already moved back by the lag) are read, and the
    filter runs inside PostgreSQL so unchanged rows never cross the wire; rows whose cursor is null are read
    too, for the shop source to quarantine. Tables are read in parallel: DuckDB releases the GIL while it scans.
    """
    reader = _read_changed if cursor is not None else _read_all
    resource = dlt.resource(reader, name=table, write_disposition=write_disposition, primary_key=primary_key)
    arguments = {"cursor": cursor} if cursor is not None else {}
    # Parallelized once bound: dlt's `parallelized=True` wraps the unbound function, and binding the arguments
    # replaces that wrapper, so every table would be read on the main thread one after another.
    return resource(session, schema, table, batch_rows, **arguments).parallelize()


def _read_all(session: Any, schema: str, table: str, batch_rows: int) -> Iterator[pa.Table]:
    yield from _scan(session, f"select * from {_quoted(schema)}.{_quoted(table)}", batch_rows)


def _read_changed(
    session: Any,
    schema: str,
    table: str,
    batch_rows: int,
    # dlt finds the incremental through the signature's default; the caller passes the configured one.
    cursor: dlt.sources.incremental[Any] = dlt.sources.incremental("updated_at"),  # noqa: B008
) -> Iterator[pa.Table]:
    query = f"select * from {_quoted(schema)}.{_quoted(table)}"
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
    libpq_url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
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
