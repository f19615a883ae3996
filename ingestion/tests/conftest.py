from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingestion import runlog
from ingestion.settings import PROJECT_DIR, Settings

POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@contextmanager
def _process_state_restored() -> Iterator[None]:
    """`harbor` sets variables for the dbt it starts (HARBOR_RUN_ID, DBT_LOG_FORMAT=json with --json-logs) and
    configures the `harbor` and `dlt` loggers: called in-process, they outlived the caller and changed the tests
    after it. dbt's log turned to JSON lines; and a JSON log line, which exports a new HARBOR_RUN_ID when none is
    set, gave every later dbt run one run id, so an alert read one build's failure as the next build's."""
    saved = dict(os.environ)
    loggers = [logging.getLogger(name) for name in (runlog.LOGGER, "dlt")]
    logger_states = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for lg, (handlers, level, propagate) in zip(loggers, logger_states, strict=True):
            lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    with _process_state_restored():
        yield


@pytest.fixture(autouse=True, scope="module")
def _environment_restored_after_the_module() -> Iterator[None]:
    """The same around a module's own fixtures (a warehouse built once for the module): under pytest-xdist a
    worker runs the modules in any order."""
    with _process_state_restored():
        yield


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A warehouse, demo data and dbt target folder of the test's own, over the repository's dbt project."""
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(PROJECT_DIR))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Settings(
        project_dir=PROJECT_DIR,
        warehouse=tmp_path / "warehouse" / "harbor.duckdb",
        data_dir=data_dir,
        shop_url=f"sqlite:///{data_dir / 'shop.sqlite'}",
    )


@pytest.fixture
def harbor_cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`harbor` commands run in-process read their settings from the environment: point them at the test's own."""
    monkeypatch.setenv("HARBOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))


@contextmanager
def fresh_postgres_database(options: str = "") -> Iterator[str]:
    """A new PostgreSQL database on the local server, dropped afterwards; `options` end its `create database`."""
    name = f"harbor_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}" {options}'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of the test's own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def pg_env(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """dbt's `pg` target and ingestion's postgres destination both pointed at the test's own database."""
    monkeypatch.setenv("HARBOR_PG_DATABASE", sa.engine.make_url(postgres_url).database)
    monkeypatch.setenv("HARBOR_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("HARBOR_PG_PORT", "5432")
    monkeypatch.setenv("HARBOR_PG_USER", "postgres")
    return postgres_url


@pytest.fixture
def receiver():
    """A local HTTP server that records what is posted to it, like a Slack incoming webhook."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000/XXX", received
    server.shutdown()
    server.server_close()
