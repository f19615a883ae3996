"""Slim CI for pull requests: build and test only what a change touches, deferring the rest to production.

Two commands, each a `make` target and a step of the GitHub workflows:

- `prod-state` (`make prod-state`) builds the production target and keeps dbt's `manifest.json` and
  `run_results.json` in the production state folder (`state/prod/`, ignored by git), with `prod.json` naming the
  commit built; it refuses uncommitted changes to the dbt project.
- `pr` (`make ci-pr`) runs the checks of a pull request against that state: ruff, sqlfluff and yamllint on the
  changed files only, a rehearsal of the deploy (`dbt build --select state:modified+ --resource-type model
  --resource-type seed`, without a full refresh: the changed incremental models running incrementally and the
  changed seeds loading into copies of production's tables, as the deploy will), then
  `dbt build --select state:modified+ --full-refresh --defer --state state/prod` (the changed logic on every row,
  and its tests, plus the nodes whose code calls a changed macro where dbt does not record it, such as in an
  `is_incremental()` branch, and their descendants) into a DuckDB file of the PR's own (the whole project when
  `dbt_project.yml` or `profiles.yml` changed or a changed macro is no model's, seed's, snapshot's or test's
  dependency), `dbt source freshness`, the Python tests, and a markdown summary for the PR comment. It refuses to
  run (exit 2, the summary saying why) on a branch behind its base or against production state of another commit
  than the base's.

The PR file carries production's file name, so its catalog name and every relation name match production's:
dbt compares sources by their rendered database, and a PR file named otherwise would mark every source (and
so the whole project) modified. It starts as a view over each production table and view (production attached
read-only as `harbor_prod`), which is what a deferred `ref` to an unchanged parent and a `source` read; the
PR's build replaces the views of the models it changes with tables of its own. The snapshots and seeds the
build writes and the incremental models it runs are copied as tables (`planned_tables`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingestion.duckdb_extensions import sql_string
from ingestion.observability.warehouse import SCHEMA as HISTORY_SCHEMA
from ingestion.settings import Settings
from ingestion.transform import dbt_env, dbt_executable, ensure_packages

ARTIFACTS = ("manifest.json", "run_results.json")
# Where dbt looks for SQL files of its own (dbt_project.yml); macros are excluded by .sqlfluffignore.
DBT_SQL_DIRS = ("models", "analyses", "tests", "snapshots", "seeds")
PROJECT_FILE = "dbt_project.yml"
PROFILES_FILE = "profiles.yml"
CHANGED_AND_DOWNSTREAM = "state:modified+"
WHOLE_PROJECT = "fqn:*"
# What a production build reads from the checkout: uncommitted changes there are not production's code.
DBT_PROJECT_PATHS = (
    *("models", "macros", "seeds", "snapshots", "tests", "analyses", "packages"),
    *(PROJECT_FILE, PROFILES_FILE, "packages.yml"),
)
PROD_TARGET = "dev"
PR_TARGET = "pr"
PROD_ALIAS = "harbor_prod"  # profiles.yml, target pr
# The schema_changes tests' baseline (macros/observability/anomalies.sql): copied into the PR file, so the PR's
# tests compare with production's columns and write their new baseline into the copy.
SCHEMA_CHANGES_BASELINE = (HISTORY_SCHEMA, "schema_columns_snapshot")
TEST_TYPES = ("test", "unit_test")
FAILED_STATUSES = {"error", "fail", "runtime error"}
# A contracted mart's column renamed or removed, or the mart deleted, breaks its consumers: an error.
WARN_ERROR_OPTIONS = ("--warn-error-options", json.dumps({"error": ["UnversionedBreakingChange"]}))


class CiError(RuntimeError):
    """The check cannot run (missing production state, unknown base ref): not a failure of the change."""


@dataclass(frozen=True)
class CiPaths:
    state_dir: Path  # production artifacts: manifest.json, run_results.json, prod.json
    work_dir: Path  # the PR run's dbt target folder and logs
    pr_warehouse: Path  # the DuckDB file the PR builds into
    summary: Path  # markdown for the PR comment

    @classmethod
    def for_settings(cls, settings: Settings, pr_id: str | None = None) -> CiPaths:
        state = os.environ.get("HARBOR_PROD_STATE")
        pr = pr_slug(pr_id or os.environ.get("HARBOR_PR_ID") or _current_branch(settings.project_dir))
        return cls(
            state_dir=Path(state).resolve() if state else settings.project_dir / "state" / "prod",
            work_dir=settings.project_dir / "target" / "ci-pr",
            pr_warehouse=settings.warehouse.parent / "pr" / pr / settings.warehouse.name,
            summary=settings.project_dir / "reports" / "ci-pr" / "summary.md",
        )


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class NodeResult:
    unique_id: str
    resource_type: str
    name: str
    status: str
    message: str = ""  # dbt's, e.g. the database's error


@dataclass
class PrReport:
    base: str
    changed_files: list[str]
    steps: list[StepResult] = field(default_factory=list)
    nodes: list[NodeResult] = field(default_factory=list)
    freshness: dict[str, str] = field(default_factory=dict)
    dbt_error: str | None = None  # why the build stopped before building anything (a project that does not parse)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def built_models(self) -> list[str]:
        return sorted(n.name for n in self.nodes if n.resource_type == "model" and n.status == "success")

    @property
    def tests(self) -> list[NodeResult]:
        """Data tests and unit tests: a unit test is a test of a model, not a node the build makes."""
        return [n for n in self.nodes if n.resource_type in TEST_TYPES]

    @property
    def selected_models(self) -> list[str]:
        return sorted(n.name for n in self.nodes if n.resource_type == "model")


# ---------------------------------------------------------------------------------------------------------------
# Production state


def save_prod_state(settings: Settings, state_dir: Path, *, target: str = PROD_TARGET, ref: str | None = None) -> Path:
    """`dbt build` the production target and keep its manifest and run results in `state_dir`.

    With `ref`, the project is built as of that git commit (a temporary worktree), e.g. the PR's base when
    no saved production state is at hand.
    """
    if ref is not None:
        with tempfile.TemporaryDirectory(prefix="harbor-prod-ref-") as tmp:
            checkout = Path(tmp) / "src"
            _git(settings.project_dir, "worktree", "add", "--detach", str(checkout), ref)
            try:
                at_ref = Settings(checkout, settings.warehouse, settings.data_dir, settings.shop_url)
                return save_prod_state(at_ref, state_dir, target=target)
            finally:
                _git(settings.project_dir, "worktree", "remove", "--force", str(checkout), check=False)
    refuse_uncommitted_project_changes(settings.project_dir)
    if target == PROD_TARGET and not settings.warehouse.exists():
        # With HARBOR_DESTINATION=postgres, `make demo` loads PostgreSQL and never makes this file.
        elsewhere = (
            " (the PR check compares with a DuckDB production warehouse: run those with HARBOR_DESTINATION unset)"
            if os.environ.get("HARBOR_DESTINATION", "").lower() == "postgres"
            else ""
        )
        raise CiError(
            f"no production warehouse at {settings.warehouse}: load it first (`make demo`, or `make ingest` for the "
            f"sources alone), then `make prod-state`{elsewhere}"
        )
    with tempfile.TemporaryDirectory(prefix="harbor-prod-state-") as tmp:
        code = _dbt(settings, ["build", "--target", target, "--target-path", tmp], log_dir=Path(tmp) / "logs")
        # A failed production build still leaves a manifest the PR check can compare with; keep it, but fail.
        state_dir.mkdir(parents=True, exist_ok=True)
        for name in ARTIFACTS:
            source = Path(tmp) / name
            if source.exists():
                shutil.copy2(source, state_dir / name)
    (state_dir / "prod.json").write_text(
        json.dumps(
            {
                "target": target,
                "warehouse": str(settings.warehouse),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": _git(settings.project_dir, "rev-parse", "HEAD", check=False).strip(),
                "dbt_exit_code": code,
            },
            indent=2,
        )
        + "\n"
    )
    if code != 0:
        raise CiError(f"the production build failed (dbt exit code {code}); state saved in {state_dir} anyway")
    return state_dir


def refuse_uncommitted_project_changes(project_dir: Path) -> None:
    """Production is a commit: built with uncommitted dbt changes, its state would hold code main never had."""
    status = _git(project_dir, "status", "--porcelain", "--untracked-files=all", "--", *DBT_PROJECT_PATHS, check=False)
    dirty = [line[3:] for line in status.splitlines() if line]
    if dirty:
        shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        raise CiError(
            f"uncommitted changes to the dbt project ({shown}): production is built from a commit; commit or stash "
            "them, or run `make prod-state REF=<base>`"
        )


def saved_state_commit(state_dir: Path) -> str | None:
    """The commit production's state was built from (prod.json, written by `save_prod_state`)."""
    try:
        return json.loads((state_dir / "prod.json").read_text()).get("commit") or None
    except (OSError, json.JSONDecodeError):
        return None


