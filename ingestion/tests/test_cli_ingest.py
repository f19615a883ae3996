"""`harbor ingest`: all sources, closing summary, JSON logs carrying one run id, exit codes on failure."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.cli import EXIT_BAD_CONFIG, EXIT_SOURCE_UNAVAILABLE, main
from ingestion.demo import shop
from ingestion.quality import dbt_target_dir
from ingestion.settings import shown_location
from ingestion.tests.conftest import fresh_postgres_database


@pytest.fixture
def harbor_env(harbor_cli_env, settings, monkeypatch):
    # Explicit, so a developer's own .dlt/secrets.toml never points the tests at their database.
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", settings.shop_url)
    monkeypatch.delenv("SOURCES__FX__BASE_URL", raising=False)
    monkeypatch.delenv("HARBOR_RUN_ID", raising=False)
    assert main(["demo", "create", "--scale", "0.2"]) == 0
    return settings


def test_ingest_all_sources_prints_a_summary_and_json_logs_with_one_run_id(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("HARBOR_RUN_ID", "run-test-1")
    assert main(["ingest", "--json-logs"]) == 0
    out, err = capsys.readouterr()
    assert "ingest run run-test-1" in out
    for table in ("shop.orders", "events.events", "fx.exchange_rates"):
        assert table in out
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and {line["run_id"] for line in lines} == {"run-test-1"}
    finished = {(line["source"], line["table"]): line for line in lines if "table" in line}
    events = finished[("events", "events")]
    assert events["quarantined"] == 2 and events["extracted"] == events["loaded"] + events["quarantined"]
    assert finished[("shop", "orders")]["loaded"] == 60


def test_an_unreachable_source_exits_non_zero_naming_it_and_others_still_load(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("SOURCES__FX__BASE_URL", "http://127.0.0.1:9/v1/")  # nothing listens on port 9
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    assert main(["ingest", "events", "fx"]) == EXIT_SOURCE_UNAVAILABLE
    out, err = capsys.readouterr()
    assert "events.events" in out
    assert "fx.*" in out and "failed: nothing loaded" in out  # the summary names the failed source too
    assert "source 'fx' is unavailable" in err


def test_a_database_server_that_never_answers_is_an_outage_after_the_timeout_not_a_hang(
    harbor_env, capsys, monkeypatch
):
    """A server that accepts the connection and never answers held libpq with no timeout: `harbor ingest` waited
    for ever, silent, holding the warehouse, and Ctrl-C did not reach it. Now each attempt ends at
    `runtime.request_timeout` and the source is reported unavailable."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever reads or answers them
    port = silent.getsockname()[1]
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", f"postgresql+psycopg2://postgres@127.0.0.1:{port}/shop")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    exit_codes: list[int] = []
    ingest = threading.Thread(target=lambda: exit_codes.append(main(["ingest", "shop"])), daemon=True)
    try:
        ingest.start()
        ingest.join(timeout=60)
    finally:
        silent.close()
    assert not ingest.is_alive(), "harbor ingest still waiting for the server after 60 s"
    assert exit_codes == [EXIT_SOURCE_UNAVAILABLE]
    assert "timeout expired" in capsys.readouterr().err


def test_unknown_sources_are_refused(harbor_env, capsys):
    assert main(["ingest", "nope"]) == 2
    assert "unknown source(s) nope" in capsys.readouterr().err


