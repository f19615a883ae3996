"""volume_anomalies, freshness_anomalies and schema_changes against synthetic histories, relative to today:
each must flag the planted anomaly and stay quiet on the normal series. Each argument that changes a verdict
(anomaly_direction, where_expression) and each kind of schema change has a case that only it decides."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ingestion.observability.warehouse import connected
from ingestion.tests.obs_project import make_project

TESTS_YML = """\
version: 2
seeds:
  - name: steady_events
    data_tests:
      - volume_anomalies: {arguments: {timestamp_column: event_at}}
  - name: spiking_events
    data_tests:
      - volume_anomalies: {arguments: {timestamp_column: event_at}}
  - name: weekly_events
    data_tests:
      - volume_anomalies:
          arguments: {timestamp_column: event_at, training_period: {period: day, count: 28}}
      - volume_anomalies:
          arguments:
            timestamp_column: event_at
            training_period: {period: day, count: 28}
            seasonality: day_of_week
            min_training_set_size: 3
  - name: spike_at_day_starts
    data_tests:
      - volume_anomalies: &spike_on_the_last_day
          arguments:
            timestamp_column: event_at
            detection_period: {period: day, count: 1}
            anomaly_direction: spike
  - name: spike_at_day_ends
    data_tests:
      - volume_anomalies: *spike_on_the_last_day
  # Only the direction argument differs: a drop is no spike, so `spike` alone must stay quiet.
  - name: dropping_events
    data_tests:
      - volume_anomalies: {arguments: {timestamp_column: event_at, anomaly_direction: spike}}
      - volume_anomalies: {arguments: {timestamp_column: event_at, anomaly_direction: drop}}
      - volume_anomalies: {arguments: {timestamp_column: event_at, anomaly_direction: both}}
  - name: bot_spiking_events
    data_tests:
      - volume_anomalies: {arguments: {timestamp_column: event_at}}
      - volume_anomalies: {arguments: {timestamp_column: event_at, where_expression: "source <> 'bot'"}}
  - name: new_events
    data_tests:
      - volume_anomalies: {arguments: {timestamp_column: event_at}}
  - name: fresh_events
    data_tests:
      - freshness_anomalies: {arguments: {timestamp_column: event_at}}
  - name: stale_events
    data_tests:
      - freshness_anomalies: {arguments: {timestamp_column: event_at}}
  - name: shape
    data_tests:
      - schema_changes
  - name: misconfigured_events
    data_tests:
      - volume_anomalies:
          arguments: {timestamp_column: event_at, training_period: {period: day, count: 28}, seasonality: day_of_week}