def refuse_state_of_another_commit(state_dir: Path, base: str, base_commit: str) -> None:
    """State built from another commit than the base makes main's own later changes look like the PR's."""
    saved = saved_state_commit(state_dir)
    if saved != base_commit:
        built = f"commit {saved[:12]}" if saved else "an unknown commit"
        raise CiError(
            f"the production state in {state_dir} is of {built}, not of {base} ({base_commit[:12]}): run "
            f"`make prod-state` on {base} (or `make prod-state REF={base}`)"
        )


# ---------------------------------------------------------------------------------------------------------------
# What changed


def compared_commit(project_dir: Path, base: str) -> str:
    """The commit of `base` the checkout is compared with: its tip, which the checkout must contain.

    A branch behind `base` would show base's newer changes as undone by the PR. CI's merge commit is the
    exception: its first parent is where the PR merges into `base`, which may have moved on since.
    """
    tip = _commit_of(project_dir, base)
    if not tip:
        raise CiError(f"base ref {base!r} not found; fetch it (CI: fetch-depth 0) or pass --base")
    merge_base = _git(project_dir, "merge-base", tip, "HEAD").strip()
    if merge_base == tip:
        return tip
    parents = _git(project_dir, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    if len(parents) > 1 and _is_ancestor(project_dir, parents[0], tip):
        return parents[0]
    raise CiError(f"your branch is behind {base} ({tip[:12]}): merge or rebase it first")


def _commit_of(project_dir: Path, ref: str) -> str | None:
    return _git(project_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip() or None


def _is_ancestor(project_dir: Path, commit: str, of: str) -> bool:
    completed = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, of], cwd=project_dir, capture_output=True, check=False
    )
    return completed.returncode == 0