def test_a_misspelt_log_format_is_warned_about(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("HARBOR_LOG_FORMAT", "jsno")
    assert main(["ingest", "nope"]) == 2
    assert "HARBOR_LOG_FORMAT='jsno' is neither 'json' nor 'text'" in capsys.readouterr().err


def test_demo_advance_writes_an_event_file_per_tick(harbor_env):
    assert main(["demo", "advance", "--ticks", "2"]) == 0
    names = sorted(p.name for p in (harbor_env.data_dir / "events").iterdir())
    assert names == ["events_00000.jsonl", "events_00001.jsonl", "events_00002.jsonl"]
    assert shop.read_clock(shop.engine_for(harbor_env.shop_url)).tick == 2


def test_progress_lines_show_only_for_steps_that_run_long():
    import logging

    from ingestion.runlog import SlowStepsOnly

    keep = SlowStepsOnly(5.0)

    def record(message: str) -> logging.LogRecord:
        return logging.makeLogRecord({"msg": message})

    assert not keep.filter(record("Extract shop\nResources: 0/5 (0.0%) | Time: 0.00s | Rate: 0.00/s"))
    assert keep.filter(record("Load shop\nJobs: 3/11 (27.3%) | Time: 12.50s | Rate: 0.24/s"))


def _failing_ingesters(monkeypatch, **errors) -> list[str]:
    """Each named source's ingester replaced by one that records its name, then raises `errors[source]()`; returns
    the record, in the order they ran."""
    from ingestion import cli

    ran: list[str] = []

    def failing(source: str):
        def ingest(settings, **options):
            ran.append(source)
            raise errors[source]()

        return ingest

    for source in errors:
        monkeypatch.setitem(cli.INGESTERS, source, failing(source))
    return ran


def test_a_reader_that_panics_fails_its_source_and_the_others_still_run(harbor_env, capsys, monkeypatch):
    """connectorx reports a Rust panic (an `interval` column) as a BaseException, not an Exception: it ended the
    command with a traceback, exit 1, and the sources after it never ran."""

    class PanicException(BaseException):  # as pyo3 defines it
        pass

    ran = _failing_ingesters(
        monkeypatch,
        shop=lambda: PanicException("not implemented: interval"),
        events=lambda: RuntimeError("events went wrong"),
    )
    assert main(["ingest", "shop", "events"]) == 4
    assert ran == ["shop", "events"]
    assert "source 'shop' failed: not implemented: interval" in capsys.readouterr().err


def test_ctrl_c_inside_dlt_stops_the_command_and_is_no_failed_source(harbor_env, capsys, monkeypatch):
    """dlt wraps a KeyboardInterrupt in its own error: Ctrl-C was reported and recorded as a failed source (an
    alert, exit 4), and the sources after it loaded all the same (found by review)."""
    wrapped = RuntimeError("Pipeline execution failed at step=extract")
    wrapped.__cause__ = KeyboardInterrupt()
    ran = _failing_ingesters(monkeypatch, shop=lambda: wrapped, events=lambda: AssertionError("not to be run"))
    assert main(["ingest", "shop", "events"]) == 130
    assert ran == ["shop"]
    said = capsys.readouterr().err
    assert "harbor: interrupted; run the command again to finish" in said
    assert "failed" not in said


def test_json_logs_keep_every_stderr_line_json_when_a_source_fails(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("HARBOR_LOG_FORMAT", "json")
    monkeypatch.setenv("SOURCES__FX__BASE_URL", "http://127.0.0.1:9/v1/")  # nothing listens on port 9
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    assert main(["ingest", "fx"]) == EXIT_SOURCE_UNAVAILABLE
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    closing = lines[-1]
    assert closing["message"].startswith("harbor: error: source 'fx' is unavailable")
    assert (closing["source"], closing["exit_code"]) == ("fx", EXIT_SOURCE_UNAVAILABLE)


def test_a_shop_moved_from_sqlite_to_postgresql_is_explained_and_a_full_refresh_recovers(
    harbor_env, postgres_url, capsys, monkeypatch
):
    assert main(["ingest", "shop"]) == 0
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", postgres_url)
    assert main(["demo", "create", "--scale", "0.2"]) == 0
    capsys.readouterr()
    # Refused before anything is read: the SQLite shop's cursors loaded nothing of a PostgreSQL shop whose rows
    # were all older than them (exit 0), and stopped on the time zones of one with newer rows.
    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    database = sa.engine.make_url(postgres_url).database
    assert (
        f"loaded from another database (sqlite {harbor_env.data_dir / 'shop.sqlite'}; now postgresql {database}" in err
    )
    assert "harbor ingest shop --full-refresh" in err
    assert main(["ingest", "shop", "--full-refresh"]) == 0
    # staging would keep the SQLite shop's keys beside the new ones: the dbt side needs a full rebuild too
    assert "raw data of shop replaced: rebuild with `harbor build --full-refresh`" in capsys.readouterr().out
    assert main(["ingest", "shop"]) == 0  # the full refresh remembered the new database (read by DuckDB's scanner)
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", harbor_env.shop_url)  # and back: refused again
    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    assert f"now sqlite {harbor_env.data_dir / 'shop.sqlite'}" in capsys.readouterr().err


def test_the_shop_url_can_come_from_dlt_s_secrets_toml(tmp_path):
    """README: SOURCES__SHOP__CREDENTIALS or the project's `.dlt/secrets.toml`, as dlt reads its configuration."""
    url = "postgresql+psycopg2://shop_reader@127.0.0.1:5432/shop_from_secrets"
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text(f'[sources.shop]\ncredentials = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCES__SHOP__CREDENTIALS", "DLT_PROJECT_DIR")}
    env["HARBOR_PROJECT_DIR"] = str(tmp_path)
    shown = subprocess.run(
        [sys.executable, "-c", "from ingestion.settings import Settings; print(Settings.from_env().shop_url)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == url


# Checked to reach PostgreSQL intact: `@`, `:` and `/` unescaped in a URL would move its host and database.
# (The test server trusts local connections, so the password itself is never checked.)
FIELD_PASSWORD = "s3cret@:/%"


@contextmanager
def a_postgres_shop() -> Iterator[str]:
    """A demo shop in a PostgreSQL database of its own whose customers' emails say so (`pg-...`): rows the demo
    SQLite shop does not have. Yields the database's name."""
    with fresh_postgres_database() as url:
        shop.create_shop(url, seed=7, scale=0.1)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("update customers set email = 'pg-' || email"))
        engine.dispose()
        yield sa.engine.make_url(url).database


def raw_customer_emails(warehouse: Path) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return [email for (email,) in conn.execute("select email from raw_shop.customers").fetchall()]


def test_the_shop_credentials_can_be_set_field_by_field_in_the_environment(harbor_env, capsys, monkeypatch):
    """dlt's per-field form, SOURCES__SHOP__CREDENTIALS__HOST and the like: ignored, so `harbor ingest shop`
    loaded the demo SQLite shop instead, exit 0 (found by review)."""
    monkeypatch.delenv("SOURCES__SHOP__CREDENTIALS")
    with a_postgres_shop() as database:
        for field, value in {
            "DRIVERNAME": "postgresql+psycopg2",
            "USERNAME": "postgres",
            "PASSWORD": FIELD_PASSWORD,
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "DATABASE": database,
            "QUERY": '{"connect_timeout": "10"}',  # JSON in a variable, as dlt reads a table there
        }.items():
            monkeypatch.setenv(f"SOURCES__SHOP__CREDENTIALS__{field}", value)
        assert main(["ingest", "shop"]) == 0
    emails = raw_customer_emails(harbor_env.warehouse)
    assert emails and all(email.startswith("pg-") for email in emails)
    assert FIELD_PASSWORD not in "".join(capsys.readouterr())


@pytest.mark.parametrize("split", [False, True], ids=["secrets-toml", "fields-in-config-toml"])
def test_the_shop_credentials_can_be_set_field_by_field_in_secrets_toml(tmp_path, split):
    """`[sources.shop.credentials]` with the URL's fields, as dlt documents it: exit 2, "cannot use the shop
    database {'drivername': ..., 'password': 's3cret', ...}", the password printed (found by review). As in dlt,
    the fields but the password may sit in `.dlt/config.toml`: read from secrets only, they were missing and the
    demo shop loaded instead (found by review)."""
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    with a_postgres_shop() as database:
        fields = (
            'drivername = "postgresql+psycopg2"\n'
            'username = "postgres"\n'
            'host = "127.0.0.1"\n'
            "port = 5432\n"
            f'database = "{database}"\n'
        )
        secret = f"password = {json.dumps(FIELD_PASSWORD)}\n"
        if split:
            (project / ".dlt" / "config.toml").write_text("[sources.shop.credentials]\n" + fields)
            (project / ".dlt" / "secrets.toml").write_text("[sources.shop.credentials]\n" + secret)
        else:
            (project / ".dlt" / "secrets.toml").write_text("[sources.shop.credentials]\n" + fields + secret)
        completed = _harbor_in(project, tmp_path, "ingest", "shop")
    assert completed.returncode == 0, completed.stderr
    assert FIELD_PASSWORD not in completed.stdout + completed.stderr
    emails = raw_customer_emails(tmp_path / "warehouse.duckdb")
    assert emails and all(email.startswith("pg-") for email in emails)


def _harbor_in(project: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`harbor` over a project folder of the test's own (its `.dlt/`), none of the caller's source settings."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SOURCES__") and k != "DLT_PROJECT_DIR"},
        "HARBOR_PROJECT_DIR": str(project),
        "HARBOR_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "HARBOR_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run([sys.executable, "-m", "ingestion.cli", *argv], env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("credentials", "in_secrets"),
    [
        ('credentials = "postgresql+psycopg2://shop:s3cret@db/shop"', ""),
        ('[sources.shop.credentials]\npassword = "s3cret"', ""),
        # The secrets' own table hid config.toml's from dlt.config.get: the password there went unread, unsaid.
        ('[sources.shop.credentials]\npassword = "s3cret"', '[sources.shop.credentials]\nusername = "shop"\n'),
        ('credentials = "postgresql+psycopg2://shop:s3cret@db/shop"', '[sources.shop]\ncredentials = "sqlite:///x"\n'),
    ],
    ids=["url", "password", "password-beside-fields-in-secrets", "url-beside-one-in-secrets"],
)
def test_shop_secrets_in_config_toml_are_refused_not_left_unread(tmp_path, credentials, in_secrets):
    """dlt reads no secret from `.dlt/config.toml`: a shop URL there was never read, and the demo SQLite shop
    loaded instead, exit 0 (found by review)."""
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    section = "" if credentials.startswith("[") else "[sources.shop]\n"
    (project / ".dlt" / "config.toml").write_text(section + credentials + "\n")
    (project / ".dlt" / "secrets.toml").write_text(in_secrets)
    completed = _harbor_in(project, tmp_path, "ingest", "shop")
    assert completed.returncode == EXIT_BAD_CONFIG, completed.stderr
    assert "is set in .dlt/config.toml, where dlt reads no secret" in completed.stderr
    assert "s3cret" not in completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        (  # `user` for `username`: ignored, so the database was read as the operating system's user
            {"DRIVERNAME": "postgresql+psycopg2", "USER": "reader", "PASSWORD": "s3cret", "DATABASE": "shop"},
            "unknown credentials field(s) SOURCES__SHOP__CREDENTIALS__USER; the fields are drivername, username,",
        ),
        (
            {"USERNAME": "reader", "PASSWORD": "s3cret", "HOST": "127.0.0.1"},
            "credentials set username, password, host but no drivername",
        ),
        (
            {"DRIVERNAME": "postgresql+psycopg2", "PASSWORD": "s3cret", "PORT": "s3cret"},  # a password pasted there
            "sources.shop.credentials.port (SOURCES__SHOP__CREDENTIALS__PORT) must be a port number",
        ),
        (
            {"DRIVERNAME": "postgresql+psycopg2", "PASSWORD": "s3cret", "QUERY": "sslmode=require"},
            "sources.shop.credentials.query (SOURCES__SHOP__CREDENTIALS__QUERY) must be a table",
        ),
    ],
    ids=["unknown-field", "no-drivername", "port", "query"],
)
def test_wrong_shop_credential_fields_are_named_without_their_values(harbor_env, capsys, monkeypatch, variables, said):
    monkeypatch.delenv("SOURCES__SHOP__CREDENTIALS")
    for field, value in variables.items():
        monkeypatch.setenv(f"SOURCES__SHOP__CREDENTIALS__{field}", value)
    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert said in err and "s3cret" not in err


def test_shop_credential_fields_beside_the_whole_url_are_refused_not_ignored(harbor_env, capsys, monkeypatch):
    """dlt takes the URL and drops the fields: a HOST set to move the shop was silently not used."""
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS__HOST", "db.internal")
    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "SOURCES__SHOP__CREDENTIALS__HOST would be ignored: the shop URL is set as a whole" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", "shop"],  # SOURCES__SHOP__CREDENTIALS, below
        ["demo", "create", "--url", "postgres:s3cret@127.0.0.1:5432/shop"],
        ["report", "--warehouse", "postgres:s3cret@127.0.0.1:5432/shop"],
        ["report", "--warehouse", "postgresql+psycopg2//postgres:s3cret@127.0.0.1:5432/shop"],
    ],
    ids=["ingest", "demo-create", "report", "report-no-colon"],
)
def test_a_url_with_its_scheme_mistyped_or_left_out_is_shown_without_its_password(
    harbor_env, capsys, monkeypatch, argv
):
    """Text without `://` was shown as a file path would be: the password and all (found by review)."""
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", "postgresql+psycopg2//postgres:s3cret@127.0.0.1:5432/shop")
    monkeypatch.setenv("HARBOR_RUN_ID", "run-with-a-mistyped-url")
    capsys.readouterr()
    assert main(argv) == EXIT_BAD_CONFIG
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err
    assert "postgres:***@127.0.0.1:5432/shop" in err
    if argv[0] == "ingest":  # and the failed run's record, which the report and the alert show
        with duckdb.connect(str(harbor_env.warehouse), read_only=True) as conn:
            (error,) = conn.execute(
                "select error from observability.ingestion_runs where run_id = 'run-with-a-mistyped-url'"
            ).fetchone()
        assert "postgres:***@127.0.0.1:5432/shop" in error and "s3cret" not in error


