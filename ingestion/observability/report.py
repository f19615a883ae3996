"""`harbor report`: Elementary's own report UI, fed from Harbor's `observability` tables.

elementary-data's report API (`ReportAPI`) asks a dbt runner for its data through `run_operation(<macro>)` calls
answered by Elementary's dbt project, which needs the dbt Hub. `HistoryRunner` answers the same calls from the
tables Harbor's on-run-end hook writes, with the rows those macros would return. It leans on a 0.x internal
interface, so it is deliberately small and every query it does not know is an error, never a silent blank.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from ingestion.observability.warehouse import SCHEMA, Warehouse

Row = dict[str, Any]

# The internal interface this adapter was written against; a different version may ask different questions.
ELEMENTARY_VERSION = "0.26.1"
log = logging.getLogger("harbor.report")


class ReportError(RuntimeError):
    """Elementary's report API failed or asked a question this adapter cannot answer."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _rank(rows: list[Row], key: str, order: str) -> list[Row]:
    """Adds `invocations_rank_index` (1 = newest) per `key`, like the macros' row_number() window."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    for group in groups.values():
        group.sort(key=lambda r: r[order] or datetime.min, reverse=True)
        for index, row in enumerate(group, start=1):
            row["invocations_rank_index"] = index
    return rows


class HistoryRunner:
    """The part of elementary's dbt runner that `ReportAPI` uses, over Harbor's observability tables."""

    def __init__(self, warehouse: Warehouse, *, schema: str = SCHEMA, now: datetime | None = None) -> None:
        self.warehouse = warehouse
        self.schema = schema
        self.now = now or _now()
        self.calls: list[str] = []
        self._handlers: dict[str, Callable[..., list[Row]]] = {
            "get_seeds": self.get_seeds,
            "get_snapshots": self.get_snapshots,
            "get_models": self.get_models,
            "get_sources": self.get_sources,
            "get_exposures": self.get_exposures,
            "get_singular_tests": self.get_singular_tests,
            "get_tests": self.get_tests,
            "get_dbt_models_test_coverage": self.get_dbt_models_test_coverage,
            "get_nodes_depends_on_nodes": self.get_nodes_depends_on_nodes,
            "get_models_runs": self.get_models_runs,
            "get_test_results": self.get_test_results,
            "get_source_freshness_results": self.get_source_freshness_results,
            "get_test_last_invocation": self.get_test_last_invocation,
            "get_models_latest_invocation": self.get_models_latest_invocation,
            "get_models_latest_invocations_data": self.get_models_latest_invocations_data,
        }

    # The runner interface -------------------------------------------------------------------------------------
    def run_operation(self, macro_name: str, macro_args: dict[str, Any] | None = None, **_: Any) -> list[str]:
        name = macro_name.removeprefix("elementary_cli.")
        handler = self._handlers.get(name)
        if handler is None:
            raise ReportError(f"elementary asked for {macro_name}, which Harbor's report adapter does not answer")
        self.calls.append(name)
        return [json.dumps(handler(**(macro_args or {})), default=_json_default)]

    # Helpers ---------------------------------------------------------------------------------------------------
    def _select(self, sql: str, **params: Any) -> list[Row]:
        return self.warehouse.query(sql.replace("{schema}", self.schema), **params)

    def _since(self, days_back: int | None) -> datetime:
        return self.now - timedelta(days=days_back) if days_back else datetime.min

    # Nodes -----------------------------------------------------------------------------------------------------
    def get_seeds(self) -> list[Row]:
        return self._select(
            "select name, unique_id, database_name, schema_name, coalesce(alias, name) as table_name, "
            "owner as owners, tags, package_name, description, original_path as full_path from {schema}.dbt_seeds"
        )

    def get_snapshots(self) -> list[Row]:
        return self._select(
            "select name, coalesce(alias, name) as table_name, unique_id, owner as owners, tags, package_name, "
            "description, meta, materialization, database_name, schema_name, depends_on_macros, depends_on_nodes, "
            "original_path as full_path, path, patch_path, generated_at, unique_key, incremental_strategy "
            "from {schema}.dbt_snapshots"
        )

    def get_models(self, exclude_elementary: bool = False) -> list[Row]:
        return self._select(
            "select name, unique_id, database_name, schema_name, coalesce(alias, name) as table_name, "
            "owner as owners, tags, package_name, description, materialization, patch_path, "
            "original_path as full_path, meta from {schema}.dbt_models"
        )

    def get_sources(self) -> list[Row]:
        return self._select(
            "select name, source_name, unique_id, database_name, schema_name, identifier as table_name, "
            "owner as owners, tags, package_name, description, original_path as full_path, meta "
            "from {schema}.dbt_sources"
        )

    def get_exposures(self) -> list[Row]:
        return self._select(
            "select name, label, unique_id, url, type, maturity, owner_email, owner_name as owners, tags, "
            "package_name, description, meta, original_path as full_path, null as raw_queries, depends_on_nodes, "
            "null as depends_on_columns from {schema}.dbt_exposures"
        )

    def get_singular_tests(self) -> list[Row]:
        return self._select(
            "select unique_id, name, original_path, package_name, tags from {schema}.dbt_tests where type = 'singular'"
        )

    def get_dbt_models_test_coverage(self) -> list[Row]:
        return self._select(
            "select parent_model_unique_id as model_unique_id, "
            "sum(case when test_column_name is not null then 1 else 0 end) as column_tests, "
            "sum(case when test_column_name is null then 1 else 0 end) as table_tests "
            "from {schema}.dbt_tests group by parent_model_unique_id"
        )

    def get_nodes_depends_on_nodes(self, exclude_elementary: bool = False) -> list[Row]:
        return self._select(
            "select unique_id, null as depends_on_nodes, null as materialization, 'seed' as type "
            "from {schema}.dbt_seeds union all "
            "select unique_id, depends_on_nodes, materialization, 'snapshot' as type from {schema}.dbt_snapshots "
            "union all "
            "select unique_id, depends_on_nodes, materialization, 'model' as type from {schema}.dbt_models "
            "union all "
            "select unique_id, null as depends_on_nodes, null as materialization, 'source' as type "
            "from {schema}.dbt_sources union all "
            "select unique_id, depends_on_nodes, null as materialization, 'exposure' as type "
            "from {schema}.dbt_exposures"
        )

    def _artifacts(self) -> dict[str, Row]:
        rows = self._select(
            "select unique_id, name, meta, tags, owner, 'model' as type from {schema}.dbt_models union all "
            "select unique_id, name, meta, tags, owner, 'source' as type from {schema}.dbt_sources"
        )
        return {r["unique_id"]: r for r in rows}

    def get_tests(self) -> list[Row]:
        tests = self._select("select * from {schema}.dbt_tests")
        results = self._select(
            "select test_unique_id, detected_at, status, test_type, test_sub_type from {schema}.elementary_test_results"
        )
        artifacts = self._artifacts()
        by_test: dict[str, list[Row]] = defaultdict(list)
        for result in results:
            by_test[result["test_unique_id"]].append(result)
        rows = []
        for test in tests:
            history = sorted(by_test.get(test["unique_id"], []), key=lambda r: r["detected_at"])
            last = history[-1] if history else {}
            parent = artifacts.get(test["parent_model_unique_id"] or "", {})
            rows.append(
                {
                    "unique_id": test["unique_id"],
                    "model_unique_id": test["parent_model_unique_id"],
                    "database_name": test["database_name"],
                    "schema_name": test["schema_name"],
                    "model_name": parent.get("name"),
                    "column_name": test["test_column_name"],
                    "name": test["name"],
                    "description": test["description"],
                    "package_name": test["package_name"],
                    "original_path": test["original_path"],
                    "test_params": test["test_params"],
                    "meta": test["meta"],
                    "model_meta": parent.get("meta"),
                    "tags": test["tags"],
                    "model_tags": parent.get("tags"),
                    "type": test["type"],
                    "test_type": last.get("test_type"),
                    "test_sub_type": last.get("test_sub_type"),
                    "created_at": history[0]["detected_at"] if history else None,
                    "latest_run_time": last.get("detected_at"),
                    "latest_run_status": last.get("status"),
                }
            )
        return rows

    # Runs ------------------------------------------------------------------------------------------------------
    def get_models_runs(self, days_back: int = 7, exclude_elementary: bool = False) -> list[Row]:
        runs = self._select(
            "select unique_id, invocation_id, name, schema_name, status, execution_time, full_refresh, "
            "materialization, compiled_code, generated_at from {schema}.dbt_run_results "
            "where resource_type = 'model' and generated_at >= :since",
            since=self._since(days_back),
        )
        _rank(runs, "unique_id", "generated_at")
        for run in runs:
            run["schema"] = run.pop("schema_name")
            run["execution_time"] = round(float(run["execution_time"] or 0), 1) if run["status"] == "success" else 0
            if run.pop("invocations_rank_index") != 1:
                run["compiled_code"] = None
        return sorted(runs, key=lambda r: r["generated_at"])

    def get_test_results(
        self,
        days_back: int = 7,
        invocations_per_test: int = 720,
        disable_passed_test_metrics: bool = False,
        skip_test_result_rows: bool = False,
    ) -> list[Row]:
        results = self._select(
            "select r.*, t.short_name, t.original_path, t.meta, t.description as test_description, t.package_name, "
            "t.tags as test_tags, rr.execution_time as run_execution_time "
            "from {schema}.elementary_test_results r "
            "join {schema}.dbt_tests t on r.test_unique_id = t.unique_id "
            "left join {schema}.dbt_run_results rr on r.test_execution_id = rr.model_execution_id "
            "where r.detected_at >= :since",
            since=self._since(days_back),
        )
        first_seen = {
            r["test_unique_id"]: r["first"]
            for r in self._select(
                "select test_unique_id, min(detected_at) as first from {schema}.elementary_test_results "
                "group by test_unique_id"
            )
        }
        artifacts = self._artifacts()
        for row in results:
            row["elementary_unique_id"] = ".".join(
                str(part or "None") for part in (row["test_unique_id"], row["column_name"], row["test_sub_type"])
            )
        _rank(results, "elementary_unique_id", "detected_at")
        latest_failed = [
            r["id"] for r in results if r["invocations_rank_index"] == 1 and r["status"].lower() in ("fail", "warn")
        ]
        samples = {} if skip_test_result_rows else self._samples(latest_failed, days_back)
        rows = []
        for r in results:
            if r["invocations_rank_index"] > invocations_per_test:
                continue
            artifact = artifacts.get(r["model_unique_id"] or "", {})
            latest = r["invocations_rank_index"] == 1
            rows.append(
                {
                    "id": r["id"],
                    "invocation_id": r["invocation_id"],
                    "test_execution_id": r["test_execution_id"],
                    "model_unique_id": r["model_unique_id"],
                    "test_unique_id": r["test_unique_id"],
                    "elementary_unique_id": r["elementary_unique_id"],
                    "detected_at": r["detected_at"],
                    "database_name": r["database_name"],
                    "schema_name": r["schema_name"],
                    "table_name": r["table_name"],
                    "column_name": r["column_name"],
                    "test_type": r["test_type"],
                    "test_sub_type": r["test_sub_type"],
                    "test_results_description": r["test_results_description"],
                    "test_description": r["test_description"],
                    "original_path": r["original_path"],
                    "package_name": r["package_name"],
                    "owners": r["owners"],
                    "model_owner": artifact.get("owner"),
                    "tags": r["tags"],
                    "test_tags": r["test_tags"],
                    "model_tags": artifact.get("tags"),
                    "meta": r["meta"],
                    "model_meta": artifact.get("meta"),
                    "test_results_query": r["test_results_query"] if latest else None,
                    "other": None,
                    "test_name": r["short_name"] or r["test_name"],
                    "test_params": r["test_params"],
                    "severity": r["severity"],
                    "status": r["status"],
                    "execution_time": r["run_execution_time"] or r["execution_time"],
                    "days_diff": (self.now - r["detected_at"]).total_seconds() / 86400,
                    "invocations_rank_index": r["invocations_rank_index"],
                    "failures": r["failures"],
                    "test_created_at": first_seen.get(r["test_unique_id"]),
                    "sample_data": samples.get(r["id"]) if latest else None,
                }
            )
        rows.sort(key=lambda r: (r["elementary_unique_id"], -r["invocations_rank_index"]))
        return rows

    def _samples(self, result_ids: list[str], days_back: int) -> dict[str, list[Any]]:
        """Failing rows of the given results, from the same window as the results themselves."""
        if not result_ids:
            return {}
        samples: dict[str, list[Any]] = defaultdict(list)
        for row in self._select(
            "select elementary_test_results_id, result_row from {schema}.test_result_rows where detected_at >= :since",
            since=self._since(days_back),
        ):
            if row["elementary_test_results_id"] in result_ids:
                samples[row["elementary_test_results_id"]].append(json.loads(row["result_row"]))
        return samples

    def get_source_freshness_results(self, days_back: int = 7, invocations_per_test: int = 720) -> list[Row]:
        rows = self._select(
            "select f.*, s.database_name, s.schema_name, s.source_name, s.name as table_name, s.loaded_at_field, "
            "s.meta, s.tags, s.owner, s.freshness_error_after, s.freshness_warn_after, s.freshness_filter, "
            "s.relation_name from {schema}.dbt_source_freshness_results f "
            "join {schema}.dbt_sources s on f.unique_id = s.unique_id where f.generated_at >= :since",
            since=self._since(days_back),
        )
        _rank(rows, "unique_id", "generated_at")
        normalized = {"error": "fail", "runtime error": "error"}
        out = [
            {
                "source_freshness_execution_id": r["source_freshness_execution_id"],
                "unique_id": r["unique_id"],
                "max_loaded_at": r["max_loaded_at"],
                "generated_at": r["generated_at"],
                "execute_started_at": r["execute_started_at"],
                "status": normalized.get(r["status"], r["status"]),
                "original_status": r["status"],
                "error": r["error"],
                "invocation_id": r["invocation_id"],
                "database_name": r["database_name"],
                "schema_name": r["schema_name"],
                "source_name": r["source_name"],
                "table_name": r["table_name"],
                "test_type": "source_freshness",
                "test_sub_type": "freshness",
                "loaded_at_field": r["loaded_at_field"],
                "meta": r["meta"],
                "owners": r["owner"],
                "tags": r["tags"],
                "error_after": r["error_after"] or r["freshness_error_after"],
                "warn_after": r["warn_after"] or r["freshness_warn_after"],
                "filter": r["filter"] or r["freshness_filter"],
                "relation_name": r["relation_name"],
                "invocations_rank_index": r["invocations_rank_index"],
                "max_loaded_at_time_ago_in_s": r["max_loaded_at_time_ago_in_s"],
                "snapshotted_at": r["snapshotted_at"],
                "freshness_description": None,
            }
            for r in rows
            if r["invocations_rank_index"] <= invocations_per_test
        ]
        return sorted(out, key=lambda r: (r["unique_id"], -r["invocations_rank_index"]))

    # Invocations -----------------------------------------------------------------------------------------------
    def get_test_last_invocation(
        self, invocation_id: str | None = None, invocation_max_time: str | None = None
    ) -> list[Row]:
        rows = self._select(
            "select r.invocation_id, max(r.detected_at) as detected_at, max(i.command) as command, "
            "max(i.selected) as selected, bool_or(i.full_refresh) as full_refresh, max(i.job_run_id) as job_run_id, "
            "null as job_run_url from {schema}.elementary_test_results r "
            "left join {schema}.dbt_invocations i on r.invocation_id = i.invocation_id "
            "group by r.invocation_id order by detected_at desc"
        )
        if invocation_id:
            rows = [r for r in rows if r["invocation_id"] == invocation_id]
        elif invocation_max_time:
            rows = [r for r in rows if r["detected_at"].isoformat() < invocation_max_time]
        return rows[:1]

    def _latest_model_runs(self) -> list[Row]:
        runs = self._select(
            "select r.unique_id, r.invocation_id, r.generated_at from {schema}.dbt_run_results r "
            "join {schema}.dbt_models m on r.unique_id = m.unique_id"
        )
        return [r for r in _rank(runs, "unique_id", "generated_at") if r["invocations_rank_index"] == 1]

    def get_models_latest_invocation(self) -> list[Row]:
        return [{"unique_id": r["unique_id"], "invocation_id": r["invocation_id"]} for r in self._latest_model_runs()]

    def get_models_latest_invocations_data(self) -> list[Row]:
        wanted = {r["invocation_id"] for r in self._latest_model_runs()}
        rows = self._select(
            "select invocation_id, command, selected, full_refresh, null as job_url, job_name, "
            "null as job_id, job_run_id, null as job_run_url, orchestrator from {schema}.dbt_invocations"
        )
        return [r for r in rows if r["invocation_id"] in wanted]


@dataclass
class Report:
    path: Path
    data: dict[str, Any]
    seconds: float

    @property
    def failed_tests(self) -> list[dict[str, Any]]:
        """Each failing test once: elementary files a singular test's result under the model it reads and again
        under the test's own id, so a flat list counted it twice."""
        failed: dict[str, dict[str, Any]] = {}
        for results in self.data.get("test_results", {}).values():
            for result in results:
                metadata = result["metadata"]
                if metadata.get("latest_run_status") in ("fail", "error"):
                    failed.setdefault(metadata.get("test_unique_id") or str(id(result)), result)
        return list(failed.values())


