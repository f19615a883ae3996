"""The source database itself: connecting to it, retrying while it is unreachable and refusing at once a setting
that waiting does not fix (a missing SQLite file, no such database or role, a wrong password); its clock, which
stamps its rows; and which database it is, as the warehouse remembers it, so that the cursors stored from another
database are not used on this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import sqlalchemy as sa
from dlt.common.exceptions import DltException

from ingestion.demo.shop import missing_sqlite_file
from ingestion.sources.http import RetryPolicy, connect_with_retries
from ingestion.sources.shop.config import SourceConfigError

log = logging.getLogger("harbor.ingestion.shop")

SOURCE_DATABASE_STATE = "source_database"


def _refuse_a_missing_sqlite_file(url: sa.URL) -> None:
    """A SQLite URL naming no file is a wrong setting. Connecting would create an empty database there (a typo
    in the path left a stray file behind) and then find none of the tables."""
    database = missing_sqlite_file(url)
    if database:
        raise SourceConfigError(
            f"shop: no SQLite database at {database} (sources.shop.credentials, SOURCES__SHOP__CREDENTIALS); "
            "`harbor demo create` makes the demo shop"
        )


# Refusals that waiting does not change: a wrong setting, not an outage.
def wait_for_database(engine: sa.Engine, where: str, policy: RetryPolicy | None = None) -> None:
    """Connect, retrying while the database is unreachable (`connect_with_retries`); the last OperationalError
    propagates when the attempts run out. A refusal that names a wrong setting (no such database or role, bad
    password) is a SourceConfigError at once."""
    connect_with_retries(
        lambda: engine.connect().close(),
        errors=sa.exc.OperationalError,
        what=f"shop database {where}",
        refused=lambda refusal: SourceConfigError(
            f"shop: cannot connect to {where}: {refusal} (sources.shop.credentials, SOURCES__SHOP__CREDENTIALS)"
        ),
        logger=log,
        policy=policy,
    )


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