def test_the_project_s_dlt_configuration_applies_wherever_harbor_runs_from(tmp_path):
    """dlt reads `.dlt/` from the current directory: from any other folder Harbor's config.toml (and secrets.toml)
    were silently ignored."""
    probe = "import ingestion, dlt; print(dlt.config.get('load.workers'))"
    env = {k: v for k, v in os.environ.items() if k not in ("DLT_PROJECT_DIR", "LOAD__WORKERS")}
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "1"  # [load] workers in the project's .dlt/config.toml


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("SOURCES__SHOP__BACKEND", "oracle", "backend must be one of"),
        ("SOURCES__SHOP__TABLE_NAMES", '["no_such_table"]', "table 'no_such_table' not found"),
        ("SOURCES__SHOP__LAG_SECONDS", "an hour", "lag_seconds"),
        ("SOURCES__SHOP__TABLE_OPTIONS", '{"orders": {"lag_seconds": "an hour"}}', "lag_seconds of table 'orders'"),
        ("SOURCES__SHOP__CREDENTIALS", "postgresql://postgres@127.0.0.1:5432/shop", "postgresql+psycopg2://..."),
        # Each of these loaded nothing and exited 0.
        ("SOURCES__SHOP__CHUNK_SIZE", "-1", "chunk_size"),
        ("SOURCES__SHOP__TABLE_NAMES", "[]", "no table to load"),
        ("SOURCES__SHOP__LAG_SECNDS", "5", "unknown setting(s) SOURCES__SHOP__LAG_SECNDS"),
        # These were failed loads (exit 4) naming no setting.
        ("SOURCES__SHOP__CREDENTIALS", "mysql://u:secret@h/db", "shop database mysql://u:***@h/db: No module"),
        (
            "SOURCES__SHOP__CREDENTIALS",
            "postgresql+psycopg2://u@h:abc/db",
            "cannot use the shop database an unparseable URL",
        ),
    ],
)
def test_a_misconfigured_source_exits_2_naming_the_setting_and_others_still_load(
    harbor_env, capsys, monkeypatch, variable, value, said
):
    monkeypatch.setenv(variable, value)
    assert main(["ingest", "shop", "events"]) == EXIT_BAD_CONFIG
    out, err = capsys.readouterr()
    assert "source 'shop' cannot run, a setting is wrong" in err and said in err
    assert "events.events" in out


