"""DuckDB's PostgreSQL scanner from the `duckdb-extension-postgres` wheel on PyPI: nothing is downloaded.

Its own module, importing only DuckDB, so the bench's reference (DuckDB copying the shop's tables) loads the
scanner without paying for dlt's or SQLAlchemy's import, which Harbor's side pays (README "Performance")."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import duckdb

DEFAULT_EXTENSION_DIR = Path.home() / ".cache" / "harbor" / "duckdb_extensions"


def load_postgres_scanner(conn: duckdb.DuckDBPyConnection, extension_dir: Path | None = None) -> None:
    """Load the scanner shipped by the `duckdb-extension-postgres` wheel. The wheel's file is named `postgres`;
    DuckDB looks for the entry point of `postgres_scanner`, so the file is laid out under that name in a private
    extension directory (once per DuckDB version and platform)."""
    import duckdb_extension_postgres

    version = f"v{duckdb.__version__}"
    shipped = Path(duckdb_extension_postgres.__file__).parent / "extensions" / version / "postgres.duckdb_extension"
    directory = extension_dir or DEFAULT_EXTENSION_DIR
    (platform_name,) = conn.execute("pragma platform").fetchone()
    target = directory / version / platform_name / "postgres_scanner.duckdb_extension"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # A private name, then an atomic rename: readers in other threads or processes never load half a file.
        staged = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
        shutil.copy2(shipped, staged)
        staged.replace(target)
    conn.execute(f"set extension_directory = '{sql_string(str(directory))}'")
    conn.execute("load postgres_scanner")


def sql_string(value: str) -> str:
    """`value` for the inside of a single-quoted SQL string literal."""
    return value.replace("'", "''")
