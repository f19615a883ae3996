"""The lint steps: ruff, sqlfluff and yamllint on the changed files each applies to, and their violations read
from the tools' output, the first few named in the PR comment."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

from ingestion.settings import Settings
from ingestion.slim_ci.processes import _run_captured, _tool
from ingestion.slim_ci.report import StepResult

# Where dbt looks for SQL files of its own (dbt_project.yml); macros are excluded by .sqlfluffignore.
DBT_SQL_DIRS = ("models", "analyses", "tests", "snapshots", "seeds")


def sql_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith(".sql") and f.split("/", 1)[0] in DBT_SQL_DIRS]


def python_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith(".py")]


def yaml_to_lint(files: Iterable[str]) -> list[str]:
    return [f for f in files if f.endswith((".yml", ".yaml"))]


def _lint_steps(settings: Settings, files: Sequence[str]) -> list[StepResult]:
    present = [f for f in files if (settings.project_dir / f).exists()]  # a deleted file has nothing to lint
    return [
        _lint_sql(settings, sql_to_lint(present)),
        _lint_python(settings, python_to_lint(present)),
        _lint_yaml(settings, yaml_to_lint(present)),
    ]


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