def test_a_wrong_destination_is_said_once_before_any_source_runs(harbor_env, capsys, monkeypatch):
    """Every source failed on it in turn, each with its error, a warning and a closing line: 14 lines for one typo."""
    monkeypatch.setenv("HARBOR_DESTINATION", "snowflake")
    assert main(["ingest", "shop", "events"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert err.count("HARBOR_DESTINATION must be duckdb or postgres, not 'snowflake'") == 1
    assert "source 'shop'" not in err


def test_a_mistyped_destination_stops_a_build_too(harbor_env, capsys, monkeypatch):
    """It built the DuckDB warehouse, exit 0, where ingest and report refused the same value."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgress")
    assert main(["build", "--select", "stg_fx__exchange_rates"]) == EXIT_BAD_CONFIG
    assert "HARBOR_DESTINATION must be duckdb or postgres, not 'postgress'" in capsys.readouterr().err


def test_an_empty_fx_cursor_parameter_is_a_wrong_setting(harbor_env, capsys, monkeypatch):
    """The request went out as `?page_size=100&=type&=cursor_path...`, with no incremental filter, exit 0."""
    monkeypatch.setenv("SOURCES__FX__CURSOR_PARAM", "")
    assert main(["ingest", "fx"]) == EXIT_BAD_CONFIG
    assert "cursor_param" in capsys.readouterr().err


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "1e9"])
def test_a_demo_scale_out_of_range_is_refused_before_anything_is_written(harbor_cli_env, settings, capsys, scale):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "create", "--scale", scale, "--url", settings.shop_url])
    assert exit_.value.code == 2 and "--scale" in capsys.readouterr().err
    assert not Path(sa.make_url(settings.shop_url).database).exists()


def test_a_pipeline_started_from_any_folder_sends_no_usage_events(settings, tmp_path):
    """dlt sends anonymous usage events unless told not to; Harbor's `.dlt/config.toml` turns them off, and it
    must be the one dlt reads wherever `harbor` is started."""
    script = (
        "from pathlib import Path\n"
        "from ingestion.pipeline import make_pipeline\n"
        "from ingestion.settings import Settings\n"
        "from dlt.common.runtime import anon_tracker\n"
        f"settings = Settings(None, Path({str(settings.warehouse)!r}), Path({str(settings.data_dir)!r}), None)\n"
        "make_pipeline('fx', settings).extract([{'id': 1}], table_name='probe')\n"
        "print(anon_tracker._ANON_TRACKER_ENDPOINT)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME__")}
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown[-1] == "None"


def test_a_build_whose_selection_matches_nothing_fails_unless_the_selection_is_stateful(
    harbor_cli_env, settings, capfd
):
    """dbt warns that `--select` matches no node and exits 0: a mistyped model name in a scheduled job built
    nothing and passed (found by review). A selection that built something passes, and so does a stateful one,
    which may rightly be empty (nothing changed)."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(settings.warehouse)).close()
    assert main(["build", "--select", "fct_ordrs"]) == EXIT_BAD_CONFIG
    out, err = capfd.readouterr()
    assert "does not match any enabled nodes" in out and "the selection matched no node" in err
    assert (
        main(["build", "--select", "currencies", "--exclude", "no_such_model", "--indirect-selection", "cautious"]) == 0
    )
    state = settings.warehouse.parent / "state"  # the last build's artifacts: no node failed there
    shutil.copytree(dbt_target_dir(settings.project_dir), state)
    assert main(["build", "--select", "result:error", "--state", str(state)]) == 0


def test_harbor_build_hands_every_option_to_dbt_and_other_commands_refuse_unknown_ones(monkeypatch, capsys, tmp_path):
    """The README's `harbor build --threads N` and `--vars '{test_scope: changed}'` reach dbt as given; argparse
    used to stop at the first option it did not know. A DuckDB warehouse that is not there is refused, not
    created empty for dbt to find every source missing."""
    import ingestion.cli

    handed: list[tuple[str, ...]] = []
    exit_codes = iter([0, 0, 0, 0, 0, 1])
    monkeypatch.setattr(
        ingestion.cli, "run_dbt", lambda settings, *args, check=True: handed.append(args) or next(exit_codes)
    )
    scored: list[float] = []  # the README: every build prints the quality score
    monkeypatch.setattr(ingestion.cli, "_print_quality", lambda settings, since, artifacts=None: scored.append(since))
    monkeypatch.setattr(ingestion.cli, "_selected_nothing", lambda options, artifacts, since: False)  # no dbt here
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(tmp_path / "mistyped.duckdb"))
    assert main(["build"]) == EXIT_BAD_CONFIG
    assert "no warehouse at" in capsys.readouterr().err and not (tmp_path / "mistyped.duckdb").exists()
    assert main(["build", "--target", "pg"]) == 0  # PostgreSQL's warehouse is no file
    assert main(["build", "--target=pg"]) == 0
    assert main(["build", "--target=pg", "--target", "dev"]) == EXIT_BAD_CONFIG  # dbt takes the last one
    handed.clear()
    (tmp_path / "mistyped.duckdb").touch()
    assert main(["build", "--threads", "2", "--vars", "{test_scope: changed}"]) == 0
    assert main(["build", "-s", "fct_orders+", "--full-refresh"]) == 0
    assert main(["build"]) == 0
    assert main(["build"]) == 1  # dbt's exit status, after the score of what it ran
    assert handed == [
        ("build", "--threads", "2", "--vars", "{test_scope: changed}"),
        ("build", "-s", "fct_orders+", "--full-refresh"),
        ("build",),
        ("build",),
    ]
    assert len(scored) == 6
    with pytest.raises(SystemExit) as refused:
        main(["ingest", "--threads"])
    assert refused.value.code == EXIT_BAD_CONFIG
    assert "unrecognized arguments: --threads" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse took it for --full-refresh: a typo reloaded everything
        main(["ingest", "--full"])
    assert refused.value.code == EXIT_BAD_CONFIG
    assert "unrecognized arguments: --full" in capsys.readouterr().err


def test_a_failed_source_is_recorded_as_an_error_beside_the_others(harbor_env, monkeypatch):
    """The alert and the report read failed ingestion runs from `observability.ingestion_runs`; `harbor ingest`
    recorded only the runs that loaded."""
    monkeypatch.setenv("HARBOR_RUN_ID", "run-with-a-failure")
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "oracle")
    assert main(["ingest", "shop", "events"]) == EXIT_BAD_CONFIG
    with duckdb.connect(str(harbor_env.warehouse), read_only=True) as conn:
        runs = conn.execute(
            "select source_name, table_name, status, error from observability.ingestion_runs "
            "where run_id = 'run-with-a-failure' order by source_name, table_name"
        ).fetchall()
    shop_runs = [run for run in runs if run[0] == "shop"]
    assert [run[1:3] for run in shop_runs] == [("*", "error")]
    assert "backend must be one of" in shop_runs[0][3]
    assert {run[2] for run in runs if run[0] == "events"} == {"success"}