def changed_files(project_dir: Path, base: str) -> list[str]:
    """Files that differ from the merge base with `base` (deleted ones too): committed, staged, unstaged and
    untracked."""
    if not _commit_of(project_dir, base):
        raise CiError(f"base ref {base!r} not found; fetch it (CI: fetch-depth 0) or pass --base")
    merge_base = _git(project_dir, "merge-base", base, "HEAD").strip()
    # NUL-separated: git quotes a name with non-ASCII characters or quotes in a line ("b\303\244d.py").
    diff = _git(project_dir, "diff", "--name-only", "-z", "--diff-filter=ACDMRT", merge_base, "--")
    untracked = _git(project_dir, "ls-files", "-z", "--others", "--exclude-standard")
    return sorted({name for name in (diff + untracked).split("\0") if name})


def sql_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith(".sql") and f.split("/", 1)[0] in DBT_SQL_DIRS]


def python_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith(".py")]


def yaml_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith((".yml", ".yaml"))]


def default_base(project_dir: Path) -> str:
    explicit = os.environ.get("HARBOR_BASE_REF")
    if explicit:
        return explicit
    for candidate in ("origin/main", "main"):
        if _git(project_dir, "rev-parse", "--verify", "--quiet", candidate, check=False).strip():
            return candidate
    raise CiError("no base ref: set HARBOR_BASE_REF or pass --base")


