"""The quality score of a dbt run: the share of data tests that passed, overall and per layer.

Reads what dbt already writes to its target folder (`run_results.json` for outcomes, `manifest.json` for what each
test is attached to), so it works after `dbt build` or `dbt test` on any adapter. A test counts as passed only
with status `pass`; `warn`, `fail` and `error` count against the score; skipped tests ran nothing and are reported
apart, not in the rate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYERS = ("source", "staging", "intermediate", "marts")
# Where a test attached to no known layer lands (seeds, snapshots, other model folders).
OTHER = "other"
# When a test reads several layers (a reconciliation), it belongs to the most downstream one.
_LAYER_ORDER = {layer: rank for rank, layer in enumerate((OTHER, *LAYERS))}
NOT_PASSED = ("warn", "fail", "error")


@dataclass(frozen=True)
class DataTestOutcome:
    unique_id: str
    status: str  # pass | warn | fail | error | skipped (as in run_results.json)
    layer: str
    test_name: str | None  # the generic test's name (e.g. not_null), None for singular tests
    tags: tuple[str, ...] = ()
    failures: int | None = None
    attached_node: str | None = None  # the model/source/seed a generic test is defined on
    column_name: str | None = None
    depends_on: tuple[str, ...] = ()  # every node the test reads (source tests have no attached_node)


@dataclass(frozen=True)
class LayerScore:
    layer: str
    passed: int
    total: int

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.total if self.total else None


@dataclass(frozen=True)
class QualitySummary:
    passed: int
    warned: int
    failed: int
    errored: int
    skipped: int
    by_layer: dict[str, LayerScore] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Tests that ran: the denominator of the pass rate."""
        return self.passed + self.warned + self.failed + self.errored

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.total if self.total else None

    def line(self) -> str:
        """One printable line, e.g. `quality: 97.5% of tests passed (39/40; 1 warn, 0 fail, 0 error) | ...`."""
        if not self.total:
            return "quality: no data tests ran" + (f" ({self.skipped} skipped)" if self.skipped else "")
        head = (
            f"quality: {_percent(self.pass_rate)} of tests passed ({self.passed}/{self.total}; "
            f"{self.warned} warn, {self.failed} fail, {self.errored} error"
            + (f", {self.skipped} skipped" if self.skipped else "")
            + ")"
        )
        layers = [
            f"{score.layer} {_percent(score.pass_rate)} ({score.passed}/{score.total})"
            for score in self.by_layer.values()
            if score.total
        ]
        return head + (" | " + ", ".join(layers) if layers else "")


def _percent(rate: float | None) -> str:
    """Never a failing run rounded up to 100%: 199/200 reads 99.5%, 1999/2000 99.95%, 19999/20000 99.995%."""
    if rate is None:
        return "n/a"
    decimals = 1
    while f"{rate * 100:.{decimals}f}" == "100." + "0" * decimals and rate < 1:
        decimals += 1
    return f"{rate * 100:.{decimals}f}%"


def node_layer(node: Mapping[str, Any]) -> str:
    """The layer of a model, source or seed node from the manifest."""
    if node.get("resource_type") == "source":
        return "source"
    if node.get("resource_type") == "model":
        fqn = node.get("fqn") or []
        for part in fqn[1:-1]:
            if part in LAYERS:
                return part
    return OTHER


