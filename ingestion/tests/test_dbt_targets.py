"""Which warehouse and session `harbor` runs dbt against: the target follows ingestion's destination, PostgreSQL
sessions are in UTC whatever the caller's PGTZ, and a session in another zone stops before building anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from ingestion import cli
from ingestion.tests.warehouses import FX_STAGING
from ingestion.transform import dbt_env, dbt_executable, default_target


@pytest.mark.parametrize(
    ("environment", "target"),
    [
        ({}, "dev"),
        ({"HARBOR_DESTINATION": "postgres"}, "pg"),
        ({"HARBOR_DESTINATION": "POSTGRES"}, "pg"),
        ({"HARBOR_DESTINATION": "postgres", "HARBOR_TARGET": "ci"}, "ci"),
        ({"HARBOR_DESTINATION": "duckdb", "HARBOR_TARGET": "pg"}, "pg"),
    ],
)
def test_the_dbt_target_follows_the_ingestion_destination_unless_one_is_set(environment, target, settings, monkeypatch):
    for name in ("HARBOR_DESTINATION", "HARBOR_TARGET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_target() == target
    assert dbt_env(settings)["HARBOR_TARGET"] == target


def test_dbt_sessions_are_in_utc_and_one_in_another_zone_stops_before_building(settings, pg_env, monkeypatch):
    monkeypatch.setenv("PGTZ", "America/New_York")
    monkeypatch.setenv("HARBOR_TARGET", "pg")
    env = dbt_env(settings)
    assert env["PGTZ"] == "UTC"  # the caller's zone would shift every timestamp staging casts

    command = [dbt_executable(), "run", "--select", "stg_fx__exchange_rates"]
    by_hand = subprocess.run(
        command, cwd=settings.project_dir, env={**env, "PGTZ": "America/New_York"}, capture_output=True, text=True
    )
    assert by_hand.returncode != 0
    assert "time zone is America/New_York, not UTC" in by_hand.stdout
    assert "START sql" not in by_hand.stdout  # stopped before the model

    # UTC by another name is UTC: the hook reads the zone's offsets, not its name
    in_utc = subprocess.run(
        command, cwd=settings.project_dir, env={**env, "PGTZ": "Etc/Universal"}, capture_output=True, text=True
    )
    assert in_utc.returncode == 0, in_utc.stdout[-3000:]


@pytest.mark.usefixtures("harbor_cli_env")
def test_build_scores_the_artifacts_of_the_target_path_it_was_given(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARBOR_TARGET", "ci")
    settings.warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(settings.warehouse)).close()  # no raw tables: staging reads empty stand-ins
    elsewhere = tmp_path / "elsewhere"

    assert cli.main(["build", *FX_STAGING, "--target-path", str(elsewhere)]) == 0
    printed = capsys.readouterr().out
    assert "no score" not in printed
    assert "quality: 100.0% of tests passed" in printed


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({"HARBOR_TARGET": "pg"}, "HARBOR_TARGET=pg builds postgres but ingestion loads duckdb"),
        ({"HARBOR_TARGET": "dev", "HARBOR_DESTINATION": "postgres"}, "HARBOR_TARGET=dev builds duckdb but"),
        # dbt said so only after the shop had moved a day forward and every source was ingested
        ({"HARBOR_TARGET": "prod"}, "dbt target 'prod' (HARBOR_TARGET) is not in"),
    ],
)
def test_demo_run_refuses_to_load_one_warehouse_and_build_another(settings, monkeypatch, capsys, environment, said):
    """HARBOR_TARGET=pg alone loaded the new day into DuckDB and built PostgreSQL from the day before's data."""
    for name in ("HARBOR_DESTINATION", "HARBOR_TARGET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["demo", "run", "--no-docs"]) == 2
    assert said in capsys.readouterr().err
    assert not settings.data_dir.exists() or not any(settings.data_dir.iterdir())  # nothing created or loaded


@pytest.mark.usefixtures("harbor_cli_env")
def test_demo_run_reads_the_engine_of_a_target_from_the_profiles_it_uses(settings, tmp_path, monkeypatch, capsys):
    """A team's own target was not in Harbor's hard-coded list of engines, so a split went unnoticed."""
    (tmp_path / "profiles.yml").write_text(
        "harbor:\n  target: shared\n  outputs:\n    shared:\n      type: postgres\n      host: 127.0.0.1\n"
    )
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.delenv("HARBOR_DESTINATION", raising=False)
    monkeypatch.setenv("HARBOR_TARGET", "shared")
    assert cli.main(["demo", "run", "--no-docs"]) == 2
    assert "HARBOR_TARGET=shared builds postgres but ingestion loads duckdb" in capsys.readouterr().err


def test_a_postgres_setting_set_but_empty_is_its_default_for_ingestion_and_dbt_alike(settings, monkeypatch):
    """An empty HARBOR_PG_DATABASE loaded raw into the server's default database while dbt built another."""
    from ingestion.pipeline import postgres_warehouse_url

    for name in ("HARBOR_PG_HOST", "HARBOR_PG_PORT", "HARBOR_PG_USER", "HARBOR_PG_DATABASE"):
        monkeypatch.setenv(name, "")
    assert postgres_warehouse_url() == "postgresql://postgres:@127.0.0.1:5432/harbor"
    debug = subprocess.run(
        [dbt_executable(), "debug", "--target", "pg"],
        cwd=settings.project_dir,
        env=dbt_env(settings),
        capture_output=True,
        text=True,
    )
    for shown in ("host: 127.0.0.1", "port: 5432", "user: postgres", "database: harbor"):
        assert shown in debug.stdout, debug.stdout[-3000:]


@pytest.mark.parametrize(
    ("host", "for_dlt", "for_sqlalchemy"),
    [
        ("db.internal", "@db.internal:5433/harbor", "@db.internal:5433/harbor"),
        ("::1", "@[::1]:5433/harbor", "@[::1]:5433/harbor"),
        ("[::1]", "@[::1]:5433/harbor", "@[::1]:5433/harbor"),
        ("fe80::1%eth0", "@[fe80::1%25eth0]:5433/harbor", "@[fe80::1%25eth0]:5433/harbor"),
        ("/run/pg", "@%2Frun%2Fpg:5433/harbor", "@/harbor?host=%2Frun%2Fpg&port=5433"),
    ],
    ids=["name", "ipv6", "ipv6-in-brackets", "ipv6-with-zone", "socket-directory"],
)
def test_the_postgres_warehouse_host_is_written_as_each_reader_of_the_url_reads_it(
    monkeypatch, host, for_dlt, for_sqlalchemy
):
    """libpq and dbt take HARBOR_PG_HOST as a name, an address or a socket directory; in a URL as it stood, an
    IPv6 address or a directory was read as another host, port or database."""
    from ingestion.pipeline import postgres_warehouse_sqlalchemy_url, postgres_warehouse_url

    monkeypatch.setenv("HARBOR_PG_HOST", host)
    monkeypatch.setenv("HARBOR_PG_USER", "postgres")
    monkeypatch.delenv("HARBOR_PG_PASSWORD", raising=False)
    monkeypatch.setenv("HARBOR_PG_PORT", "5433")
    monkeypatch.setenv("HARBOR_PG_DATABASE", "harbor")
    assert postgres_warehouse_url() == f"postgresql://postgres:{for_dlt}"
    assert postgres_warehouse_sqlalchemy_url() == f"postgresql+psycopg2://postgres:{for_sqlalchemy}"
    monkeypatch.setenv("HARBOR_PG_PASSWORD", "pa ss@/")  # escaped in both, so masked in any message that shows one
    assert ":pa%20ss%40%2F@" in postgres_warehouse_url() and ":pa%20ss%40%2F@" in postgres_warehouse_sqlalchemy_url()


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_second_build_of_one_postgres_warehouse_waits_for_the_first(settings, pg_env, monkeypatch):
    """Two at once created the same relations: the second failed ("relation ... already exists"), 40 skipped."""
    import os
    import time

    from ingestion.pipeline import one_build_at_a_time

    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.delenv("HARBOR_TARGET", raising=False)
    command = [
        sys.executable,
        "-m",
        "ingestion.cli",
        "build",
        "--select",
        "currencies",
        "--indirect-selection",
        "cautious",
    ]
    with one_build_at_a_time():  # the first build, as far as the second can tell
        second = subprocess.Popen(
            command, env=dict(os.environ), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        deadline = time.monotonic() + 60
        waiting = ""
        while "waiting for it to finish" not in waiting and time.monotonic() < deadline:
            waiting += second.stderr.readline()
        assert "another harbor build is building this warehouse" in waiting
        time.sleep(1)
        assert second.poll() is None  # still waiting
    assert second.wait(timeout=120) == 0


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize("command", [["ingest"], ["demo", "run", "--no-docs"]])
def test_a_postgres_warehouse_database_not_created_yet_is_said_once_before_anything_runs(
    settings, monkeypatch, capsys, command
):
    """Every source failed on it in turn, each with SQLAlchemy's text, and the run exited 4 (a load failed)."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.delenv("HARBOR_TARGET", raising=False)
    monkeypatch.setenv("HARBOR_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("HARBOR_PG_DATABASE", "harbor_not_created_yet")
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("harbor_not_created_yet") == 2, err  # one line: the name, and the command that makes it
    assert "does not exist on 127.0.0.1:5432" in err and "createdb -h 127.0.0.1 -p 5432 harbor_not_created_yet" in err
    assert not settings.data_dir.exists() or not any(settings.data_dir.iterdir())  # no demo shop made or moved


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize(
    ("variable", "value", "exit_code", "said"),
    [
        ("HARBOR_PG_PORT", "1", 3, "the PostgreSQL warehouse on 127.0.0.1:1 is unreachable after 2 attempt(s)"),
        ("HARBOR_PG_USER", "no_such_role", 2, 'FATAL:  role "no_such_role" does not exist (HARBOR_PG_USER'),
    ],
    ids=["down", "unknown-role"],
)
def test_a_postgres_warehouse_down_or_refusing_is_said_once_with_its_exit_code(
    monkeypatch, capsys, variable, value, exit_code, said
):
    """A server that was down failed every source in turn with SQLAlchemy's text, exit 4 (a load failed), with no
    retry; a role it does not know did the same, where the same mistake in the shop's URL is a wrong setting."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.delenv("HARBOR_TARGET", raising=False)
    monkeypatch.setenv("HARBOR_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv(variable, value)
    assert cli.main(["ingest", "events", "fx"]) == exit_code
    err = capsys.readouterr().err
    assert said in err and err.count("harbor: error:") == 1, err


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_postgres_warehouse_down_under_json_logs_is_said_in_json_lines_only(monkeypatch, capsys):
    """The check's retry warnings came before the logs were set up, and the closing error was printed as text:
    a log collector reading JSON lines met two kinds of line it could not parse."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.delenv("HARBOR_TARGET", raising=False)
    monkeypatch.setenv("HARBOR_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("HARBOR_PG_PORT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    assert cli.main(["ingest", "events", "--json-logs"]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    said = [line["message"] for line in lines]
    assert any("retrying" in message for message in said), said
    assert said[-1].startswith("harbor: error: the PostgreSQL warehouse on 127.0.0.1:1 is unreachable"), said
    assert lines[-1]["exit_code"] == 3


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_demo_run_with_json_logs_says_why_it_has_no_report_in_a_json_line(monkeypatch, capsys):
    """`harbor: no report: ...` was printed as text between the JSON lines (found by review)."""
    monkeypatch.setenv("HARBOR_LOG_FORMAT", "json")
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.delenv("HARBOR_TARGET", raising=False)
    monkeypatch.setenv("HARBOR_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("HARBOR_PG_PORT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    assert cli.main(["demo", "run", "--no-docs"]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(line["message"].startswith("harbor: no report:") for line in lines), lines


# Process handling: dbt runs as a child of `harbor` ----------------------------------------------------------

FAKE_DBT = """#!/bin/bash
trap 'kill $!; echo "dbt: cancelled its queries"; exit 1' INT
trap 'kill $!; exit 143' TERM
sleep 60 >/dev/null 2>&1 &
echo $$ > "$DBT_PID_FILE"
wait
"""

RUNNER = """
import sys
import ingestion.transform as transform
from ingestion.settings import Settings

transform.dbt_executable = lambda: sys.argv[1]
try:
    transform.run_dbt(Settings.from_env(), "debug")
except transform.DbtInterrupted as error:
    print(error, flush=True)
    sys.exit(error.returncode)
"""


def _harbor_running_a_slow_dbt(tmp_path) -> tuple[subprocess.Popen, int]:
    """A process running `run_dbt` over a stand-in dbt that sleeps; returns it and the stand-in's PID."""
    fake = tmp_path / "dbt"
    fake.write_text(FAKE_DBT)
    fake.chmod(0o755)
    pid_file = tmp_path / "dbt.pid"
    env = {**os.environ, "DBT_PID_FILE": str(pid_file), "HARBOR_WAREHOUSE": str(tmp_path / "w.duckdb")}
    harbor = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(fake)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As from a terminal: a shell that started the tests in the background may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            return harbor, int(pid_file.read_text())
        time.sleep(0.05)
    harbor.kill()
    raise AssertionError("the stand-in dbt never started")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_dbt_dies_with_the_harbor_process_that_started_it(tmp_path):
    """`harbor build` killed (a CI job cancelled, `kill`) left dbt building on its own with the build lock
    released, and the next build ran beside it (found by review)."""
    harbor, dbt = _harbor_running_a_slow_dbt(tmp_path)
    os.kill(harbor.pid, signal.SIGKILL)
    harbor.wait()
    for _ in range(100):
        if not _alive(dbt):
            break
        time.sleep(0.05)
    assert not _alive(dbt)


def test_ctrl_c_lets_dbt_finish_cancelling_and_says_so_in_one_line(tmp_path):
    """Ctrl-C killed dbt a quarter second after it, mid-cancel (nodes printed as errors, a traceback)."""
    harbor, _ = _harbor_running_a_slow_dbt(tmp_path)
    os.killpg(harbor.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole process group
    out, _ = harbor.communicate(timeout=30)
    assert harbor.returncode == 130
    assert out.splitlines() == ["dbt: cancelled its queries", "dbt debug was interrupted; run it again to finish"]