def pr_slug(name: str) -> str:
    """A DuckDB catalog name of the PR's own: it must never equal production's."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "local"
    return f"pr_{slug}"[:60]


# ---------------------------------------------------------------------------------------------------------------
# The pull-request check


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


def _lint_steps(settings: Settings, files: Sequence[str]) -> list[StepResult]:
    present = [f for f in files if (settings.project_dir / f).exists()]  # a deleted file has nothing to lint
    return [
        _lint_sql(settings, sql_to_lint(present)),
        _lint_python(settings, python_to_lint(present)),
        _lint_yaml(settings, yaml_to_lint(present)),
    ]


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


def whole_project_reasons(files: Sequence[str], macros: MacroChanges) -> list[str]:
    """Why the change must build the whole project, if it must: changes dbt's state:modified cannot trace to the
    nodes they touch, so it would select nothing and the PR would pass with its change never run."""
    reasons = []
    if PROJECT_FILE in files:
        # dbt compares each node's own config only: a var, a hook or a folder-wide config reaches nodes unseen.
        reasons.append(f"{PROJECT_FILE} changed (dbt's state:modified does not compare its vars and hooks)")
    if PROFILES_FILE in files:
        # The pr target merges production's settings (a session's TimeZone changes what every model computes),
        # which no node's config holds for state:modified to compare.
        reasons.append(f"{PROFILES_FILE} changed (production's connection settings reach every node unseen)")
    if macros.untraceable:
        reasons.append(
            "changed macros no model, seed, snapshot or test depends on (hooks run with every build): "
            + ", ".join(macros.untraceable)
        )
    return reasons


@dataclass(frozen=True)
class MacroCaller:
    """A node whose code calls a changed macro where dbt does not record the call (`macro_callers`)."""

    name: str
    selector: str  # its fqn and descendants, for dbt's --select
    macros: tuple[str, ...]  # the changed macros it calls, directly or through other macros (unique ids)


@dataclass(frozen=True)
class MacroChanges:
    """What the project's changed macros reach that dbt's state:modified cannot see (`macro_changes`)."""

    untraceable: tuple[str, ...] = ()  # names of changed macros no node reaches: the whole project is built
    callers: tuple[MacroCaller, ...] = ()  # built with their descendants, next to state:modified+


def macro_changes(
    settings: Settings, paths: CiPaths, files: Sequence[str], *, env: dict[str, str], log_dir: Path
) -> MacroChanges:
    """The changed macros of the project and its packages that dbt's state:modified cannot trace to the nodes
    they touch: those no node reaches, and the nodes that call one where dbt does not record it."""
    changed_files = {f for f in files if f.endswith(".sql") and f.startswith(("macros/", "packages/"))}
    if not changed_files:
        return MacroChanges()
    if _dbt(settings, ["parse", "--target", PR_TARGET, "--target-path", str(paths.work_dir)], env=env, log_dir=log_dir):
        return MacroChanges()  # the build reports why the project does not parse
    manifest = json.loads((paths.work_dir / "manifest.json").read_text())
    production = paths.state_dir / "manifest.json"
    changed = changed_macros(
        manifest, changed_files, json.loads(production.read_text())["macros"] if production.exists() else None
    )
    callers = macro_callers(manifest, changed)
    called_in_code = {macro for caller in callers for macro in caller.macros}
    untraceable = [
        manifest["macros"][unique_id]["name"]
        for unique_id in untraceable_macros(manifest, changed)
        if unique_id not in called_in_code
    ]
    return MacroChanges(tuple(sorted(untraceable)), callers)


def changed_macros(manifest: dict, changed_files: set[str], production_macros: dict | None) -> set[str]:
    """The unique ids of the macros of the changed files that are new or whose code differs from production's
    (dbt's state:modified compares macros so too): a file holds many macros, and one changed test made all of
    them "changed", building the whole project for its neighbours. Without production's macros, every macro of a
    changed file."""
    project = manifest["metadata"].get("project_name")

    def source_file(macro: dict) -> str:
        package = macro["package_name"]
        return (
            macro["original_file_path"] if package == project else f"packages/{package}/{macro['original_file_path']}"
        )

    in_changed_files = {
        unique_id: macro for unique_id, macro in manifest["macros"].items() if source_file(macro) in changed_files
    }
    if production_macros is None:
        return set(in_changed_files)
    return {
        unique_id
        for unique_id, macro in in_changed_files.items()
        if production_macros.get(unique_id, {}).get("macro_sql") != macro["macro_sql"]
    }


def untraceable_macros(manifest: dict, changed: set[str]) -> list[str]:
    """The changed macros (unique ids) that no model, seed, snapshot or test reaches through its macro
    dependencies (a materialization, an incremental strategy, a macro only the on-run-start or on-run-end hooks
    call): dbt's state:modified cannot see what they change."""
    if not changed:
        return []
    macros = manifest["macros"]
    reached: set[str] = set()
    # The hooks are nodes too (`operation.*`), but state:modified never selects them: a macro they alone reach
    # would count as reached, select nothing, and pass while breaking every production build.
    selectable = [node for node in manifest["nodes"].values() if node["resource_type"] != "operation"]
    pending = [m for node in selectable for m in node.get("depends_on", {}).get("macros", [])]
    while pending:
        macro = pending.pop()
        if macro not in reached and macro in macros:
            reached.add(macro)
            pending.extend(macros[macro].get("depends_on", {}).get("macros", []))

    def is_reached(unique_id: str) -> bool:
        dispatcher = _dispatcher(unique_id)
        return unique_id in reached or dispatcher in reached

    return sorted(unique_id for unique_id in changed if not is_reached(unique_id))


def _dispatcher(unique_id: str) -> str | None:
    """`macro.p.x` for `macro.p.duckdb__x` or `macro.p.default__x`: what a call to `x` dispatches to."""
    package, _, name = unique_id.removeprefix("macro.").partition(".")
    return f"macro.{package}.{name.split('__', 1)[1]}" if "__" in name else None


# Nodes the deploy builds from their own code; a hook (`operation`) runs with every build, an analysis never.
CODE_NODE_TYPES = ("model", "snapshot", "seed", "test")


def macro_callers(manifest: dict, changed: set[str]) -> tuple[MacroCaller, ...]:
    """The models, snapshots, seeds and tests whose code calls a changed macro, or a macro that calls one.

    dbt records a node's macros while parsing it, when `is_incremental()` and `execute` are false: a macro
    called only in a model's incremental branch (`loaded_since_last_run`) is in no node's `depends_on`, and
    state:modified never selects the models the deploy then fails in. Macros' own dependencies are read from
    their whole code, so they are followed; the nodes' code is matched by the macros' names."""
    if not changed:
        return ()
    macros = manifest["macros"]
    callers_of: dict[str, set[str]] = {}
    for unique_id, macro in macros.items():
        for called in macro.get("depends_on", {}).get("macros", []):
            callers_of.setdefault(called, set()).add(unique_id)
    reaches: dict[str, set[str]] = {}  # macro name -> the changed macros it calls, itself included
    for changed_id in changed:
        pending, seen = [changed_id], set()
        while pending:
            unique_id = pending.pop()
            if unique_id in seen or unique_id not in macros:
                continue
            seen.add(unique_id)
            reaches.setdefault(macros[unique_id]["name"], set()).add(changed_id)
            pending.extend(callers_of.get(unique_id, ()))
            if dispatcher := _dispatcher(unique_id):
                pending.append(dispatcher)
    call = re.compile(r"\b(" + "|".join(re.escape(name) for name in sorted(reaches)) + r")\s*\(")
    callers = []
    for node in manifest["nodes"].values():
        if node["resource_type"] not in CODE_NODE_TYPES:
            continue
        called = {changed_id for name in call.findall(node.get("raw_code") or "") for changed_id in reaches[name]}
        if called:
            selector = "fqn:" + ".".join(node["fqn"]) + "+"
            callers.append(MacroCaller(node["name"], selector, tuple(sorted(called))))
    return tuple(sorted(callers, key=lambda caller: caller.name))


def _macro_callers_step(callers: Sequence[MacroCaller]) -> StepResult:
    """The step saying which nodes the changed macros add to state:modified+, per macro."""
    by_macro: dict[str, list[str]] = {}
    for caller in callers:
        for unique_id in caller.macros:
            by_macro.setdefault(unique_id.rsplit(".", 1)[-1], []).append(caller.name)
    called = "; ".join(f"`{macro}` by {', '.join(names)}" for macro, names in sorted(by_macro.items()))
    return StepResult(
        "changed macros' callers built",
        True,
        f"called (in code dbt does not record, such as an `is_incremental()` branch) {called}: built with what is "
        "downstream of them",
    )


def selection_label(selection: str) -> str:
    if selection == WHOLE_PROJECT:
        return "whole project"
    if selection == CHANGED_AND_DOWNSTREAM:
        return selection
    return f"{CHANGED_AND_DOWNSTREAM} and the changed macros' callers+"


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


def _why(node: NodeResult) -> str:
    return f" ({node.message[:300]})" if node.status in FAILED_STATUSES and node.message else ""


def write_summary(report: PrReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_summary(report))
    return path


def write_refusal(path: Path, reason: str) -> Path:
    """The summary of a check that could not run: the PR comment must not keep an earlier verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"## Harbor PR check: could not run\n\n{reason}\n")
    return path


def render_summary(report: PrReport) -> str:
    verdict = "passed" if report.ok else "FAILED"
    lines = [
        f"## Harbor PR check: {verdict}",
        "",
        f"Compared with `{report.base}`: {len(report.changed_files)} changed file(s).",
        "",
    ]
    lines += ["| check | result | detail | time |", "| --- | --- | --- | --- |"]
    for step in report.steps:
        result = "skipped" if step.skipped else "pass" if step.ok else "**fail**"
        detail = (step.detail or "").replace("|", "\\|")  # a `|` in dbt's message would split the row
        lines.append(f"| {step.name} | {result} | {detail} | {step.seconds:.1f}s |")
    # Hooks and exposures run or no-op with every build: listed, they made "Built: 12" of a build of nothing.
    models = [n for n in report.nodes if n.resource_type not in (*TEST_TYPES, "operation", "exposure")]
    tests = report.tests
    lines.append("")
    if report.dbt_error:
        lines.append(f"dbt stopped before building anything: {report.dbt_error}")
    elif not report.nodes:
        lines.append("No dbt node changed: nothing was built (unchanged models stay as in production).")
    else:
        lines.append(f"Built (modified and downstream; unchanged parents read from production): {len(models)} node(s)")
        lines.append("")
        # Why a node failed, in the PR comment itself: it was only in the job's log.
        lines += [f"- `{n.name}` ({n.resource_type}): {n.status}{_why(n)}" for n in models]
        failed_tests = [n for n in tests if n.status not in ("pass", "skipped")]
        skipped_tests = [n for n in tests if n.status == "skipped"]
        lines.append("")
        lines.append(
            f"Tests: {len(tests) - len(failed_tests) - len(skipped_tests)} of {len(tests)} passed"
            + (f", {len(skipped_tests)} skipped (upstream of them failed)." if skipped_tests else ".")
        )
        lines += [f"- `{n.name}`: **{n.status}**{_why(n)}" for n in failed_tests]
    if report.freshness:
        stale = {k: v for k, v in report.freshness.items() if v != "pass"}
        lines.append("")
        lines.append(
            f"Source freshness: {len(report.freshness) - len(stale)} of {len(report.freshness)} source table(s) fresh."
        )
        lines += [f"- `{k}`: {v}" for k, v in sorted(stale.items())]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Steps


def _lint_sql(settings: Settings, files: list[str]) -> StepResult:
    if not files:
        return StepResult("sqlfluff lint (changed SQL)", True, "no SQL file changed", skipped=True)
    started = time.monotonic()
    env = {
        "HARBOR_TARGET": "ci",
        "HARBOR_WAREHOUSE": str(settings.project_dir / "target" / "lint.duckdb"),
    }
    code, output = _run_captured([_tool("sqlfluff"), "lint", *files], settings, env=env)
    detail = ", ".join(files) if code == 0 else violations_detail(sqlfluff_violations(output))
    return StepResult("sqlfluff lint (changed SQL)", code == 0, detail, time.monotonic() - started)


def _lint_python(settings: Settings, files: list[str]) -> StepResult:
    if not files:
        return StepResult("ruff (changed Python)", True, "no Python file changed", skipped=True)
    started = time.monotonic()
    check, check_output = _run_captured([_tool("ruff"), "check", "--output-format", "concise", *files], settings)
    fmt, fmt_output = _run_captured([_tool("ruff"), "format", "--check", *files], settings)
    ok = check == 0 and fmt == 0
    detail = ", ".join(files) if ok else violations_detail(ruff_violations(check_output + fmt_output))
    return StepResult("ruff (changed Python)", ok, detail, time.monotonic() - started)


def _lint_yaml(settings: Settings, files: list[str]) -> StepResult:
    if not files:
        return StepResult("yamllint (changed YAML)", True, "no YAML file changed", skipped=True)
    started = time.monotonic()
    code, output = _run_captured([_tool("yamllint"), "--strict", "--format", "parsable", *files], settings)
    detail = ", ".join(files) if code == 0 else violations_detail(yamllint_violations(output))
    return StepResult("yamllint (changed YAML)", code == 0, detail, time.monotonic() - started)


# The first few violations go into the PR comment, each as "path:line:column CODE message"; the job's log has all.
SHOWN_VIOLATIONS = 5


def violations_detail(violations: list[str]) -> str:
    if not violations:
        return "failed (see the job's log)"
    more = len(violations) - SHOWN_VIOLATIONS
    return "; ".join(violations[:SHOWN_VIOLATIONS]) + (f"; and {more} more" if more > 0 else "")


def sqlfluff_violations(output: str) -> list[str]:
    """From sqlfluff's report: `== [path] FAIL`, then `L:  n | P:  n | CODE | message` (wrapped on `|` lines)."""
    violations: list[str] = []
    path = ""
    for line in output.splitlines():
        if header := re.match(r"^== \[(.+)\] FAIL", line):
            path = header[1]
        elif found := re.match(r"^L:\s*(\d+) \| P:\s*(\d+) \| (\w+) \| (.*)$", line):
            violations.append(f"{path}:{found[1]}:{found[2]} {found[3]} {found[4].strip()}")
        elif (wrapped := re.match(r"^\s+\| (.*)$", line)) and violations:
            violations[-1] += f" {wrapped[1].strip()}"
    return [re.sub(r" \[[a-z_.]+\]$", "", v) for v in violations]  # the rule's name repeats its code


def ruff_violations(output: str) -> list[str]:
    """From `ruff check --output-format concise` (`path:line:col: CODE [*] message`) and `ruff format --check`."""
    violations = []
    for line in output.splitlines():
        if found := re.match(r"^(\S+:\d+:\d+): ([A-Z]+\d+) (?:\[\*\] )?(.*)$", line):
            violations.append(f"{found[1]} {found[2]} {found[3]}")
        elif reformat := re.match(r"^Would reformat: (.+)$", line):
            violations.append(f"{reformat[1]}: not formatted (`.venv/bin/ruff format` fixes it)")
    return violations


def yamllint_violations(output: str) -> list[str]:
    """From `yamllint --format parsable`: `path:line:col: [level] message (rule)`."""
    violations = []
    for line in output.splitlines():
        if found := re.match(r"^(\S+:\d+:\d+): \[\w+\] (.*?)(?: \(([\w-]+)\))?$", line):
            violations.append(f"{found[1]} {found[3] or ''} {found[2]}".replace("  ", " "))
    return violations


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


def first_dbt_error(log: Path, offset: int = 0) -> str | None:
    """The first error dbt logged (after `offset` bytes of its log file, in text or JSON lines), on one line, e.g.
    "Compilation Error Model 'model.harbor.x' depends on a node named 'y' which was not found"."""
    return next(iter(dbt_errors(log, offset)), None)


# How dbt reports a failed on-run-start / on-run-end hook, e.g. "harbor.on-run-end.0 failed, error: Catalog Error...".
HOOK_FAILURE = re.compile(r"^\S+\.on-run-(start|end)\.\d+ failed, error:")


def failed_hooks(log: Path, offset: int = 0) -> list[str]:
    """The errors of the project hooks that failed, as dbt logged them after `offset` bytes of its log."""
    return [error for error in dbt_errors(log, offset) if HOOK_FAILURE.match(error)]


def dbt_errors(log: Path, offset: int = 0) -> list[str]:
    """Every error dbt logged after `offset` bytes of its log file (text or JSON lines), each on one line."""
    if not log.exists():
        return []
    with log.open(errors="replace") as file:
        file.seek(offset)
        lines = file.read().splitlines()
    errors = []
    for i, line in enumerate(lines):
        if line.startswith("{"):  # DBT_LOG_FORMAT=json: one event per line, the message whole
            try:
                info = json.loads(line).get("info") or {}
            except json.JSONDecodeError:
                continue
            if info.get("level") != "error" or not info.get("msg"):
                continue
            message = str(info["msg"]).splitlines()
        elif "[error]" in line:  # text: the `[error]` line and the untimestamped lines under it
            message = [line.split("]: ", 1)[-1]]
            for following in lines[i + 1 : i + 6]:
                if re.match(r"^(\x1b\[0m)?\d{2}:\d{2}:\d{2}", following):
                    break
                message.append(following)
        else:
            continue
        text = " ".join(part.strip() for part in message if part.strip() not in ("", "Encountered an error:"))
        if text := re.sub(r"\x1b\[[0-9;]*m", "", text)[:500]:
            errors.append(text)
    return errors


def _pytest(settings: Settings, args: Sequence[str]) -> StepResult:
    started = time.monotonic()
    code = _run([sys.executable, "-m", "pytest", "-q", *args], settings)
    return StepResult("Python tests (pytest)", code == 0, f"exit code {code}", time.monotonic() - started)


def _read_run_results(path: Path) -> list[NodeResult]:
    if not path.exists():
        return []  # dbt writes none when the selection is empty
    results = json.loads(path.read_text()).get("results", [])
    nodes = []
    for result in results:
        unique_id = result["unique_id"]
        resource_type, _, rest = unique_id.partition(".")
        message = " ".join(str(result.get("message") or "").split())
        nodes.append(NodeResult(unique_id, resource_type, rest.split(".", 1)[-1], str(result["status"]), message))
    return nodes


def _dbt(settings: Settings, args: list[str], *, env: dict[str, str] | None = None, log_dir: Path) -> int:
    ensure_packages(settings)
    return _run([dbt_executable(), *args, "--log-path", str(log_dir)], settings, env=env)


def _run(command: list[str], settings: Settings, *, env: dict[str, str] | None = None) -> int:
    print(f"+ {' '.join(command)}", flush=True)
    return subprocess.run(command, cwd=settings.project_dir, env=_command_env(settings, env), check=False).returncode


def _run_captured(command: list[str], settings: Settings, *, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`_run`, keeping the standard output (echoed, so the job's log still has it) for the summary to quote."""
    print(f"+ {' '.join(command)}", flush=True)
    completed = subprocess.run(
        command, cwd=settings.project_dir, env=_command_env(settings, env), capture_output=True, text=True, check=False
    )
    print(completed.stdout, end="", flush=True)
    print(completed.stderr, end="", file=sys.stderr, flush=True)
    return completed.returncode, completed.stdout


def _command_env(settings: Settings, env: dict[str, str] | None = None) -> dict[str, str]:
    return {**dbt_env(settings), "DBT_PROFILES_DIR": str(settings.project_dir), **(env or {})}


def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _git(project_dir: Path, *args: str, check: bool = True) -> str:
    completed = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, check=False)
    if check and completed.returncode != 0:
        raise CiError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def _current_branch(project_dir: Path) -> str:
    return _git(project_dir, "rev-parse", "--abbrev-ref", "HEAD", check=False).strip() or "local"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------------------------
# Command line (the Makefile's `prod-state` and `ci-pr` targets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion.slim_ci", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prod = commands.add_parser("prod-state", help="build production and keep its dbt artifacts")
    prod.add_argument("--state-dir", type=Path, help="default: state/prod (or HARBOR_PROD_STATE)")
    prod.add_argument("--ref", help="build the project as of this git ref (e.g. the PR's base) instead of HEAD")
    prod.add_argument(
        "--unless-saved",
        action="store_true",
        help="do nothing when the saved state is already of that commit (CI restores state from a cache)",
    )
    pr = commands.add_parser("pr", help="the pull-request check against the saved production state")
    pr.add_argument("--base", help="git ref the PR is compared with (default: HARBOR_BASE_REF, origin/main, main)")
    pr.add_argument("--pr-id", help="names the PR's DuckDB file (default: HARBOR_PR_ID or the branch)")
    pr.add_argument("--no-pytest", action="store_true", help="skip the Python tests")
    pr.add_argument("--no-freshness", action="store_true", help="skip dbt source freshness")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.command == "prod-state":
        return _prod_state_command(settings, args)
    return _pr_command(settings, args)


def _prod_state_command(settings: Settings, args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve() if args.state_dir else CiPaths.for_settings(settings).state_dir
    try:
        if args.unless_saved and saved_state_commit(state_dir) == _commit_of(settings.project_dir, args.ref or "HEAD"):
            print(f"production state in {state_dir} is already of {args.ref or 'HEAD'}: kept")
            return 0
        save_prod_state(settings, state_dir, ref=args.ref)
    except CiError as error:
        print(f"ci: error: {error}", file=sys.stderr)
        return 2
    print(f"production state saved in {state_dir}")
    return 0


def _pr_command(settings: Settings, args: argparse.Namespace) -> int:
    paths = CiPaths.for_settings(settings, args.pr_id)
    # A summary left by an earlier run must not stand for this one, even if this one crashes.
    paths.summary.unlink(missing_ok=True)
    try:
        report = run_pr_check(
            settings,
            paths,
            base=args.base or default_base(settings.project_dir),
            freshness=not args.no_freshness,
            pytest_args=None if args.no_pytest else (),
        )
    except CiError as error:
        print(f"ci: error: {error}", file=sys.stderr)
        write_refusal(paths.summary, str(error))
        return 2
    print(render_summary(report))
    print(f"summary written to {paths.summary}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
