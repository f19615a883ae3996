"""The pull-request check (`run_pr_check`): its steps in order, from what changed to the summary, and the dbt
build, source freshness and pytest steps of its own."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ingestion.settings import Settings
from ingestion.slim_ci.changes import changed_files, compared_commit
from ingestion.slim_ci.dbt_log import failed_hooks, first_dbt_error
from ingestion.slim_ci.errors import CiError
from ingestion.slim_ci.lint import _lint_steps
from ingestion.slim_ci.macros import _macro_callers_step, macro_changes, whole_project_reasons
from ingestion.slim_ci.paths import CiPaths
from ingestion.slim_ci.pr_warehouse import (
    column_drift,
    planned_tables,
    prepare_pr_warehouse,
    rehearse_deploy,
    table_columns,
)
from ingestion.slim_ci.processes import PR_TARGET, WARN_ERROR_OPTIONS, _dbt, _run
from ingestion.slim_ci.report import FAILED_STATUSES, PrReport, StepResult, _read_run_results, write_summary
from ingestion.slim_ci.state import refuse_state_of_another_commit

CHANGED_AND_DOWNSTREAM = "state:modified+"
WHOLE_PROJECT = "fqn:*"


def run_pr_check(
    settings: Settings,
    paths: CiPaths,
    *,
    base: str,
    lint: bool = True,
    freshness: bool = True,
    pytest_args: Sequence[str] | None = (),
) -> PrReport:
    """All checks of a pull request; never stops at the first failure so the summary tells everything."""
    base_commit = compared_commit(settings.project_dir, base)
    files = changed_files(settings.project_dir, base_commit)
    report = PrReport(base=base, changed_files=files)
    manifest_path = paths.state_dir / "manifest.json"
    if not manifest_path.exists():
        raise CiError(f"no production state in {paths.state_dir}: run `make prod-state` first")
    refuse_state_of_another_commit(paths.state_dir, base, base_commit)
    if not settings.warehouse.exists():
        raise CiError(f"production warehouse {settings.warehouse} not found: run `make demo`, then `make prod-state`")

    if lint:
        report.steps.extend(_lint_steps(settings, files))

    if paths.work_dir.exists():
        shutil.rmtree(paths.work_dir)
    paths.work_dir.mkdir(parents=True)
    env = {"HARBOR_PR_WAREHOUSE": str(paths.pr_warehouse)}
    log_dir = paths.work_dir / "logs"
    macros = macro_changes(settings, paths, files, env=env, log_dir=log_dir)
    reasons = whole_project_reasons(files, macros)
    if reasons:
        selection = WHOLE_PROJECT
        report.steps.append(StepResult("whole project built", True, "; ".join(reasons)))
    else:
        selection = " ".join([CHANGED_AND_DOWNSTREAM, *(caller.selector for caller in macros.callers)])
        if macros.callers:
            report.steps.append(_macro_callers_step(macros.callers))
    planned = planned_tables(settings, paths, selection, env=env, log_dir=log_dir)
    mirrored = prepare_pr_warehouse(paths.pr_warehouse, settings.warehouse, copied=planned.tables)
    report.steps.append(
        StepResult(
            "PR warehouse",
            True,
            f"{paths.pr_warehouse.name}: {mirrored} production relation(s), {len(planned.tables)} of them copied "
            "(the snapshots and seeds the build writes into, the incremental models the deploy rehearsal runs on), "
            "the rest as views",
        )
    )
    production_columns = table_columns(paths.pr_warehouse, planned.incremental)
    rehearsal = rehearse_deploy(settings, paths, selection, env=env, log_dir=log_dir)
    report.steps.append(rehearsal)

    report.steps.append(_build_step(settings, paths, selection, report, env=env, log_dir=log_dir))
    built = {n.name for n in report.nodes if n.resource_type == "model" and n.status == "success"}
    drift = column_drift(production_columns, table_columns(paths.pr_warehouse, planned.incremental), built)
    if drift:
        rehearsal.detail += "; " + "; ".join(drift)

    if freshness:
        report.steps.append(_freshness(settings, paths, env, report))
    else:
        report.steps.append(StepResult("dbt source freshness", True, "not asked for", skipped=True))
    if pytest_args is not None:
        report.steps.append(_pytest(settings, pytest_args))
    else:
        report.steps.append(StepResult("Python tests (pytest)", True, "not asked for", skipped=True))
    write_summary(report, paths.summary)
    return report


def _build_step(
    settings: Settings, paths: CiPaths, selection: str, report: PrReport, *, env: dict[str, str], log_dir: Path
) -> StepResult:
    """`dbt build` of the selection into the PR warehouse, deferring the rest to production; fills `report.nodes`
    (and `report.dbt_error` when dbt stopped before building anything)."""
    started = time.monotonic()
    code = _dbt(
        settings,
        [
            *("build", "--target", PR_TARGET, "--target-path", str(paths.work_dir)),
            *("--select", selection, "--defer", "--state", str(paths.state_dir)),
            # The rehearsal ran the incremental models on production's rows; now their logic runs on every row.
            "--full-refresh",
            *WARN_ERROR_OPTIONS,
        ],
        env=env,
        log_dir=log_dir,
    )
    report.nodes = _read_run_results(paths.work_dir / "run_results.json")
    if code != 0 and not report.nodes:
        report.dbt_error = first_dbt_error(log_dir / "dbt.log") or f"dbt exited with {code} (see {log_dir})"
        detail = f"stopped before building anything: {report.dbt_error}"
    else:
        failed = [n.name for n in report.nodes if n.status in FAILED_STATUSES]
        detail = f"{len(report.built_models)} model(s) built, {len(report.tests)} test(s)"
        if failed:
            detail += f"; failed: {', '.join(failed)}"
    return StepResult(f"dbt build ({selection_label(selection)})", code == 0, detail, time.monotonic() - started)


def selection_label(selection: str) -> str:
    if selection == WHOLE_PROJECT:
        return "whole project"
    if selection == CHANGED_AND_DOWNSTREAM:
        return selection
    return f"{CHANGED_AND_DOWNSTREAM} and the changed macros' callers+"


def _freshness(settings: Settings, paths: CiPaths, env: dict[str, str], report: PrReport) -> StepResult:
    started = time.monotonic()
    output = paths.work_dir / "sources.json"
    output.unlink(missing_ok=True)
    log = paths.work_dir / "logs" / "dbt.log"
    log_offset = log.stat().st_size if log.exists() else 0
    code = _dbt(
        settings,
        ["source", "freshness", "--target", PR_TARGET, "--target-path", str(paths.work_dir)],
        env=env,
        log_dir=paths.work_dir / "logs",
    )
    if output.exists():
        results = json.loads(output.read_text()).get("results", [])
        report.freshness = {r["unique_id"].removeprefix("source.harbor."): r["status"] for r in results}
    # Stale production data is not the change's fault: only a freshness check that cannot run fails the PR.
    broken = [k for k, v in report.freshness.items() if v == "runtime error"]
    # The hooks run with freshness too, and sources.json leaves them out: a failed one is found in the log.
    hooks = failed_hooks(log, log_offset)
    ok = not broken and not hooks and (code == 0 or bool(report.freshness))
    stale = sum(v in ("warn", "error") for v in report.freshness.values())
    if not report.freshness and code != 0:
        detail = f"could not run: {first_dbt_error(log, log_offset) or f'dbt exited with {code}'}"
    else:
        detail = f"{len(report.freshness)} source table(s), {stale} stale (reported, not failing)"
    if broken:
        detail += f"; cannot check: {', '.join(broken)}"
    if hooks:
        detail += f"; a hook failed: {hooks[0][:300]}"
    return StepResult("dbt source freshness", ok, detail, time.monotonic() - started)


def _pytest(settings: Settings, args: Sequence[str]) -> StepResult:
    started = time.monotonic()
    code = _run([sys.executable, "-m", "pytest", "-q", *args], settings)
    return StepResult("Python tests (pytest)", code == 0, f"exit code {code}", time.monotonic() - started)
