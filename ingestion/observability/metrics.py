"""Run metrics as a Prometheus text file (for node_exporter's textfile collector or a push), plus the Grafana
dashboard that reads them. Values describe the newest run: its ingestion, its dbt invocation, its freshness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingestion.observability.warehouse import LATEST_INGESTION_PER_SOURCE, SCHEMA, Warehouse


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    kind: str  # gauge | counter
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample_value(value: float | int | Decimal) -> str:
    """A sample's value in full: `%g` rounded 19,607,321 rows to 1.96073e+07, so extracted and loaded looked equal
    when 3 rows had been quarantined."""
    if isinstance(value, int):
        return str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def to_prometheus(metrics: list[Metric]) -> str:
    lines: list[str] = []
    for metric in metrics:
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
        for labels, value in metric.samples:
            rendered = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
            series = f"{metric.name}{{{rendered}}}" if rendered else metric.name
            lines.append(f"{series} {_sample_value(value)}")
    return "\n".join(lines) + "\n"


_OF_LATEST_RUN_PER_SOURCE = (
    f"(source_name, run_id) in (select source_name, run_id from {SCHEMA}.ingestion_runs "
    f"where (source_name, created_at) in {LATEST_INGESTION_PER_SOURCE})"
)


def _unix_seconds(moment: datetime) -> float:
    """The history's timestamps are UTC, without a zone on DuckDB."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def collect_metrics(warehouse: Warehouse) -> list[Metric]:
    latest = warehouse.query(
        f"select invocation_id, job_run_id, command, run_started_at, run_completed_at from {SCHEMA}.dbt_invocations "
        "where command in ('build', 'run', 'test', 'seed', 'snapshot') order by run_started_at desc limit 1"
    )
    metrics: list[Metric] = []
    run_id = latest[0]["job_run_id"] if latest else None
    # Each source's latest run, whichever run that was: with the newest run alone, a source that failed in one
    # command and loaded nothing since vanished from the metrics as soon as another source ran.
    # One series per source table (and per source for durations), even when a run id covers several ingestions
    # of a source (an orchestrator's retry under one HARBOR_RUN_ID): Prometheus refuses a file with the same series
    # twice, so the rows of one series are added up.
    ingestion = warehouse.query(
        f"select run_id, source_name, table_name, sum(rows_extracted) as rows_extracted, "
        "sum(rows_loaded) as rows_loaded, sum(rows_quarantined) as rows_quarantined "
        f"from {SCHEMA}.ingestion_runs where {_OF_LATEST_RUN_PER_SOURCE} "
        "group by run_id, source_name, table_name order by source_name, table_name"
    )
    durations: dict[tuple[str, str], float] = {}
    failed: dict[tuple[str, str], int] = {}
    for r in warehouse.query(
        f"select run_id, source_name, created_at, max(duration_seconds) as duration_seconds, "
        "max(case when status = 'error' then 1 else 0 end) as failed "
        f"from {SCHEMA}.ingestion_runs where {_OF_LATEST_RUN_PER_SOURCE} "
        "group by run_id, source_name, created_at order by created_at"
    ):
        key = (r["source_name"], r["run_id"])
        durations[key] = durations.get(key, 0.0) + float(r["duration_seconds"] or 0)
        failed[key] = r["failed"]  # the source's last attempt in the run: a retry that loaded is no failure
    per_table = [({"source": r["source_name"], "table": r["table_name"], "run_id": r["run_id"]}, r) for r in ingestion]
    metrics += [
        Metric(
            "harbor_rows_extracted",
            "Rows extracted per source table in its source's latest ingestion run.",
            "gauge",
            [(labels, r["rows_extracted"] or 0) for labels, r in per_table],
        ),
        Metric(
            "harbor_rows_loaded",
            "Rows loaded per source table in its source's latest ingestion run.",
            "gauge",
            [(labels, r["rows_loaded"] or 0) for labels, r in per_table],
        ),
        Metric(
            "harbor_rows_quarantined",
            "Rows set aside as invalid per source table in its source's latest ingestion run.",
            "gauge",
            [(labels, r["rows_quarantined"] or 0) for labels, r in per_table],
        ),
        Metric(
            "harbor_ingestion_duration_seconds",
            "Duration of each source's latest ingestion run.",
            "gauge",
            [({"source": source, "run_id": rid}, seconds) for (source, rid), seconds in durations.items()],
        ),
        Metric(
            "harbor_ingestion_failed",
            "1 when the latest ingestion run of a source failed (its rows then read 0), else 0.",
            "gauge",
            [({"source": source, "run_id": rid}, flag) for (source, rid), flag in failed.items()],
        ),
    ]
    if latest:
        invocation = latest[0]
        labels = {"run_id": run_id or "", "command": invocation["command"]}
        results = warehouse.query(
            f"select name, resource_type, status, execution_time, rows_affected from {SCHEMA}.dbt_run_results "
            "where invocation_id = :invocation",
            invocation=invocation["invocation_id"],
        )
        statuses: dict[tuple[str, str], int] = {}
        for r in results:
            statuses[(r["resource_type"], r["status"])] = statuses.get((r["resource_type"], r["status"]), 0) + 1
        tests = [r for r in results if r["resource_type"] == "test"]
        # As the printed quality score: a skipped test ran nothing, so it is not in the denominator.
        ran = [r for r in tests if r["status"] != "skipped"]
        passed = sum(r["status"] == "pass" for r in ran)
        duration = (invocation["run_completed_at"] - invocation["run_started_at"]).total_seconds()
        metrics += [
            Metric(
                "harbor_dbt_duration_seconds", "Wall time of the latest dbt invocation.", "gauge", [(labels, duration)]
            ),
            # The metrics are the newest recorded run's: a build that stopped before recording anything leaves
            # them as they were, and only their age tells (alert on `time() - this`).
            Metric(
                "harbor_dbt_run_started_timestamp_seconds",
                "When the latest recorded dbt invocation started, in Unix seconds.",
                "gauge",
                [(labels, _unix_seconds(invocation["run_started_at"]))],
            ),
            Metric(
                "harbor_dbt_node_duration_seconds",
                "Execution time per model, seed and snapshot.",
                "gauge",
                [
                    ({**labels, "node": r["name"], "resource_type": r["resource_type"]}, r["execution_time"] or 0)
                    for r in results
                    if r["resource_type"] not in ("test", "unit_test")
                ],
            ),
            Metric(
                "harbor_dbt_rows_affected",
                "Rows written per model in the latest dbt invocation (models whose adapter reports a count).",
                "gauge",
                [
                    ({**labels, "node": r["name"]}, r["rows_affected"])
                    for r in results
                    # dbt-postgres reports -1 for a view ("unknown"); dbt-duckdb reports nothing at all
                    if r["resource_type"] == "model" and r["rows_affected"] is not None and r["rows_affected"] >= 0
                ],
            ),
            Metric(
                "harbor_dbt_nodes",
                "Nodes per resource type and status in the latest dbt invocation.",
                "gauge",
                [({**labels, "resource_type": t, "status": s}, n) for (t, s), n in sorted(statuses.items())],
            ),
            Metric(
                "harbor_quality_pass_ratio",
                "Share of the data tests that ran (not skipped) that passed in the latest dbt invocation.",
                "gauge",
                [(labels, passed / len(ran))] if ran else [],
            ),
            Metric(
                "harbor_tests_failed",
                "Data tests that failed or errored in the latest dbt invocation (none when it ran no tests).",
                "gauge",
                [(labels, sum(r["status"] in ("fail", "error") for r in tests))] if ran else [],
            ),
        ]
    # Each source table's latest check, whichever invocation made it: `dbt source freshness --select source:shop`
    # checks only the shop, and the other sources' failures must not vanish with it. Sources the project no longer
    # has are left out.
    freshness = warehouse.query(
        "select unique_id, max_loaded_at_time_ago_in_s, status from ("
        "select f.unique_id, f.max_loaded_at_time_ago_in_s, f.status, row_number() over ("
        "partition by f.unique_id order by i.run_started_at desc) as newest "
        f"from {SCHEMA}.dbt_source_freshness_results as f inner join {SCHEMA}.dbt_invocations as i "
        "on f.invocation_id = i.invocation_id "
        f"where i.command = 'freshness' and f.unique_id in (select unique_id from {SCHEMA}.dbt_sources)"
        ") as checks where newest = 1 order by unique_id"
    )
    metrics.append(
        Metric(
            "harbor_source_freshness_lag_seconds",
            "Seconds between the newest row of each source table and the last `dbt source freshness` check.",
            "gauge",
            [
                ({"source": r["unique_id"].removeprefix("source."), "status": r["status"]}, lag)
                for r in freshness
                if (lag := r["max_loaded_at_time_ago_in_s"]) is not None  # a check that could not run: no lag
            ],
        ),
    )
    metrics.append(
        Metric(
            "harbor_source_freshness_failed",
            "1 when a source table's last `dbt source freshness` check errored or could not run, else 0.",
            "gauge",
            [
                ({"source": r["unique_id"].removeprefix("source.")}, int(r["status"] in ("error", "runtime error")))
                for r in freshness
            ],
        )
    )
    return metrics


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard over the metrics above (datasource: a Prometheus that scrapes the text file)."""
    panels = [
        (
            "Rows extracted / loaded / quarantined",
            "timeseries",
            [
                "sum by (table) (harbor_rows_extracted)",
                "sum by (table) (harbor_rows_loaded)",
                "sum by (table) (harbor_rows_quarantined)",
            ],
        ),
        ("Quality pass rate", "gauge", ["harbor_quality_pass_ratio"]),
        ("Failed tests", "stat", ["harbor_tests_failed"]),
        ("dbt duration (s)", "timeseries", ["harbor_dbt_duration_seconds"]),
        ("Slowest models (s)", "bargauge", ["topk(10, harbor_dbt_node_duration_seconds)"]),
        ("Ingestion duration (s)", "timeseries", ["harbor_ingestion_duration_seconds"]),
        ("Failed ingestions", "stat", ["sum by (source) (harbor_ingestion_failed)"]),
        ("Source freshness lag (s)", "timeseries", ["harbor_source_freshness_lag_seconds"]),
        ("Stale or unchecked sources", "stat", ["sum(harbor_source_freshness_failed)"]),
        ("Nodes by status", "table", ["harbor_dbt_nodes"]),
    ]
    return {
        "title": "Harbor pipeline",
        "uid": "harbor-pipeline",
        "schemaVersion": 39,
        "tags": ["harbor", "dbt", "dlt"],
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [
            {
                "id": i + 1,
                "title": title,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "targets": [{"refId": chr(65 + j), "expr": expr} for j, expr in enumerate(exprs)],
            }
            for i, (title, kind, exprs) in enumerate(panels)
        ],
    }


def write_metrics(warehouse: Warehouse, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    prom = directory / "harbor-metrics.prom"
    prom.write_text(to_prometheus(collect_metrics(warehouse)), encoding="utf-8")
    dashboard = directory / "grafana-dashboard.json"
    dashboard.write_text(json.dumps(grafana_dashboard(), indent=2), encoding="utf-8")
    return prom, dashboard
