"""Alerts to a local Slack-compatible receiver, the Prometheus text file and Grafana dashboard, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import duckdb
import pytest

from ingestion import cli, runlog
from ingestion.observability import IngestionRun, TableLoad, record_ingestion_run
from ingestion.observability.alerts import (
    WEBHOOK_ENV,
    Alert,
    FailedBuild,
    Problem,
    alert_for_latest_run,
    send_alert,
    slack_payload,
)
from ingestion.observability.metrics import Metric, collect_metrics, grafana_dashboard, to_prometheus
from ingestion.observability.warehouse import connected
from ingestion.settings import Settings
from ingestion.tests.obs_project import make_project


@pytest.fixture(scope="module")
def warehouse_with_a_failed_run(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("alerts") / "project")
    project.env["HARBOR_RUN_ID"] = "run-alerts"
    assert project.dbt("build").returncode == 1  # one failing test, one warning
    location = project.path / "warehouse.duckdb"
    started = datetime(2026, 1, 1, tzinfo=UTC)
    record_ingestion_run(
        location,
        IngestionRun(
            "shop",
            started,
            started + timedelta(seconds=2),
            [TableLoad("orders", 5, rows_quarantined=1)],
            load_id="1.2",
            run_id="run-alerts",
        ),
    )
    return location


@pytest.fixture
def copy_of_the_failed_run(warehouse_with_a_failed_run, tmp_path):
    """A copy a test may change, leaving the module's warehouse as it was for the others."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse_with_a_failed_run, copy)
    return copy


def test_a_failed_run_posts_a_critical_alert(warehouse_with_a_failed_run, receiver, monkeypatch):
    url, received = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    with connected(warehouse_with_a_failed_run, read_only=True) as wh:
        alert = alert_for_latest_run(wh, report_url="file:///reports/harbor-report.html")
    assert alert is not None and alert.severity == "critical"
    assert send_alert(alert) is True

    (message,) = received
    assert message["path"] == "/services/T000/B000/XXX" and message["type"] == "application/json"
    payload = message["json"]
    assert payload["text"].startswith("[CRITICAL] Harbor run: 1 failed, 1 warning(s)")
    assert payload["run_id"] == "run-alerts" and payload["report_url"] == "file:///reports/harbor-report.html"
    failures = {(f["name"], f["status"]) for f in payload["failures"]}
    assert failures == {("unique_orders_clean_order_id", "fail"), ("not_null_orders_clean_amount", "warn")}
    assert "unique_orders_clean_order_id" in payload["attachments"][0]["text"]