def test_ingestion_runs_are_recorded_in_the_postgres_warehouse_when_it_is_the_destination(
    harbor_env, pg_env, monkeypatch
):
    """With HARBOR_DESTINATION=postgres, dbt's history is in PostgreSQL: the ingestion runs must be there too for
    the report and the alert to join them by run id, not in a DuckDB file nothing else reads. Each run names the
    pipeline that loaded it (the one whose local state holds the cursor), failed runs too."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.setenv("HARBOR_RUN_ID", "run-on-postgres")
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "oracle")
    assert main(["ingest", "events", "shop"]) == EXIT_BAD_CONFIG
    engine = sa.create_engine(pg_env)
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text(
                "select distinct source_name, status, pipeline_name from observability.ingestion_runs "
                "where run_id = 'run-on-postgres' order by source_name"
            )
        ).all()
    engine.dispose()
    assert [tuple(run) for run in runs] == [
        ("events", "success", "harbor_events_postgres"),
        ("shop", "error", "harbor_shop_postgres"),
    ]
    assert not harbor_env.warehouse.exists()


POSTGRES_SOCKET_DIRECTORY = Path("/var/run/postgresql")


@pytest.mark.skipif(
    not (POSTGRES_SOCKET_DIRECTORY / ".s.PGSQL.5432").exists(), reason="no local PostgreSQL socket to connect through"
)
def test_a_socket_directory_as_the_postgres_host_loads_and_records_as_dbt_reads_it(harbor_env, pg_env, monkeypatch):
    """dbt's `pg` target takes HARBOR_PG_HOST as libpq does, a socket directory too; ingestion put it in a URL
    as it stood and failed on it, and SQLAlchemy (the run's record) reads a socket only from the URL's query."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.setenv("HARBOR_PG_HOST", str(POSTGRES_SOCKET_DIRECTORY))
    monkeypatch.setenv("HARBOR_RUN_ID", "run-through-a-socket")
    assert main(["ingest", "events"]) == 0
    engine = sa.create_engine(pg_env)
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("select count(*) from raw_events.events")).scalar()
        recorded = (
            conn.execute(
                sa.text(
                    "select distinct status from observability.ingestion_runs where run_id = 'run-through-a-socket'"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert loaded > 0 and recorded == ["success"]


def test_two_postgres_warehouses_fed_from_one_data_folder_keep_their_own_cursors(harbor_env, pg_env, monkeypatch):
    """dlt trusts a newer local state over the destination's: with one state folder for every PostgreSQL
    database, a warehouse that missed a run would start from the other's cursor and skip the rows in between."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    first = sa.engine.make_url(pg_env).database
    with fresh_postgres_database() as second_url:
        second = sa.engine.make_url(second_url).database
        for database in (first, second):
            monkeypatch.setenv("HARBOR_PG_DATABASE", database)
            assert main(["ingest", "shop"]) == 0
        shop.advance_shop(harbor_env.shop_url)
        monkeypatch.setenv("HARBOR_PG_DATABASE", first)  # the second misses this run
        assert main(["ingest", "shop"]) == 0
        shop.advance_shop(harbor_env.shop_url)
        for database in (first, second):
            monkeypatch.setenv("HARBOR_PG_DATABASE", database)
            assert main(["ingest", "shop"]) == 0
        source = sa.create_engine(harbor_env.shop_url)
        with source.connect() as conn:
            expected = conn.execute(sa.text("select count(*) from orders")).scalar()
        source.dispose()
        for url in (pg_env, second_url):
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                assert conn.execute(sa.text("select count(*) from raw_shop.orders")).scalar() == expected, url
            engine.dispose()


def test_a_second_run_of_a_source_into_postgres_waits_for_the_first_saying_so(harbor_env, pg_env, monkeypatch):
    """Two runs of one source into PostgreSQL at once shared dlt's local working folder and committed in either
    order; into DuckDB the file's single writer keeps the second out. The second now waits for the first."""
    from ingestion.pipeline import one_run_at_a_time

    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    with one_run_at_a_time("harbor_shop_postgres"):  # a first run, still loading
        second = subprocess.Popen(
            [sys.executable, "-m", "ingestion.cli", "ingest", "shop"],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                second.wait(timeout=15)
        except BaseException:
            second.kill()
            raise
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, out + err
    assert "another run of harbor_shop_postgres is loading into this warehouse: waiting for it to finish" in err
    engine = sa.create_engine(pg_env)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw_shop.orders")).scalar() > 0
    engine.dispose()


def test_a_load_that_committed_stays_a_success_when_its_record_cannot_be_written(harbor_env, capsys, monkeypatch):
    """The record is written after the load commits: failing to write it is a warning, not "failed, nothing loaded"
    with exit 4 for data that is in the warehouse."""
    import ingestion.observability.history

    def unwritable(*args, **kwargs):
        raise RuntimeError("permission denied for schema observability")

    monkeypatch.setattr(ingestion.observability.history, "record_ingest_result", unwritable)
    assert main(["ingest", "events"]) == 0
    out, err = capsys.readouterr()
    assert "events.events" in out
    assert "the run of 'events' is not recorded in the warehouse: permission denied" in err


def test_harbor_report_explains_a_warehouse_it_cannot_read(settings, capsys, monkeypatch, tmp_path):
    """No file, a file no build has run on, a bare postgresql:// URL: one line and exit 2, no traceback."""
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    output = ["--output", str(tmp_path / "report.html")]
    assert main(["report", *output]) == EXIT_BAD_CONFIG
    assert f"no warehouse at {settings.warehouse}" in capsys.readouterr().err
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(settings.warehouse)).close()
    assert main(["report", *output]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert f"cannot report on {settings.warehouse}" in err and "Traceback" not in err
    assert "no `harbor build` has run on it yet" in err
    assert main(["report", *output, "--warehouse", "postgresql://postgres:s3cret@127.0.0.1:5432/x"]) == 2
    err = capsys.readouterr().err
    assert "postgresql+psycopg2://" in err and "s3cret" not in err
    # A database that is not there is not a warehouse without history: no hint to run a build on it.
    missing = f"postgresql+psycopg2://postgres@127.0.0.1:5432/harbor_no_such_db_{uuid.uuid4().hex[:6]}"
    assert main(["report", *output, "--warehouse", missing]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no `harbor build` has run" not in err
    with pytest.raises(SystemExit) as refused:  # 0 used to show all history
        main(["report", *output, "--days-back", "0"])
    assert refused.value.code == 2 and "at least 1 day, not 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a million days reached before year 1: a traceback
        main(["report", *output, "--days-back", "1000000"])
    assert refused.value.code == 2 and "at most 36500 days, not 1000000" in capsys.readouterr().err


def test_a_build_that_stopped_before_any_node_prints_no_score_from_an_older_build(settings, capsys, tmp_path):
    """dbt stopping at parse time leaves the previous build's run_results.json: its score is not this build's."""
    import time

    from ingestion.cli import _print_quality

    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    (target / "run_results.json").write_text('{"results": []}')
    (target / "manifest.json").write_text("{}")
    _print_quality(settings, since=time.time() + 1)
    out = capsys.readouterr().out
    assert "no score" in out and "no data tests ran" not in out and "coverage" not in out


def test_demo_create_if_missing_leaves_a_shop_and_no_create_writes_into_someone_else_s_tables(
    settings, postgres_url, capsys
):
    """`make ingest` created the demo shop unless data/shop.sqlite existed: a shop in PostgreSQL was "created"
    again and the command stopped. And a database holding a real `orders` table got demo rows written into it."""
    assert main(["demo", "create", "--if-missing", "--scale", "0.1", "--url", postgres_url]) == 0
    assert "created demo shop" in capsys.readouterr().out
    assert main(["demo", "create", "--if-missing", "--url", postgres_url]) == 0
    assert "exists: left as it is" in capsys.readouterr().out

    with fresh_postgres_database() as foreign:
        engine = sa.create_engine(foreign)
        with engine.begin() as conn:
            conn.execute(sa.text("create table orders (order_id integer primary key, note text)"))
            conn.execute(sa.text("insert into orders values (7, 'a real order')"))
        assert main(["demo", "create", "--if-missing", "--url", foreign]) == EXIT_BAD_CONFIG
        assert "holds tables orders that are not a demo shop's: not writing into them" in capsys.readouterr().err
        with engine.connect() as conn:
            assert conn.execute(sa.text("select * from orders")).all() == [(7, "a real order")]
            assert not sa.inspect(conn).has_table("customers")
        engine.dispose()


def test_wrong_settings_and_urls_are_one_line_and_exit_2_without_their_passwords(
    settings, capsys, monkeypatch, tmp_path
):
    """Each used to be a traceback, a misleading file name, or a message echoing the password."""
    monkeypatch.setenv("HARBOR_DATA_DIR", str(settings.data_dir))

    def refused(*argv: str) -> str:
        assert main(list(argv)) == EXIT_BAD_CONFIG
        err = capsys.readouterr().err
        assert "s3cret" not in err and "Traceback" not in err
        return err

    monkeypatch.setenv("HARBOR_WAREHOUSE", "postgres://harbor:s3cret@127.0.0.1/harbor")
    assert "HARBOR_WAREHOUSE is the DuckDB file's path, not a URL" in refused("report")
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(tmp_path))
    assert "HARBOR_WAREHOUSE is a folder" in refused("report")
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    assert "not mysql://harbor:***@db/harbor" in refused("report", "--warehouse", "mysql://harbor:s3cret@db/harbor")
    assert "cannot use the shop database" in refused("demo", "advance", "--url", "not a url")
    missing_db = "postgresql+psycopg2://postgres:s3cret@127.0.0.1:5432/harbor_no_such_database"
    assert 'database "harbor_no_such_database" does not exist' in refused("demo", "create", "--url", missing_db)
    with monkeypatch.context() as postgres:
        postgres.setenv("HARBOR_DESTINATION", "postgres")
        postgres.setenv("HARBOR_PG_PORT", "abc")
        assert "HARBOR_PG_PORT must be a port number, not 'abc'" in refused("ingest", "events")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "abc")
    assert "RUNTIME__REQUEST_MAX_ATTEMPTS) must be a number" in refused("ingest", "fx")
    monkeypatch.delenv("RUNTIME__REQUEST_MAX_ATTEMPTS")
    monkeypatch.setenv("SOURCES__EVENTS__BUCKET_URL", str(tmp_path / "no-such-folder"))
    assert "events: no folder" in refused("ingest", "events")


def test_a_setting_that_is_set_but_empty_means_its_default(monkeypatch):
    """`HARBOR_DATA_DIR=` (as an .env template leaves it) used to mean the working directory."""
    from ingestion.settings import PROJECT_DIR, Settings

    monkeypatch.setenv("HARBOR_PROJECT_DIR", "")
    monkeypatch.setenv("HARBOR_DATA_DIR", "")
    monkeypatch.setenv("HARBOR_WAREHOUSE", "")
    monkeypatch.chdir("/")
    settings = Settings.from_env()
    assert settings.project_dir == PROJECT_DIR
    assert settings.data_dir == PROJECT_DIR / "data"
    assert settings.warehouse == PROJECT_DIR / "warehouse" / "harbor.duckdb"


def test_a_failure_is_named_by_its_cause_not_by_the_stop_of_a_generator():
    """dlt wraps the error that stopped a resource; followed through its context, the chain ended at the
    StopIteration of the generator being read, and `harbor ingest` said "failed: StopIteration"."""
    from ingestion.pipeline import root_cause

    lines = iter(["only line"])
    next(lines)
    try:
        try:
            next(lines)
        except StopIteration:
            raise OverflowError("date value out of range")  # noqa: B904 (its context is the StopIteration)
    except OverflowError as error:
        cause = error
    wrapped = RuntimeError("extraction failed")
    wrapped.__cause__ = cause
    assert root_cause(wrapped) == "date value out of range"


def test_a_warehouse_another_process_writes_is_said_once_up_front_by_ingest_build_and_docs(
    harbor_env, settings, capsys, monkeypatch
):
    """DuckDB lets one process write a file: ingest failed in every source with the lock error three times over
    (exit 4, "a load failed") and build and `make docs` in a page of dbt's traceback."""
    assert main(["ingest", "fx"]) == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(settings.warehouse)!r}); print('open', flush=True); "
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        capsys.readouterr()
        for command in (["ingest"], ["build", "--select", "stg_fx__exchange_rates"], ["docs"]):
            assert main(command) == 2, command
            err = capsys.readouterr().err
            assert err.count("in use by another process") == 1 and f"(PID {holder.pid})" in err, err
            assert "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()


def _another_process_opens(warehouse: Path) -> str:
    """What `duckdb.connect(warehouse)` in another process says: `opened`, or its error."""
    attempt = (
        "import duckdb, sys\n"
        "try:\n    duckdb.connect(sys.argv[1]).close()\n"
        "except duckdb.Error as error:\n    print(error)\n"
        "else:\n    print('opened')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", attempt, str(warehouse)], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_an_ingest_of_several_sources_holds_the_duckdb_warehouse_until_its_last_record(harbor_env, monkeypatch):
    """Each source's run opened and closed the warehouse: between two sources the file was free, another process
    (a `dbt build`, another `harbor ingest`) could take DuckDB's single writer's lock, and the next source failed,
    the record of the one before perhaps unwritten. `harbor ingest` now holds it from its check to the last
    source's record, and lets it go before it returns (`harbor demo run` then runs dbt in another process)."""
    from ingestion import cli

    monkeypatch.setenv("HARBOR_RUN_ID", "run-holding-the-warehouse")
    tried: dict[str, str] = {}
    record = cli._record

    def record_then_let_another_process_try(settings, result):
        record(settings, result)
        tried[result.source] = _another_process_opens(settings.warehouse)

    monkeypatch.setattr(cli, "_record", record_then_let_another_process_try)
    assert main(["ingest", "events", "fx"]) == 0
    # After the first source's record, and the last's: refused, the lock named as this process's.
    assert set(tried) == {"events", "fx"}
    for source, said in tried.items():
        assert "lock" in said.lower() and f"(PID {os.getpid()})" in said, (source, said)
    assert _another_process_opens(harbor_env.warehouse) == "opened"
    with duckdb.connect(str(harbor_env.warehouse), read_only=True) as conn:
        recorded = conn.execute(
            "select distinct source_name, status from observability.ingestion_runs "
            "where run_id = 'run-holding-the-warehouse' order by source_name"
        ).fetchall()
    assert recorded == [("events", "success"), ("fx", "success")]


def test_a_warehouse_whose_folder_cannot_be_made_is_a_wrong_setting(harbor_env, monkeypatch, capsys, tmp_path):
    """A file where the warehouse's folder should be: a traceback once the warehouse was held up front (found by
    review; each source had failed on it in turn before, exit 4)."""
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(tmp_path / "a_file" / "sub" / "harbor.duckdb"))
    assert main(["ingest", "fx"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "cannot be created there: Not a directory (HARBOR_WAREHOUSE)" in err and "Traceback" not in err


def test_a_deleted_warehouse_forgets_the_state_of_every_source_of_the_run_first(harbor_env):
    """A deleted warehouse makes dlt's local state forgotten, or its cursor (and a load package it left pending,
    which carries that cursor) skips every row loaded before. The check was made as each source started: the
    first one's connection created the file, so the sources after it kept their state, loaded the pending package
    into the new warehouse and skipped the rest. Now the state of every source is forgotten before the file is."""
    from ingestion.demo.events import events_dir
    from ingestion.pipeline import make_pipeline
    from ingestion.sources.events import events_source
    from ingestion.sources.quarantine import Tally

    assert main(["ingest", "fx", "events"]) == 0
    lines = "select _file_name, _line_number from raw_events.events"
    with duckdb.connect(str(harbor_env.warehouse), read_only=True) as conn:
        loaded = set(conn.execute(lines).fetchall())
    # A newer day's events extracted but not loaded (an interrupted run), then the warehouse deleted.
    shop.advance_shop(harbor_env.shop_url, events_to=harbor_env.data_dir)
    pending = make_pipeline("events", harbor_env)
    pending.extract(events_source(bucket_url=str(events_dir(harbor_env.data_dir)), tally=Tally()))
    assert pending.list_extracted_load_packages()
    for path in (harbor_env.warehouse, harbor_env.warehouse.with_name(harbor_env.warehouse.name + ".wal")):
        path.unlink(missing_ok=True)
    assert main(["ingest", "fx", "events"]) == 0
    with duckdb.connect(str(harbor_env.warehouse), read_only=True) as conn:
        reloaded = set(conn.execute(lines).fetchall())
    assert loaded < reloaded, f"{len(loaded - reloaded)} of {len(loaded)} lines lost"


def test_ingesting_without_a_demo_shop_leaves_no_empty_sqlite_file(harbor_cli_env, settings, monkeypatch, capsys):
    """Serving the demo fx API read the demo shop's clock, and connecting created an empty shop.sqlite: the next
    run said "table 'customers' not found" instead of "no SQLite database"."""
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", settings.shop_url)
    monkeypatch.delenv("SOURCES__FX__BASE_URL", raising=False)
    shop_file = Path(sa.make_url(settings.shop_url).database)
    assert not shop_file.exists()
    assert main(["ingest", "fx"]) == 0
    assert main(["ingest", "shop"]) == 2
    assert not shop_file.exists()
    assert "no SQLite database at" in capsys.readouterr().err


def test_demo_create_takes_replace_or_if_missing_not_both(harbor_env, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "create", "--replace", "--if-missing"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_url_with_an_empty_password_is_not_shown_with_a_mask():
    """HARBOR_PG_PASSWORD defaults to empty: messages showed `postgres:***@`, a password that is not there."""
    assert shown_location("postgresql+psycopg2://postgres:@h:5432/db") == "postgresql+psycopg2://postgres@h:5432/db"
    assert shown_location("postgresql+psycopg2://u:secret@h/db") == "postgresql+psycopg2://u:***@h/db"


def test_a_syntax_error_in_the_dlt_config_says_where_it_is(tmp_path):
    """The message stopped at "A problem encountered when loading config.toml from paths [...]:", the line and
    column on the lines after it left out."""
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text("[load]\nworkers = 1\nbroken = [\n")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DLT_PROJECT_DIR"},
        "HARBOR_PROJECT_DIR": str(project),
        "HARBOR_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "HARBOR_DATA_DIR": str(tmp_path / "data"),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "ingestion.cli", "ingest", "events"], env=env, capture_output=True, text=True
    )
    assert completed.returncode == EXIT_BAD_CONFIG
    assert "config.toml" in completed.stderr and "at line" in completed.stderr, completed.stderr


def test_a_mistyped_key_in_the_dlt_config_files_is_refused_naming_it(tmp_path, monkeypatch):
    """dlt reads only the keys a source asks for: `lag_secnds` was ignored and the default lag used."""
    from ingestion.pipeline import refuse_unknown_settings
    from ingestion.settings import ConfigError, Settings
    from ingestion.sources.fx import fx_source

    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.fx]\npage_size = 50\nlag_secnds = 5\n")
    settings = Settings(tmp_path, tmp_path / "warehouse.duckdb", tmp_path / "data", "sqlite:///unused")
    monkeypatch.delenv("SOURCES__FX__LAG_SECONDS", raising=False)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) lag_secnds in \[sources.fx\]"):
        refuse_unknown_settings("fx", fx_source, settings)
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.fx]\npage_size = 50\nlag_seconds = 5\n")
    refuse_unknown_settings("fx", fx_source, settings)