"""


def _csv(timestamps: list[datetime]) -> str:
    return "event_at\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S}\n" for t in sorted(timestamps))


def _daily(counts: dict[int, int], today: datetime) -> list[datetime]:
    """`counts[d]` rows spread over the day `d` days before today."""
    return [
        today - timedelta(days=d) + timedelta(minutes=7 + i * 1400 // max(n, 1))
        for d, n in counts.items()
        for i in range(n)
    ]


def test_anomaly_tests_flag_planted_anomalies_and_stay_quiet_otherwise(tmp_path):
    project = make_project(tmp_path / "project")
    seeds = project.path / "seeds"
    (seeds / "orders.csv").unlink()
    (project.path / "models" / "_models.yml").unlink()
    (project.path / "models" / "orders_clean.sql").unlink()
    today = datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)

    normal = {d: 20 + d % 3 for d in range(1, 31)}
    (seeds / "steady_events.csv").write_text(_csv(_daily(normal, today)))
    (seeds / "spiking_events.csv").write_text(_csv(_daily({**normal, 1: 80}, today)))
    (seeds / "dropping_events.csv").write_text(_csv(_daily({**normal, 1: 2}, today)))
    # A burst of bot rows on the newest day: a spike overall, none once `where_expression` leaves the bots out.
    sourced = sorted([(t, "app") for t in _daily(normal, today)] + [(t, "bot") for t in _daily({1: 60}, today)])
    (seeds / "bot_spiking_events.csv").write_text(
        "event_at,source\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S},{source}\n" for t, source in sourced)
    )
    # The weekday of the newest day always has 2 rows; today it has 20: ordinary overall, odd for that weekday.
    weekly = {d: (2 if d % 7 == 1 else 20 + d % 3) for d in range(1, 31)}
    (seeds / "weekly_events.csv").write_text(_csv(_daily({**weekly, 1: 20}, today)))
    # A bucket holds its first second and not the one after its last: every row of a day on its first (then its
    # last) second, the newest day with a spike. Counted into a neighbouring bucket, the spike would vanish.
    for name, second in (("spike_at_day_starts", 0), ("spike_at_day_ends", 86399)):
        days = {d: 80 if d == 1 else 20 for d in range(1, 31)}
        rows = [today - timedelta(days=d, seconds=-second) for d, n in days.items() for _ in range(n)]
        (seeds / f"{name}.csv").write_text(_csv(rows))
    # A table that started three days ago: the empty days before it are not a normal level of zero.
    (seeds / "new_events.csv").write_text(_csv(_daily({1: 20, 2: 21, 3: 19}, today)))
    (seeds / "misconfigured_events.csv").write_text(_csv(_daily(normal, today)))
    hourly = [today - timedelta(hours=h, minutes=-5) for h in range(1, 24 * 17)]
    (seeds / "fresh_events.csv").write_text(_csv(hourly))
    (seeds / "stale_events.csv").write_text(_csv([t for t in hourly if t < today - timedelta(days=1, hours=12)]))
    (seeds / "shape.csv").write_text("id,name\n1,a\n")
    (project.path / "seeds" / "_seeds.yml").write_text(TESTS_YML)

    first = project.dbt("build")
    (seeds / "shape.csv").write_text("id,name,email\n1,a,x@y\n")
    second = project.dbt("build", "--select", "shape", "--full-refresh")
    third = project.dbt("build", "--select", "shape")
    (seeds / "shape.csv").write_text("id,name,email\nx1,a,x@y\n")  # id retyped: integer to text
    fourth = project.dbt("build", "--select", "shape", "--full-refresh")
    (seeds / "shape.csv").write_text("id,name\nx1,a\n")
    fifth = project.dbt("build", "--select", "shape", "--full-refresh")

    with connected(project.path / "warehouse.duckdb", read_only=True) as wh:
        rows = wh.query(
            "select r.table_name, r.test_short_name, r.test_params, r.status, r.invocation_id, i.run_started_at "
            "from observability.elementary_test_results r "
            "join observability.dbt_invocations i on r.invocation_id = i.invocation_id order by i.run_started_at"
        )
        samples = wh.query(
            "select r.invocation_id, s.result_row from observability.test_result_rows s "
            "join observability.elementary_test_results r on s.elementary_test_results_id = r.id"
        )
    assert first.returncode == 1, first.stdout
    # 28 training days give each weekday 4: below the minimum of 7, such a test could never flag anything.
    assert "4 training bucket(s) per weekday, fewer than min_training_set_size 7" in first.stdout
    invocations = list(dict.fromkeys(r["invocation_id"] for r in rows))
    assert len(invocations) == 5

    def status(table: str, invocation: int = 0, **params) -> str:
        (match,) = [
            r["status"]
            for r in rows
            if r["table_name"] == table
            and r["invocation_id"] == invocations[invocation]
            and all(json.loads(r["test_params"]).get(k) == v for k, v in params.items())
            and all((k in json.loads(r["test_params"])) == (k in params) for k in ("seasonality", "where_expression"))
        ]
        return match

    assert status("steady_events") == "pass"
    assert status("spiking_events") == "fail"
    assert status("weekly_events") == "pass"
    assert status("weekly_events", seasonality="day_of_week") == "fail"
    assert status("spike_at_day_starts", anomaly_direction="spike") == "fail"
    assert status("spike_at_day_ends", anomaly_direction="spike") == "fail"
    assert status("dropping_events", anomaly_direction="spike") == "pass"
    assert status("dropping_events", anomaly_direction="drop") == "fail"
    assert status("dropping_events", anomaly_direction="both") == "fail"
    assert status("bot_spiking_events") == "fail"
    assert status("bot_spiking_events", where_expression="source <> 'bot'") == "pass"
    assert status("new_events") == "pass"
    assert status("fresh_events") == "pass"
    assert status("stale_events") == "fail"
    assert status("shape") == "pass"  # the first run only records the baseline
    assert (second.returncode, status("shape", 1)) == (1, "fail")
    assert (third.returncode, status("shape", 2)) == (0, "pass")
    assert (fourth.returncode, status("shape", 3)) == (1, "fail")
    assert (fifth.returncode, status("shape", 4)) == (1, "fail")

    anomaly_rows = [json.loads(s["result_row"]) for s in samples]
    spike = next(r for r in anomaly_rows if r.get("metric_value") == 80)
    assert spike["z_score"] > 3 and spike["training_set_size"] == 14
    drop = next(r for r in anomaly_rows if r.get("metric_value") == 2)
    assert drop["z_score"] < -3 and drop["training_set_size"] == 14

    def changes(invocation: int) -> set[tuple[str, str, str | None, str | None]]:
        return {
            (r["change_type"], r["column_name"], r["previous_type"], r["new_type"])
            for s in samples
            if s["invocation_id"] == invocations[invocation]
            for r in [json.loads(s["result_row"])]
            if r.get("change_type")
        }

    text = "character varying(256)"  # how dbt names DuckDB's varchar
    assert changes(1) == {("column_added", "email", None, text)}
    assert changes(3) == {("type_changed", "id", "integer", text)}
    assert changes(4) == {("column_removed", "email", text, None)}


def test_schema_changes_tests_running_at_once_on_postgres_find_their_baseline_table(tmp_path, postgres_url):
    """The baseline table is created once before the tests run: created by each test, two running at once on
    PostgreSQL both tried, and one failed on the catalog's unique index (most runs, with four threads)."""
    project = make_project(tmp_path / "project", postgres_url=postgres_url, threads=4)
    models = project.path / "models"
    for copy in range(4):
        (models / f"orders_copy_{copy}.sql").write_text("select * from {{ ref('orders') }}\n")
    (models / "_copies.yml").write_text(
        "version: 2\nmodels:\n"
        + "".join(f"  - name: orders_copy_{copy}\n    data_tests: [schema_changes]\n" for copy in range(4))
    )
    assert project.dbt("seed").returncode == 0
    assert project.dbt("run").returncode == 0
    for _ in range(3):
        with connected(postgres_url) as wh:
            wh.execute("drop schema if exists observability cascade")
        tested = project.dbt("test", "--select", "test_name:schema_changes")
        assert tested.returncode == 0, tested.stdout[-3000:]
        assert tested.stdout.count("PASS schema_changes_orders_copy_") == 4
