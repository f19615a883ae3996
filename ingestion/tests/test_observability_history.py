"""The on-run-end hook's history and the ingestion run records, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ingestion.observability import IngestionRun, TableLoad, record_ingestion_run
from ingestion.observability.report import build_report_data
from ingestion.observability.warehouse import connected
from ingestion.tests.obs_project import make_project
from ingestion.transform import dbt_executable


def _location(project, postgres_url):
    return postgres_url if project.target == "postgres" else project.path / "warehouse.duckdb"


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_every_invocation_is_appended_with_results_samples_and_nodes(tmp_path, adapter, request):
    postgres_url = request.getfixturevalue("postgres_url") if adapter == "postgres" else None
    project = make_project(tmp_path / "project", postgres_url=postgres_url)
    project.env["HARBOR_RUN_ID"] = "run-42"

    first = project.dbt("build")
    assert first.returncode == 1, first.stdout  # the unique test fails, on purpose
    assert "hook: obs_it.on-run-end.0" in first.stdout and "OK hook" in first.stdout
    assert project.dbt("source", "freshness").returncode == 0
    project.env["HARBOR_RUN_ID"] = "run-43"
    project.dbt("build")

    with connected(_location(project, postgres_url), read_only=True) as wh:
        invocations = wh.query(
            "select command, job_run_id, target_name, nodes_count from observability.dbt_invocations "
            "order by run_started_at"
        )
        assert [(i["command"], i["job_run_id"]) for i in invocations] == [
            ("build", "run-42"),
            ("freshness", "run-42"),
            ("build", "run-43"),
        ]
        runs = wh.query(
            "select name, status, resource_type, execution_time, materialization from observability.dbt_run_results"
        )
        assert len([r for r in runs if r["resource_type"] != "source"]) == 2 * 5  # append-only: both builds
        model_runs = [r for r in runs if r["name"] == "orders_clean"]
        assert {r["materialization"] for r in model_runs} == {"view"}
        assert all(r["execution_time"] > 0 for r in model_runs)

        tests = wh.query(
            "select id, test_short_name, status, failures, severity, table_name, column_name, test_params, "
            "model_unique_id from observability.elementary_test_results where invocation_id = "
            "(select invocation_id from observability.dbt_invocations where job_run_id = 'run-42' "
            "and command = 'build')"
        )
        by_name = {(t["test_short_name"], t["column_name"]): t for t in tests}
        unique = by_name[("unique", "order_id")]
        assert (unique["status"], unique["failures"], unique["severity"]) == ("fail", 1, "error")
        assert unique["table_name"] == "orders_clean"
        assert unique["model_unique_id"] == "model.obs_it.orders_clean"
        assert json.loads(unique["test_params"])["column_name"] == "order_id"
        assert by_name[("not_null", "amount")]["status"] == "warn"
        assert by_name[("not_null", "order_id")]["status"] == "pass"

        samples = wh.query(
            "select result_row from observability.test_result_rows where elementary_test_results_id = :id",
            id=unique["id"],
        )
        assert [json.loads(s["result_row"]) for s in samples] == [{"unique_field": 2, "n_records": 2}]

        freshness = wh.query("select unique_id, status, max_loaded_at from observability.dbt_source_freshness_results")
        assert [(f["unique_id"], f["status"]) for f in freshness] == [("source.obs_it.shop.orders", "pass")]
        assert str(freshness[0]["max_loaded_at"]).startswith("2024-01-03 10:00")

        # Nodes describe the project's current state: rewritten, never duplicated.
        (models,) = wh.query("select count(*) as n, min(depends_on_nodes) as deps from observability.dbt_models")
        assert models["n"] == 1 and json.loads(models["deps"]) == ["seed.obs_it.orders"]
        assert wh.query("select count(*) as n from observability.dbt_tests")[0]["n"] == 3
        assert wh.query("select count(*) as n from observability.dbt_seeds")[0]["n"] == 1
        assert wh.query("select name, loaded_at_field from observability.dbt_sources") == [
            {"name": "orders", "loaded_at_field": "updated_at"}
        ]

        # The report adapter reads the same tables on either adapter.
        report = build_report_data(wh)
    (unique_result,) = [
        r for r in report["test_results"]["model.obs_it.orders_clean"] if r["metadata"]["test_name"] == "unique"
    ]
    assert unique_result["test_results"]["results_sample"] == [{"unique_field": 2, "n_records": 2}]


def test_two_invocations_writing_history_at_once_on_postgresql_leave_one_copy_of_the_nodes(tmp_path, postgres_url):
    """Each rewrites the node tables (delete, then insert): the second's delete waited for the first's rows, did
    not see its new ones, and both copies stayed (every test twice). Here the first writer is a transaction doing
    what the hook does, under the hook's lock, while a real `dbt source freshness` starts."""
    project = make_project(tmp_path / "project", postgres_url=postgres_url)
    assert project.dbt("build").returncode == 1  # the history exists (a test fails on purpose)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as writer:
        writer.execute(sa.text("select pg_advisory_xact_lock(hashtext('harbor observability history'))"))
        writer.execute(sa.text("create temporary table saved as select * from observability.dbt_tests"))
        writer.execute(sa.text("delete from observability.dbt_tests"))
        writer.execute(sa.text("insert into observability.dbt_tests select * from saved"))
        other = subprocess.Popen(
            [dbt_executable(), "source", "freshness", "--target", project.target],
            cwd=project.path,
            env=project.env,
            stdout=subprocess.DEVNULL,
        )
        # Until the other invocation's hook waits for the lock: a fixed sleep let a slow start commit first, and
        # the test then checked nothing.
        waiting = (
            "select count(*) from pg_locks where locktype = 'advisory' and not granted "
            "and database = (select oid from pg_database where datname = current_database())"
        )
        deadline = time.monotonic() + 120
        with engine.connect() as watcher:
            while watcher.execute(sa.text(waiting)).scalar() == 0:
                assert other.poll() is None and time.monotonic() < deadline, "the hook never waited for the lock"
                time.sleep(0.2)
        writer.commit()
        assert other.wait(timeout=120) == 0
    with engine.connect() as reader:
        counts = reader.execute(sa.text("select count(*), count(distinct unique_id) from observability.dbt_tests"))
        assert tuple(counts.one()) == (3, 3)
    engine.dispose()