def test_no_webhook_sends_nothing_and_is_not_an_error(warehouse_with_a_failed_run, receiver, monkeypatch):
    _, received = receiver
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    monkeypatch.setenv("DLT_PROJECT_DIR", str(warehouse_with_a_failed_run.parent))  # no .dlt/secrets.toml here
    with connected(warehouse_with_a_failed_run, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None
    assert send_alert(alert) is False
    assert received == []


def test_a_later_freshness_check_or_another_run_s_failed_source_does_not_hide_anything(copy_of_the_failed_run):
    """`dbt source freshness` runs the project's hooks, so it is recorded as an invocation too: the alert still
    reports the newest build's failures. A source whose latest ingestion failed is reported whatever run id that
    ingestion had (`harbor ingest` and `harbor build` started one after the other have two)."""
    copy = copy_of_the_failed_run
    with duckdb.connect(str(copy)) as conn:
        conn.execute(
            "insert into observability.dbt_invocations (invocation_id, job_run_id, command, run_started_at) "
            "values ('freshness-later', 'run-freshness', 'freshness', now()::timestamp + interval 1 hour)"
        )
    started = datetime.now(UTC)
    failed_events = IngestionRun("events", started, started, status="error", error="boom", run_id="run-ingest")
    record_ingestion_run(copy, failed_events)
    with connected(copy, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None and alert.severity == "critical" and alert.run_id == "run-alerts"
    problems = {(p.kind, p.name, p.status) for p in alert.problems}
    assert ("test", "unique_orders_clean_order_id", "fail") in problems
    assert ("ingestion", "events.*", "error") in problems
    # The alert's run id is the newest build's; the failed ingestion says its own.
    (ingestion,) = [p for p in alert.problems if p.kind == "ingestion"]
    assert ingestion.message == "boom (run run-ingest)"

    later = started + timedelta(seconds=1)
    record_ingestion_run(copy, IngestionRun("events", later, later, [TableLoad("events", 3)], run_id="run-fixed"))
    with connected(copy, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert not [p for p in alert.problems if p.kind == "ingestion"]  # its latest run loaded: no longer news


def test_a_build_that_stopped_before_recording_anything_is_the_alert_not_the_build_before(
    warehouse_with_a_failed_run, copy_of_the_failed_run, tmp_path, receiver, monkeypatch, capsys
):
    """A model that does not compile stops `dbt build` before its on-run-end hook, so the history holds nothing
    of it: `demo run` said "0 failing test(s)" of the build before and sent no alert."""
    url, received = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    with connected(warehouse_with_a_failed_run, read_only=True) as wh:
        same_run = alert_for_latest_run(wh, failed_build=FailedBuild("run-alerts", 1))
        alert = alert_for_latest_run(wh, failed_build=FailedBuild("run-next", 2))
    assert same_run is not None and {p.name for p in same_run.problems} == {
        "unique_orders_clean_order_id",
        "not_null_orders_clean_amount",
    }
    assert alert is not None and (alert.severity, alert.run_id, alert.invocation_id) == ("critical", "run-next", None)
    assert [(p.kind, p.name, p.status) for p in alert.problems] == [("dbt", "build", "error")]
    assert "exited with 2 before recording any result" in alert.problems[0].message

    # Through the command: `demo run` hands the build's exit code to the report it writes after a failure.
    copy = copy_of_the_failed_run
    monkeypatch.setenv("HARBOR_RUN_ID", "run-next")
    settings = Settings(tmp_path, copy, tmp_path / "data", "sqlite:///unused.sqlite")  # reports/ under tmp_path
    cli._report_what_failed(settings, build_exit_code=2)
    (message,) = received
    assert message["json"]["text"] == "[CRITICAL] Harbor run: 1 failed, 0 warning(s)"
    assert message["json"]["run_id"] == "run-next"
    assert "dbt build exited with 2 before recording any result" in capsys.readouterr().err


def test_a_retry_under_one_run_id_that_fixed_a_failure_is_not_alerted(copy_of_the_failed_run):
    """An orchestrator retries under one HARBOR_RUN_ID: the report said 0 failing tests, the alert was still
    critical with the first attempt's failure. Each node's newest result in the run counts."""
    copy = copy_of_the_failed_run
    with duckdb.connect(str(copy)) as conn:
        (first,) = conn.sql(
            "select invocation_id from observability.dbt_invocations where job_run_id = 'run-alerts' "
            "and command = 'build'"
        ).fetchone()
        conn.execute(
            "insert into observability.dbt_invocations select * replace ('retry' as invocation_id, "
            "run_started_at + interval 1 minute as run_started_at) from observability.dbt_invocations "
            "where invocation_id = ?",
            [first],
        )
        conn.execute(
            "insert into observability.dbt_run_results select * replace ('retry' as invocation_id, "
            "'retry.' || unique_id as model_execution_id, 'pass' as status) from observability.dbt_run_results "
            "where invocation_id = ? and name = 'unique_orders_clean_order_id'",
            [first],
        )
    with connected(copy, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None and alert.invocation_id == "retry"
    assert [(p.name, p.status) for p in alert.problems] == [("not_null_orders_clean_amount", "warn")]
    assert alert.severity == "warning"


def test_a_failed_ingestion_alerts_before_any_dbt_run(tmp_path, receiver, monkeypatch, capsys):
    location = tmp_path / "warehouse.duckdb"
    started = datetime.now(UTC)
    failed = IngestionRun("shop", started, started, status="error", error="unreachable", run_id="run-down")
    record_ingestion_run(location, failed)
    with connected(location, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None and alert.severity == "critical" and alert.invocation_id is None
    assert [(p.name, p.message) for p in alert.problems] == [("shop.*", "unreachable (run run-down)")]

    # Through the commands: there is no dbt history to report on, and the alert went down with the report.
    url, received = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))  # no .dlt/secrets.toml here
    settings = Settings(tmp_path, location, tmp_path / "data", "sqlite:///unused.sqlite")
    cli._report_what_failed(settings)
    assert "no report" in capsys.readouterr().err
    assert cli.main(["report", "--warehouse", str(location), "--output", str(tmp_path / "r.html")]) == 2
    assert "no `harbor build` has run on it yet" in capsys.readouterr().err
    assert [m["json"]["text"] for m in received] == ["[CRITICAL] Harbor run: 1 failed, 0 warning(s)"] * 2


def test_metrics_that_cannot_be_written_still_send_the_alert(copy_of_the_failed_run, tmp_path, receiver, monkeypatch):
    url, received = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    (tmp_path / "out" / "harbor-metrics.prom").mkdir(parents=True)  # a folder where the file goes
    code = cli.main(
        ["report", "--warehouse", str(copy_of_the_failed_run), "--output", str(tmp_path / "out" / "r.html")]
    )
    assert code == 2
    assert [m["json"]["text"] for m in received] == ["[CRITICAL] Harbor run: 1 failed, 1 warning(s)"]


def test_a_webhook_that_fails_is_a_warning_not_a_crash(caplog):
    """A revoked hook answers 403/404, an unreachable one refuses: the report and the run stay successful."""

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alert = Alert("critical", "r1", "i1", [Problem("test", "t", "fail")])
    try:
        assert send_alert(alert, webhook_url=f"http://127.0.0.1:{server.server_port}/hook") is False
    finally:
        server.shutdown()
        server.server_close()
    assert send_alert(alert, webhook_url=f"http://127.0.0.1:{server.server_port}/hook") is False  # now closed
    assert sum("the webhook failed" in record.getMessage() for record in caplog.records) == 2
    assert send_alert(alert, webhook_url="not-a-url") is False  # a wrong setting: named, not a failed report
    assert send_alert(alert, webhook_url="file:///etc/hostname") is False  # urllib would open it, with no status
    assert send_alert(alert, webhook_url="http://[::1/hook") is False
    assert sum("is not an http(s) URL" in record.getMessage() for record in caplog.records) == 3


def test_warnings_and_info_follow_the_minimum_severity(receiver):
    url, received = receiver
    warning = Alert("warning", "r1", "i1", [Problem("test", "t", "warn")])
    info = Alert("info", "r1", "i1")
    assert send_alert(info, webhook_url=url) is False
    assert send_alert(warning, webhook_url=url) is True
    assert send_alert(info, webhook_url=url, min_severity="info") is True
    assert [m["json"]["severity"] for m in received] == ["warning", "info"]
    assert slack_payload(info)["attachments"][0]["text"] == "Nothing failed."


def test_a_source_ingested_twice_under_one_run_id_is_one_series_per_table(copy_of_the_failed_run):
    """An orchestrator retrying under one HARBOR_RUN_ID records the source twice; Prometheus refuses a file that
    has the same series twice, so the rows add up into one."""
    copy = copy_of_the_failed_run
    again = datetime.now(UTC)
    retry = IngestionRun("shop", again, again + timedelta(seconds=3), [TableLoad("orders", 7)], run_id="run-alerts")
    record_ingestion_run(copy, retry)
    with connected(copy, read_only=True) as wh:
        text = to_prometheus(collect_metrics(wh))
    extracted = [line for line in text.splitlines() if line.startswith("harbor_rows_extracted{")]
    assert extracted == ['harbor_rows_extracted{run_id="run-alerts",source="shop",table="orders"} 12']
    durations = [line for line in text.splitlines() if line.startswith("harbor_ingestion_duration_seconds{")]
    assert durations == ['harbor_ingestion_duration_seconds{run_id="run-alerts",source="shop"} 5']
    assert 'harbor_ingestion_failed{run_id="run-alerts",source="shop"} 0' in text.splitlines()


def test_a_failed_ingestion_is_a_metric_of_its_own(copy_of_the_failed_run):
    """A failed source exported only rows of table `*` at 0 and a duration: an empty load, by the look of it."""
    copy = copy_of_the_failed_run
    late = datetime.now(UTC) + timedelta(hours=1)
    record_ingestion_run(copy, IngestionRun("fx", late, late, status="error", error="API down", run_id="run-late"))
    with connected(copy, read_only=True) as wh:
        lines = to_prometheus(collect_metrics(wh)).splitlines()
    assert 'harbor_ingestion_failed{run_id="run-late",source="fx"} 1' in lines
    # A retry under the same run id that loaded: its last attempt counts.
    retry = late + timedelta(seconds=5)
    record_ingestion_run(copy, IngestionRun("fx", retry, retry, [TableLoad("rates", 2)], run_id="run-late"))
    with connected(copy, read_only=True) as wh:
        lines = to_prometheus(collect_metrics(wh)).splitlines()
    assert 'harbor_ingestion_failed{run_id="run-late",source="fx"} 0' in lines


def test_a_source_s_failure_stays_in_the_metrics_when_another_source_runs_after_it(copy_of_the_failed_run):
    """The metrics read each source's latest run: with the newest run alone, a failed source vanished from them
    (the dashboard's "failed ingestions" read 0) as soon as another source loaded."""
    copy = copy_of_the_failed_run
    failed = datetime.now(UTC)
    record_ingestion_run(copy, IngestionRun("shop", failed, failed, status="error", error="down", run_id="run-a"))
    later = failed + timedelta(minutes=1)
    record_ingestion_run(copy, IngestionRun("events", later, later, [TableLoad("events", 3)], run_id="run-b"))
    with connected(copy, read_only=True) as wh:
        lines = to_prometheus(collect_metrics(wh)).splitlines()
    assert 'harbor_ingestion_failed{run_id="run-a",source="shop"} 1' in lines
    assert 'harbor_ingestion_failed{run_id="run-b",source="events"} 0' in lines
    assert 'harbor_rows_loaded{run_id="run-b",source="events",table="events"} 3' in lines


def test_a_source_s_freshness_failure_stays_when_a_later_check_selects_other_sources(tmp_path):
    project = make_project(tmp_path / "project")
    models = project.path / "models" / "_models.yml"
    models.write_text(
        models.read_text().replace(
            "    tables:\n",
            "    tables:\n      - name: payments\n        identifier: orders\n"
            "        freshness:\n          error_after: {count: 1, period: hour}\n",
        )
    )
    assert project.dbt("seed").returncode == 0
    assert project.dbt("source", "freshness").returncode == 1  # payments: its newest row is from 2024
    assert project.dbt("source", "freshness", "--select", "source:shop.orders").returncode == 0
    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        lines = to_prometheus(collect_metrics(wh)).splitlines()
    assert 'harbor_source_freshness_failed{source="obs_it.shop.payments"} 1' in lines
    assert 'harbor_source_freshness_failed{source="obs_it.shop.orders"} 0' in lines


UNIT_TEST = """\
unit_tests:
  - name: orders_clean_changes_nothing
    model: orders_clean
    given:
      - input: ref('orders')
        rows:
          - {order_id: 1, amount: 1.0, updated_at: 2024-01-01 00:00:00}
    expect:
      rows:
        - {order_id: 2, amount: 1.0, updated_at: 2024-01-01 00:00:00}
"""


def test_a_failing_unit_test_and_the_models_it_skips_make_a_critical_alert(tmp_path, capsys):
    """dbt skips a model whose unit test fails, and its tests: the history had no unit tests, and the alert said
    every model was built and every test passed."""
    project = make_project(tmp_path / "project")
    (project.path / "models" / "_unit_tests.yml").write_text(UNIT_TEST)
    assert project.dbt("build").returncode == 1
    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None and alert.severity == "critical"
    problems = {(p.kind, p.name, p.status) for p in alert.problems}
    assert problems == {("unit_test", "orders_clean_changes_nothing", "fail"), ("model", "orders_clean", "skipped")}
    assert alert.title == "Harbor run: 1 failed, 1 not built, 0 warning(s)"
    # Elementary's report lists data tests only: `harbor report` said "0 failing test(s)" and no more.
    report = tmp_path / "report.html"
    assert cli.main(["report", "--warehouse", str(project.path / "warehouse.duckdb"), "--output", str(report)]) == 0
    assert "0 failing test(s), 1 failing unit test(s), not in the report: see the alert" in capsys.readouterr().out

    (project.path / "models" / "_unit_tests.yml").unlink()
    assert project.dbt("build", "--exclude", "unique_orders_clean_order_id").returncode == 0
    assert project.dbt("test", "--select", "not_null_orders_clean_order_id").returncode == 0
    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        alert = alert_for_latest_run(wh)
    assert alert is not None and alert.title == "Harbor run succeeded: all tests passed"  # no model ran


def test_the_metrics_say_when_the_run_they_describe_started(warehouse_with_a_failed_run):
    """A build that stops before recording anything leaves the metrics as they were: only their age tells."""
    with connected(warehouse_with_a_failed_run, read_only=True) as wh:
        lines = to_prometheus(collect_metrics(wh)).splitlines()
        (started,) = wh.query("select max(run_started_at) as at from observability.dbt_invocations")
    (line,) = [line for line in lines if line.startswith("harbor_dbt_run_started_timestamp_seconds{")]
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(started["at"].replace(tzinfo=UTC).timestamp())


def test_prometheus_text_and_grafana_dashboard(warehouse_with_a_failed_run):
    with connected(warehouse_with_a_failed_run, read_only=True) as wh:
        text = to_prometheus(collect_metrics(wh))
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or sample.match(line), line
    assert 'harbor_rows_extracted{run_id="run-alerts",source="shop",table="orders"} 5' in text
    assert 'harbor_rows_quarantined{run_id="run-alerts",source="shop",table="orders"} 1' in text
    assert re.search(r'harbor_quality_pass_ratio\{command="build",run_id="run-alerts"\} 0\.333', text)
    assert 'harbor_tests_failed{command="build",run_id="run-alerts"} 1' in text
    assert re.search(r'harbor_dbt_node_duration_seconds\{.*node="orders_clean".*\} [0-9.]+', text)

    exported = set(re.findall(r"^# TYPE (\w+)", text, flags=re.MULTILINE))
    panels = grafana_dashboard()["panels"]
    assert panels  # a dashboard without panels (or a panel without queries) checked nothing here
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"harbor_\w+", target["expr"]))
            assert names and names <= exported, target["expr"]


def test_prometheus_values_are_exact_at_scale():
    """10M order items load 19.6M rows: `%g` printed 19,607,321 extracted and 19,607,318 loaded both as 1.96073e+07."""
    metrics = [
        Metric("harbor_rows_extracted", "h", "gauge", [({"table": "order_items"}, 19_607_321)]),
        Metric("harbor_rows_loaded", "h", "gauge", [({"table": "order_items"}, Decimal("19607318"))]),
        Metric("harbor_dbt_duration_seconds", "h", "gauge", [({}, 1234567.25), ({"run_id": "r"}, 3.0)]),
    ]
    samples = [line for line in to_prometheus(metrics).splitlines() if not line.startswith("#")]
    assert samples == [
        'harbor_rows_extracted{table="order_items"} 19607321',
        'harbor_rows_loaded{table="order_items"} 19607318',
        "harbor_dbt_duration_seconds 1234567.25",
        'harbor_dbt_duration_seconds{run_id="r"} 3',
    ]


def test_the_pass_ratio_leaves_skipped_tests_out_as_the_quality_score_does(copy_of_the_failed_run):
    """The printed score counts only tests that ran; the metric said 111/116 where the score said 111/111."""
    copy = copy_of_the_failed_run
    with duckdb.connect(str(copy)) as conn:
        invocation = conn.sql(
            "select invocation_id from observability.dbt_invocations where command = 'build' "
            "order by run_started_at desc limit 1"
        ).fetchone()[0]
        conn.execute(
            "update observability.dbt_run_results set status = 'skipped' "
            "where invocation_id = ? and resource_type = 'test' and status = 'warn'",
            [invocation],
        )
        statuses = conn.execute(
            "select status from observability.dbt_run_results where invocation_id = ? and resource_type = 'test'",
            [invocation],
        ).fetchall()
    assert sorted(s for (s,) in statuses) == ["fail", "pass", "skipped"]
    with connected(copy, read_only=True) as wh:
        text = to_prometheus(collect_metrics(wh))
    assert 'harbor_quality_pass_ratio{command="build",run_id="run-alerts"} 0.5' in text.splitlines()


def test_a_later_run_without_tests_claims_no_passing_tests(copy_of_the_failed_run):
    """A `dbt seed` after a build whose test failed: the alert said "all tests passed" and the metrics 0 failed
    tests, while the report listed the failing one."""
    copy = copy_of_the_failed_run
    with duckdb.connect(str(copy)) as conn:
        conn.execute(
            "insert into observability.dbt_invocations (invocation_id, job_run_id, command, run_started_at, "
            "run_completed_at) values ('seed-later', 'run-seed', 'seed', now()::timestamp + interval 1 hour, "
            "now()::timestamp + interval 61 minute)"
        )
        conn.execute(
            "insert into observability.dbt_run_results (unique_id, invocation_id, name, resource_type, status) "
            "values ('seed.obs.rates', 'seed-later', 'rates', 'seed', 'success')"
        )
    with connected(copy, read_only=True) as wh:
        alert = alert_for_latest_run(wh)
        text = to_prometheus(collect_metrics(wh))
    assert alert is not None and (alert.run_id, alert.severity) == ("run-seed", "info")
    assert alert.title == "Harbor run succeeded: nothing failed, and no data tests ran"
    assert "harbor_tests_failed{" not in text and 'harbor_dbt_nodes{command="seed"' in text


def test_a_row_count_the_adapter_does_not_know_is_no_sample(copy_of_the_failed_run):
    """dbt-postgres records -1 rows for a view ("unknown"): exported, it read as a model that lost rows."""
    copy = copy_of_the_failed_run
    with duckdb.connect(str(copy)) as conn:
        conn.execute(
            "update observability.dbt_run_results set rows_affected = -1 "
            "where resource_type = 'model' and name = 'orders_clean'"
        )
        conn.execute(
            "insert into observability.dbt_run_results (unique_id, invocation_id, name, resource_type, status, "
            "rows_affected) select unique_id || '_copy', invocation_id, name || '_copy', resource_type, status, 7 "
            "from observability.dbt_run_results where resource_type = 'model' and name = 'orders_clean'"
        )
    with connected(copy, read_only=True) as wh:
        rows = [line for line in to_prometheus(collect_metrics(wh)).splitlines() if "rows_affected{" in line]
    assert rows and all(line.endswith(" 7") and 'node="orders_clean_copy"' in line for line in rows)


def test_json_logs_carry_the_run_id(monkeypatch):
    monkeypatch.setenv("HARBOR_RUN_ID", "run-logs")
    stream = io.StringIO()
    runlog.configure(json_logs=True, stream=stream)
    try:
        logging.getLogger("harbor.test").info("loaded", extra={"table": "orders", "rows": 3})
    finally:
        logging.getLogger("harbor").handlers.clear()
    entry = json.loads(stream.getvalue())
    assert entry["run_id"] == "run-logs" and entry["message"] == "loaded"
    assert (entry["table"], entry["rows"], entry["level"]) == ("orders", 3, "info")


def test_json_logs_make_dlt_s_own_lines_json_with_the_run_id(tmp_path):
    """dlt formats its own logger; in JSON mode its warnings must not break a JSON-lines log."""
    script = (
        "from ingestion import runlog\n"
        "runlog.configure(json_logs=True)\n"
        "import dlt\n"
        f"dlt.pipeline('json_probe', destination='duckdb', pipelines_dir={str(tmp_path)!r})\n"
        "from dlt.common import logger\n"
        "logger.warning('a warning of dlt')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "HARBOR_RUN_ID": "run-dlt-logs"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    warning = next(entry for entry in entries if entry["message"] == "a warning of dlt")
    assert (warning["run_id"], warning["logger"], warning["level"]) == ("run-dlt-logs", "dlt", "warning")
