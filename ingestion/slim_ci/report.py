"""What the check found and the markdown summary for the PR comment: its steps, the dbt nodes it built and tested
(read from dbt's `run_results.json`), or why it could not run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

TEST_TYPES = ("test", "unit_test")
FAILED_STATUSES = {"error", "fail", "runtime error"}


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