def layer_of_test(test: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The layer a test checks: its attached node's, else the most downstream of the nodes it reads."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    attached = test.get("attached_node")
    candidates = [attached] if attached else list(test.get("depends_on", {}).get("nodes", []))
    layers = [node_layer(nodes[uid]) for uid in candidates if uid in nodes]
    return max(layers, key=_LAYER_ORDER.__getitem__, default=OTHER)


def load_outcomes(target_dir: Path) -> list[DataTestOutcome]:
    """The data tests in `target_dir/run_results.json`, with their layers from `target_dir/manifest.json`."""
    run_results = json.loads((target_dir / "run_results.json").read_text())
    manifest = json.loads((target_dir / "manifest.json").read_text())
    return outcomes_from(run_results, manifest)


def outcomes_from(run_results: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[DataTestOutcome]:
    outcomes = []
    for result in run_results.get("results", []):
        unique_id = result["unique_id"]
        node = manifest.get("nodes", {}).get(unique_id)
        # Unit tests (unit_test.*) check logic, not data: they are not part of the score.
        if node is None or node.get("resource_type") != "test":
            continue
        metadata = node.get("test_metadata") or {}
        outcomes.append(
            DataTestOutcome(
                unique_id=unique_id,
                status=result["status"],
                layer=layer_of_test(node, manifest),
                test_name=metadata.get("name"),
                tags=tuple(node.get("tags", [])),
                failures=result.get("failures"),
                attached_node=node.get("attached_node"),
                column_name=node.get("column_name") or (metadata.get("kwargs") or {}).get("column_name"),
                depends_on=tuple((node.get("depends_on") or {}).get("nodes", [])),
            )
        )
    return outcomes


def summarize(outcomes: Iterable[DataTestOutcome]) -> QualitySummary:
    counts = {"pass": 0, "warn": 0, "fail": 0, "error": 0, "skipped": 0}
    per_layer: dict[str, list[int]] = {layer: [0, 0] for layer in (*LAYERS, OTHER)}
    for outcome in outcomes:
        status = outcome.status if outcome.status in counts else "error"
        counts[status] += 1
        if status == "skipped":
            continue
        per_layer[outcome.layer][1] += 1
        if status == "pass":
            per_layer[outcome.layer][0] += 1
    return QualitySummary(
        passed=counts["pass"],
        warned=counts["warn"],
        failed=counts["fail"],
        errored=counts["error"],
        skipped=counts["skipped"],
        by_layer={layer: LayerScore(layer, passed, total) for layer, (passed, total) in per_layer.items() if total},
    )


def quality_summary(target_dir: Path) -> QualitySummary:
    return summarize(load_outcomes(target_dir))


def dbt_target_dir(project_dir: Path) -> Path:
    """Where dbt wrote its artifacts: DBT_TARGET_PATH when set, else the project's `target/`."""
    target = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    return target if target.is_absolute() else project_dir / target


UNIQUENESS_TESTS = frozenset({"unique", "expect_column_values_to_be_unique"})
NOT_NULL_TESTS = frozenset({"not_null", "expect_column_values_to_not_be_null"})
COMPOUND_KEY_TESTS = frozenset({"expect_compound_columns_to_be_unique", "unique_combination_of_columns"})


@dataclass(frozen=True)
class CoverageSummary:
    """How much of the project the data tests cover, from manifest.json alone."""

    models: int
    models_with_primary_key_test: int  # unique + not null on one column, or a compound-key test
    columns: int  # documented model columns
    columns_with_tests: int
    source_tables: int
    source_tables_with_freshness: int
    models_without_primary_key_test: tuple[str, ...] = ()

    def line(self) -> str:
        return (
            f"coverage: {self.models_with_primary_key_test}/{self.models} models with a primary-key test, "
            f"{self.columns_with_tests}/{self.columns} columns tested, "
            f"{self.source_tables_with_freshness}/{self.source_tables} source tables with freshness"
        )


def coverage_summary(manifest: Mapping[str, Any], project: str | None = None) -> CoverageSummary:
    """Test coverage of the models and sources of `project` (default: the manifest's root project)."""
    project = project or manifest.get("metadata", {}).get("project_name")
    nodes = manifest.get("nodes", {})
    models = {
        uid: node
        for uid, node in nodes.items()
        if node.get("resource_type") == "model" and (project is None or node.get("package_name") == project)
    }
    tests_by_column: dict[tuple[str, str], set[str]] = {}
    model_level_tests: dict[str, set[str]] = {}
    for node in nodes.values():
        if node.get("resource_type") != "test" or not node.get("attached_node"):
            continue
        name = (node.get("test_metadata") or {}).get("name")
        if not name:
            continue
        column = node.get("column_name")
        if column:
            tests_by_column.setdefault((node["attached_node"], column.lower()), set()).add(name)
        else:
            model_level_tests.setdefault(node["attached_node"], set()).add(name)

    without_key = []
    columns = columns_with_tests = 0
    for uid, model in models.items():
        names = [column.lower() for column in model.get("columns", {})]
        columns += len(names)
        columns_with_tests += sum((uid, name) in tests_by_column for name in names)
        keyed = any(
            tests & UNIQUENESS_TESTS and tests & NOT_NULL_TESTS
            for (attached, _), tests in tests_by_column.items()
            if attached == uid
        ) or bool(model_level_tests.get(uid, set()) & COMPOUND_KEY_TESTS)
        if not keyed:
            without_key.append(model.get("name", uid))

    sources = [
        source
        for source in manifest.get("sources", {}).values()
        if project is None or source.get("package_name") == project
    ]
    fresh = sum(_has_freshness(source) for source in sources)
    return CoverageSummary(
        models=len(models),
        models_with_primary_key_test=len(models) - len(without_key),
        columns=columns,
        columns_with_tests=columns_with_tests,
        source_tables=len(sources),
        source_tables_with_freshness=fresh,
        models_without_primary_key_test=tuple(sorted(without_key)),
    )


def _has_freshness(source: Mapping[str, Any]) -> bool:
    for freshness in (source.get("freshness"), (source.get("config") or {}).get("freshness")):
        if not freshness:
            continue
        if (freshness.get("warn_after") or {}).get("count") or (freshness.get("error_after") or {}).get("count"):
            return True
    return False