def build_report_data(
    warehouse: Warehouse, *, days_back: int = 7, project_name: str = "harbor", env: str = "dev"
) -> dict[str, Any]:
    """Elementary's report data (the JSON its UI reads), computed by its own ReportAPI over our tables."""
    from elementary.monitor.api.report.report import ReportAPI  # heavy import: only when a report is built
    from elementary.utils import json_utils

    runner = HistoryRunner(warehouse)
    data, error = ReportAPI(runner).get_report_data(  # type: ignore[arg-type]
        days_back=days_back, project_name=project_name, env=env, warehouse_type=warehouse.kind
    )
    if error is not None:
        raise ReportError(f"elementary's report API failed: {error!r}") from error
    return json_utils.inf_and_nan_to_str(data.dict())


def report_template() -> str:
    return (
        resources.files("elementary.monitor.data_monitoring.report").joinpath("index.html").read_text(encoding="utf-8")
    )


def render_html(data: dict[str, Any]) -> str:
    """One self-contained file: the data, base64 in a script tag, ahead of Elementary's single-file UI."""
    encoded = base64.b64encode(json.dumps(data, default=_json_default).encode("utf-8")).decode("ascii")
    return f"<script>window.elementaryData = JSON.parse(atob('{encoded}'));</script>{report_template()}"


def write_report(warehouse: Warehouse, path: Path, *, days_back: int = 7, project_name: str = "harbor") -> Report:
    started = time.monotonic()
    data = build_report_data(warehouse, days_back=days_back, project_name=project_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    report = Report(path=path, data=data, seconds=time.monotonic() - started)
    log.info("report written", extra={"path": str(path), "seconds": round(report.seconds, 3)})
    return report