def test_a_project_folder_that_does_not_exist_is_refused(monkeypatch, capsys, tmp_path):
    """A mistyped HARBOR_PROJECT_DIR got a new warehouse and data folder under it, and loaded nothing, exit 0."""
    monkeypatch.setenv("HARBOR_PROJECT_DIR", str(tmp_path / "nowhere"))
    assert main(["ingest", "events"]) == EXIT_BAD_CONFIG
    assert "HARBOR_PROJECT_DIR" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_events_without_their_folder_say_so(settings, caplog):
    """A mistyped HARBOR_DATA_DIR loaded no events without a word, as a quiet day would."""
    from ingestion.pipeline import ingest_events

    result = ingest_events(settings)
    assert result.tables.get("events") is None or result.tables["events"].loaded == 0
    assert f"events: no folder {settings.data_dir / 'events'}, so no events to load" in caplog.text


@pytest.mark.parametrize(
    ("source", "variable", "value", "said"),
    [
        ("shop", "SOURCES__SHOP__CHUNK_SIZE", "abc", "SOURCES__SHOP__CHUNK_SIZE='abc' is not an int"),
        ("fx", "RUNTIME__HTTP_SHOW_ERROR_BODY", "maybe", "RUNTIME__HTTP_SHOW_ERROR_BODY='maybe' is not a bool"),
        ("shop", "RUNTIME__LOG_LEVEL", "LOUD", "RUNTIME__LOG_LEVEL='LOUD' is not a log level"),
    ],
)
def test_a_setting_dlt_cannot_read_is_named_with_its_value(
    harbor_env, monkeypatch, capsys, source, variable, value, said
):
    """dlt named only the field ("Configured value for field `chunk_size` cannot be coerced"), and a log level it
    did not know stopped every command with "Unknown level: 'LOUD'"."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("OTHER__CHUNK_SIZE", "100")  # also ends in __CHUNK_SIZE, but holds a good value
    assert main(["ingest", source]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert said in err, err
    assert "OTHER__CHUNK_SIZE" not in err


def test_the_log_level_may_be_given_in_any_case(harbor_env, monkeypatch, capsys):
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "error")
    assert main(["ingest", "shop"]) == 0
    assert os.environ["RUNTIME__LOG_LEVEL"] == "ERROR"


def test_demo_advance_labels_each_tick_with_the_day_it_simulated(harbor_env, capsys):
    """The label showed the day after (the clock's midnight at the end of the tick)."""
    capsys.readouterr()
    assert main(["demo", "advance"]) == 0
    assert capsys.readouterr().out.startswith("tick 1 (2024-01-01): inserted")
    with sa.create_engine(harbor_env.shop_url).connect() as conn:
        newest = conn.execute(sa.text("select max(ordered_at) from orders")).scalar_one()
    assert str(newest).startswith("2024-01-01")


def test_a_clock_behind_the_warehouse_s_newest_load_exits_2_not_as_a_failed_load(harbor_env, capsys):
    """Nothing was read and no load failed: the fix is the clock, or a full refresh (exit 2, as a setting)."""
    assert main(["ingest", "shop"]) == 0
    with duckdb.connect(str(harbor_env.warehouse)) as conn:
        conn.execute(
            "insert into raw_shop._dlt_loads select cast(cast(load_id as double) + 3600 as varchar), schema_name, "
            "status, inserted_at, schema_version_hash from raw_shop._dlt_loads"
        )
    capsys.readouterr()

    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "harbor: error: source 'shop' cannot run: this machine's clock" in err
    assert "--full-refresh" in err


@pytest.mark.parametrize(
    ("variable", "said"),
    [
        ("SOURCES__SHOPP__TABLE_NAMES", "SOURCES__SHOPP__TABLE_NAMES"),
        ("SOURCES__SHOP_TABLE_NAMES", "SOURCES__SHOP_TABLE_NAMES"),
        ("sources__shop__table_names", "dlt reads environment variables in upper case: SOURCES__SHOP__TABLE_NAMES"),
    ],
)
def test_settings_for_a_source_harbor_does_not_have_are_refused_before_any_loads(
    harbor_env, capsys, monkeypatch, variable, said
):
    """dlt looks up only the sections a source asks for: each of these loaded every shop table, exit 0, the
    setting ignored without a word (found by review)."""
    monkeypatch.setenv(variable, '["orders"]')
    assert main(["ingest", "shop"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "settings for no source Harbor has" in err and said in err


def test_a_mistyped_source_section_in_the_dlt_config_files_is_refused(tmp_path):
    from ingestion.pipeline import refuse_unknown_source_sections
    from ingestion.settings import ConfigError, Settings

    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.shop]\nlag_seconds = 5\n[sources.shopp]\nschema = "x"\n')
    settings = Settings(tmp_path, tmp_path / "warehouse.duckdb", tmp_path / "data", "sqlite:///unused")
    with pytest.raises(ConfigError, match=r"\[sources.shopp\] in .*config.toml; its sources are events, fx, shop"):
        refuse_unknown_source_sections(settings)
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.shop]\nlag_seconds = 5\n")
    refuse_unknown_source_sections(settings)


def test_only_a_selection_dbt_ran_nothing_for_counts_as_matching_nothing(tmp_path):
    """A selector's methods live in selectors.yml (a stateful one may rightly select nothing), and with
    `--no-write-json` dbt writes no results to tell (found by review: both were refused)."""
    from ingestion.cli import _selected_nothing

    since = time.time() - 1
    assert not _selected_nothing(["--select", "fct_ordrs"], tmp_path, since)  # no run results written
    (tmp_path / "run_results.json").write_text(json.dumps({"results": []}))
    assert _selected_nothing(["--select", "fct_ordrs"], tmp_path, since)
    assert _selected_nothing(["--select=fct_ordrs"], tmp_path, since)
    assert _selected_nothing(["-sfct_ordrs"], tmp_path, since)  # click's short option, its value attached
    assert _selected_nothing(["-mfct_ordrs"], tmp_path, since)
    assert _selected_nothing(["-xsfct_ordrs"], tmp_path, since)
    assert not _selected_nothing(["-x", "--full-refresh"], tmp_path, since)
    assert not _selected_nothing(["--selector", "changed"], tmp_path, since)
    assert not _selected_nothing(["--select", "state:modified+", "--state", "prod"], tmp_path, since)
    assert not _selected_nothing(["--exclude", "gone"], tmp_path, since)


@pytest.mark.parametrize(
    "options",
    [
        ["--target", "pg"],
        ["--target=pg"],
        ["-t", "pg"],
        ["-tpg"],
        ["-xtpg"],  # fail fast, then the target (found by review)
        ["-xt", "pg"],
        ["-t", "dev", "--target-path", "x", "-tpg"],
    ],
)
def test_the_target_a_build_names_is_read_in_every_form_dbt_takes(options):
    """`-tpg` built PostgreSQL while Harbor took the default target: it checked the DuckDB file instead and built
    without the PostgreSQL warehouse's build lock."""
    from ingestion.cli import _dbt_target

    assert _dbt_target(["--select", "fct_orders", *options]) == "pg"


def test_demo_run_refuses_settings_for_no_source_before_the_shop_moves(harbor_cli_env, settings, monkeypatch, capsys):
    """The check ran inside the ingest, after `demo run` had created or moved the shop a day forward."""
    monkeypatch.setenv("SOURCES__SHOPP__TABLE_NAMES", '["orders"]')
    assert main(["demo", "run", "--no-docs"]) == EXIT_BAD_CONFIG
    assert "SOURCES__SHOPP__TABLE_NAMES" in capsys.readouterr().err
    assert not settings.data_dir.exists() or not any(settings.data_dir.iterdir())  # no demo shop made
