"""The PR's DuckDB file and the deploy rehearsal: the production relations it holds as tables of its own (the rest
are views over production), the models and seeds built on them as the deploy will build them, and the columns an
incremental deploy would leave null."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.duckdb_extensions import sql_string
from ingestion.observability.warehouse import SCHEMA as HISTORY_SCHEMA
from ingestion.settings import Settings
from ingestion.slim_ci.dbt_log import first_dbt_error
from ingestion.slim_ci.errors import CiError
from ingestion.slim_ci.paths import CiPaths
from ingestion.slim_ci.processes import PR_TARGET, WARN_ERROR_OPTIONS, _command_env, _dbt
from ingestion.slim_ci.report import FAILED_STATUSES, StepResult, _read_run_results
from ingestion.transform import dbt_executable

PROD_ALIAS = "harbor_prod"  # profiles.yml, target pr
# The schema_changes tests' baseline (macros/observability/anomalies.sql): copied into the PR file, so the PR's
# tests compare with production's columns and write their new baseline into the copy.
SCHEMA_CHANGES_BASELINE = (HISTORY_SCHEMA, "schema_columns_snapshot")


REHEARSAL = "deploy rehearsal (no full refresh)"
# What the deploy builds in place: a snapshot is built without a full refresh by the check's build already.
REHEARSED_TYPES = ("model", "seed")


def rehearse_deploy(
    settings: Settings, paths: CiPaths, selection: str, *, env: dict[str, str], log_dir: Path
) -> StepResult:
    """The models and seeds of the selection built as the deploy will build them, without a full refresh: a
    changed incremental model runs incrementally on the copy of production's table, and a changed seed loads
    into the copy of production's, so an incremental branch that fails, a table the new columns do not fit, or
    a seed that gained a column fails the PR instead of the deploy. Its output goes to a folder of its own; the
    build after it replaces it."""
    started = time.monotonic()
    target_path = paths.work_dir / "rehearsal"
    log = log_dir / "dbt.log"
    log_offset = log.stat().st_size if log.exists() else 0
    code = _dbt(
        settings,
        [
            *("build", "--target", PR_TARGET, "--target-path", str(target_path)),
            *("--select", selection, "--defer", "--state", str(paths.state_dir)),
            *(option for kind in REHEARSED_TYPES for option in ("--resource-type", kind)),
            *WARN_ERROR_OPTIONS,
        ],
        env=env,
        log_dir=log_dir,
    )
    nodes = [n for n in _read_run_results(target_path / "run_results.json") if n.resource_type in REHEARSED_TYPES]
    models = [n for n in nodes if n.resource_type == "model"]
    seeds = [n for n in nodes if n.resource_type == "seed"]
    failed = [n for n in nodes if n.status in FAILED_STATUSES]
    if code != 0 and not nodes:
        detail = f"could not run: {first_dbt_error(log, log_offset) or f'dbt exited with {code} (see {log_dir})'}"
    else:
        detail = f"{len(models)} model(s) run as the deploy runs them"
        if seeds:
            detail += f", {len(seeds)} seed(s) loaded into production's table as the deploy loads them"
        if failed:
            detail += "; failed: " + ", ".join(f"{n.name} ({n.message[:300]})" for n in failed)
    return StepResult(REHEARSAL, code == 0, detail, time.monotonic() - started)


def table_columns(warehouse: Path, tables: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """The columns of those tables of the PR file, in order (tables it lacks are left out)."""
    wanted = set(tables)
    if not wanted:
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() order by table_schema, table_name, ordinal_position"
        ).fetchall()
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, name, column in rows:
        if (schema, name) in wanted:
            columns.setdefault((schema, name), []).append(column)
    return columns


def column_drift(
    production: dict[tuple[str, str], list[str]], rebuilt: dict[tuple[str, str], list[str]], built: set[str]
) -> list[str]:
    """What deploying incrementally leaves behind, per incremental model the build rebuilt: dbt's
    `append_new_columns` adds a new column to production's table null in the rows already there, and keeps a
    column the model no longer selects, null in the rows to come, until a full refresh."""
    notes = []
    for (schema, name), before in sorted(production.items()):
        after = rebuilt.get((schema, name))
        if name not in built or after is None:
            continue
        added = [c for c in after if c not in before]
        gone = [c for c in before if c not in after]
        if added:
            notes.append(
                f"`{name}` gains {_names(added)} on deploy, null in the rows it holds until "
                f"`dbt build --full-refresh --select {name}`"
            )
        if gone:
            notes.append(f"`{name}` keeps {_names(gone)} on deploy, null in new rows, until a full refresh")
    return notes


def _names(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


@dataclass(frozen=True)
class PlannedCopies:
    """The production relations the PR file holds as tables of its own instead of views (`planned_tables`)."""

    written: frozenset[tuple[str, str]] = frozenset()  # (schema, name) of the snapshots and seeds the build writes
    incremental: frozenset[tuple[str, str]] = frozenset()  # of the incremental models the rehearsal runs on them

    @property
    def tables(self) -> frozenset[tuple[str, str]]:
        return self.written | self.incremental


def planned_tables(
    settings: Settings, paths: CiPaths, selection: str, *, env: dict[str, str], log_dir: Path
) -> PlannedCopies:
    """The snapshots, seeds and incremental models the PR builds, to copy from production as tables.

    A snapshot merges into the history production holds, and dbt can neither merge a snapshot into a view nor seed
    over one (every PR changing either failed). An incremental model is deployed by running it incrementally on
    production's table: the PR rehearses exactly that on the copy (`rehearse_deploy`) before rebuilding it in full.
    """
    listed = subprocess.run(
        [
            dbt_executable(),
            *("ls", "--target", PR_TARGET, "--target-path", str(paths.work_dir), "--log-path", str(log_dir)),
            *("--select", selection, "--state", str(paths.state_dir)),
            *("--resource-type", "seed", "--resource-type", "snapshot", "--resource-type", "model"),
            *("--output", "json", "--quiet"),
        ],
        cwd=settings.project_dir,
        env=_command_env(settings, env),
        capture_output=True,
        text=True,
        check=False,
    )
    manifest_path = paths.work_dir / "manifest.json"
    if listed.returncode != 0 or not manifest_path.exists():
        return PlannedCopies()  # the build reports why
    nodes = json.loads(manifest_path.read_text())["nodes"]
    written, incremental = set(), set()
    for line in listed.stdout.splitlines():
        if line.startswith("{"):
            node = nodes[json.loads(line)["unique_id"]]
            relation = (node["schema"], node.get("alias") or node["name"])
            if node["resource_type"] != "model":
                written.add(relation)
            elif node["config"].get("materialized") == "incremental":
                incremental.add(relation)
    return PlannedCopies(frozenset(written), frozenset(incremental))


def prepare_pr_warehouse(
    pr_warehouse: Path, prod_warehouse: Path, copied: frozenset[tuple[str, str]] = frozenset()
) -> int:
    """A fresh PR file with a view over every production table and view, or a copy of it for the relations in
    `copied` (the snapshots, seeds and incremental models the PR builds: `planned_tables`); returns how many.

    Production's run history (the `observability` schema) is not mirrored: the PR build appends its own history
    to tables of its own, which the on-run-end hook creates, and production's stays untouched. Only the
    schema_changes tests' baseline is copied (`SCHEMA_CHANGES_BASELINE`): without it they had nothing to compare
    with and never fired.
    """
    if pr_warehouse.resolve() == prod_warehouse.resolve():
        raise CiError("the PR warehouse must not be the production warehouse")
    pr_warehouse.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".wal"):
        Path(f"{pr_warehouse}{suffix}").unlink(missing_ok=True)
    with duckdb.connect(str(pr_warehouse)) as conn:
        try:
            conn.execute(f"attach '{sql_string(str(prod_warehouse))}' as {PROD_ALIAS} (read_only)")
        except duckdb.Error as error:  # missing, or locked by a writer (a production build still running)
            raise CiError(f"cannot read the production warehouse {prod_warehouse}: {error}") from error
        relations = conn.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = $db "
            "union all select schema_name, view_name from duckdb_views() where database_name = $db and not internal",
            {"db": PROD_ALIAS},
        ).fetchall()
        relations = [r for r in relations if r[0] != HISTORY_SCHEMA or r == SCHEMA_CHANGES_BASELINE]
        tables = copied | {SCHEMA_CHANGES_BASELINE}  # the PR's tests write into it: a view is production's
        for schema, name in relations:
            conn.execute(f"create schema if not exists {_ident(schema)}")
            kind = "table" if (schema, name) in tables else "view"
            conn.execute(
                f"create or replace {kind} {_ident(schema)}.{_ident(name)} as "
                f"select * from {PROD_ALIAS}.{_ident(schema)}.{_ident(name)}"
            )
        conn.execute(f"detach {PROD_ALIAS}")
    return len(relations)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