def test_the_hook_can_be_switched_off(tmp_path):
    project = make_project(tmp_path / "project")
    result = project.dbt("seed", "--vars", "{observability_enabled: false}")
    assert result.returncode == 0, result.stdout
    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        assert wh.query(
            "select count(*) as n from information_schema.schemata where schema_name = 'observability'"
        ) == [{"n": 0}]


def test_dates_in_vars_test_arguments_and_meta_are_recorded_as_text(tmp_path):
    """YAML reads `2024-01-01` as a date, which dbt's `tojson` cannot write: the hook failed, and from then on
    nothing was recorded."""
    project = make_project(tmp_path / "project")
    (project.path / "macros" / "test_checked_since.sql").write_text(
        "{% test checked_since(model, column_name, since) %}select * from {{ model }} where false{% endtest %}\n"
    )
    models = project.path / "models" / "_models.yml"
    models.write_text(
        models.read_text()
        .replace("    description: orders, once\n", "    description: orders, once\n    meta: {since: 2024-01-01}\n")
        .replace(
            "          - not_null\n",
            "          - not_null\n          - checked_since:\n              arguments:\n"
            "                since: [2024-01-02]\n",
            1,
        )
    )
    result = project.dbt("build", "--vars", "{as_of: 2024-01-03}")
    assert "OK hook" in result.stdout, result.stdout

    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        (invocation,) = wh.query("select invocation_vars from observability.dbt_invocations")
        assert json.loads(invocation["invocation_vars"]) == {"as_of": "2024-01-03"}
        (model,) = wh.query("select meta from observability.dbt_models")
        assert json.loads(model["meta"]) == {"since": "2024-01-01"}
        for table in ("dbt_tests", "elementary_test_results"):
            (checked,) = wh.query(f"select test_params from observability.{table} where test_params like '%since%'")
            assert json.loads(checked["test_params"])["since"] == ["2024-01-02"]


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_ingestion_runs_are_recorded_per_table(tmp_path, adapter, request, monkeypatch):
    monkeypatch.setenv("HARBOR_RUN_ID", "run-7")
    location = request.getfixturevalue("postgres_url") if adapter == "postgres" else tmp_path / "wh.duckdb"
    started = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    run = IngestionRun(
        source_name="shop",
        started_at=started,
        completed_at=started + timedelta(seconds=3.5),
        load_id="1767268800.1",
        tables=[TableLoad("orders", 10, rows_quarantined=2), TableLoad("customers", 4, rows_loaded=4)],
    )
    assert record_ingestion_run(location, run) == 2
    assert record_ingestion_run(location, IngestionRun("shop", started, started, status="error", error="boom")) == 1
    with connected(location) as wh:
        rows = wh.query(
            "select run_id, table_name, status, rows_extracted, rows_loaded, rows_quarantined, duration_seconds, "
            "load_id from observability.ingestion_runs order by table_name"
        )
    assert rows == [
        {
            "run_id": "run-7",
            "table_name": "*",
            "status": "error",
            "rows_extracted": 0,
            "rows_loaded": 0,
            "rows_quarantined": 0,
            "duration_seconds": 0.0,
            "load_id": None,
        },
        {
            "run_id": "run-7",
            "table_name": "customers",
            "status": "success",
            "rows_extracted": 4,
            "rows_loaded": 4,
            "rows_quarantined": 0,
            "duration_seconds": 3.5,
            "load_id": "1767268800.1",
        },
        {
            "run_id": "run-7",
            "table_name": "orders",
            "status": "success",
            "rows_extracted": 10,
            "rows_loaded": 8,
            "rows_quarantined": 2,
            "duration_seconds": 3.5,
            "load_id": "1767268800.1",
        },
    ]


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_a_freshness_check_that_cannot_run_is_recorded_and_exported(tmp_path, adapter, request):
    """A `loaded_at_field` that is not there is a runtime error of `dbt source freshness`: the history kept only
    the sources that passed, so the report and the metrics said nothing of it (the lag metric read 0: fresh)."""
    from ingestion.observability.metrics import collect_metrics, to_prometheus

    postgres_url = request.getfixturevalue("postgres_url") if adapter == "postgres" else None
    project = make_project(tmp_path / "project", postgres_url=postgres_url)
    models = project.path / "models" / "_models.yml"
    models.write_text(
        models.read_text().replace(
            "        description: raw orders\n",
            "        description: raw orders\n"
            "      - name: orders_unchecked\n"
            "        identifier: orders\n"
            "        loaded_at_field: no_such_column\n",
        )
    )
    assert project.dbt("build").returncode == 1  # the unique test fails, on purpose
    assert project.dbt("source", "freshness").returncode == 1
    with connected(_location(project, postgres_url), read_only=True) as wh:
        freshness = wh.query(
            "select unique_id, status, max_loaded_at, max_loaded_at_time_ago_in_s "
            "from observability.dbt_source_freshness_results order by unique_id"
        )
        lines = to_prometheus(collect_metrics(wh)).splitlines()
        report = build_report_data(wh)
    checks = [r for results in report["test_results"].values() for r in results]
    (unchecked,) = [r for r in checks if r["metadata"]["test_unique_id"] == "source.obs_it.shop.orders_unchecked"]
    assert (
        unchecked["metadata"]["latest_run_status"] == "error"
        and "no_such_column" in unchecked["test_results"]["error_message"]
    )
    assert [(f["unique_id"], f["status"], f["max_loaded_at"]) for f in freshness][1:] == [
        ("source.obs_it.shop.orders_unchecked", "runtime error", None)
    ]
    assert freshness[0]["status"] == "pass"
    assert 'harbor_source_freshness_failed{source="obs_it.shop.orders_unchecked"} 1' in lines
    assert 'harbor_source_freshness_failed{source="obs_it.shop.orders"} 0' in lines
    assert not [
        line for line in lines if line.startswith("harbor_source_freshness_lag_seconds") and "unchecked" in line
    ]
