"""Changes dbt's state:modified cannot trace to the nodes they touch: a changed macro no node reaches, or a changed
project or profiles file, builds the whole project; the nodes that call a changed macro where dbt does not record
it are built with their descendants."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingestion.settings import Settings
from ingestion.slim_ci.changes import PROFILES_FILE, PROJECT_FILE
from ingestion.slim_ci.paths import CiPaths
from ingestion.slim_ci.processes import PR_TARGET, _dbt
from ingestion.slim_ci.report import StepResult


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
