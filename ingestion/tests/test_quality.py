"""The quality score from dbt artifacts: counts, per-layer attribution, and the printed line."""

from __future__ import annotations

import json

from ingestion.quality import _percent, coverage_summary, dbt_target_dir, quality_summary
from ingestion.transform import run_dbt


def _model(layer: str, name: str) -> dict:
    return {"resource_type": "model", "fqn": ["harbor", layer, "shop", name], "original_file_path": f"models/{layer}"}


def _test(attached: str | None, depends_on: list[str], name: str | None = "not_null") -> dict:
    node = {"resource_type": "test", "attached_node": attached, "depends_on": {"nodes": depends_on}, "tags": []}
    if name:
        node["test_metadata"] = {"name": name, "kwargs": {}}
    return node


def write_artifacts(tmp_path, statuses: dict[str, str]) -> None:
    nodes = {
        "model.harbor.stg_orders": _model("staging", "stg_orders"),
        "model.harbor.int_amounts": _model("intermediate", "int_amounts"),
        "model.harbor.fct_orders": _model("marts", "fct_orders"),
        "seed.harbor.currencies": {"resource_type": "seed", "fqn": ["harbor", "currencies"]},
        "test.harbor.source_not_null": _test("source.harbor.shop.orders", ["source.harbor.shop.orders"]),
        "test.harbor.stg_unique": _test("model.harbor.stg_orders", ["model.harbor.stg_orders"], "unique"),
        "test.harbor.stg_not_null": _test("model.harbor.stg_orders", ["model.harbor.stg_orders"]),
        "test.harbor.int_between": _test("model.harbor.int_amounts", ["model.harbor.int_amounts"]),
        # A singular reconciliation test across layers belongs to the most downstream one.
        "test.harbor.reconcile": _test(None, ["model.harbor.stg_orders", "model.harbor.fct_orders"], None),
        "test.harbor.seed_test": _test("seed.harbor.currencies", ["seed.harbor.currencies"]),
        "test.harbor.skipped": _test("model.harbor.fct_orders", ["model.harbor.fct_orders"]),
        "unit_test.harbor.dedup": {"resource_type": "unit_test"},
        "model.harbor.not_a_test": _model("marts", "dim_customers"),
    }
    manifest = {"nodes": nodes, "sources": {"source.harbor.shop.orders": {"resource_type": "source"}}}
    results = [{"unique_id": uid, "status": status, "failures": 0} for uid, status in statuses.items()]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run_results.json").write_text(json.dumps({"results": results}))


def test_pass_rate_counts_only_passes_and_attributes_layers(tmp_path):
    write_artifacts(
        tmp_path,
        {
            "model.harbor.not_a_test": "success",
            "unit_test.harbor.dedup": "pass",
            "test.harbor.source_not_null": "pass",
            "test.harbor.stg_unique": "fail",
            "test.harbor.stg_not_null": "pass",
            "test.harbor.int_between": "warn",
            "test.harbor.reconcile": "pass",
            "test.harbor.seed_test": "error",
            "test.harbor.skipped": "skipped",
        },
    )
    summary = quality_summary(tmp_path)

    assert (summary.passed, summary.warned, summary.failed, summary.errored, summary.skipped) == (3, 1, 1, 1, 1)
    assert summary.total == 6
    assert summary.pass_rate == 0.5
    assert {layer: (s.passed, s.total) for layer, s in summary.by_layer.items()} == {
        "source": (1, 1),
        "staging": (1, 2),
        "intermediate": (0, 1),
        "marts": (1, 1),
        "other": (0, 1),
    }
    assert summary.line() == (
        "quality: 50.0% of tests passed (3/6; 1 warn, 1 fail, 1 error, 1 skipped) | source 100.0% (1/1), "
        "staging 50.0% (1/2), intermediate 0.0% (0/1), marts 100.0% (1/1), other 0.0% (0/1)"
    )


def test_a_nearly_clean_run_is_never_shown_as_100_percent(tmp_path):
    statuses = {f"test.harbor.t{i}": "pass" for i in range(1999)} | {"test.harbor.bad": "fail"}
    write_artifacts(tmp_path, {})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for uid in statuses:
        manifest["nodes"][uid] = _test("model.harbor.fct_orders", ["model.harbor.fct_orders"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run_results.json").write_text(
        json.dumps({"results": [{"unique_id": u, "status": s} for u, s in statuses.items()]})
    )
    summary = quality_summary(tmp_path)
    assert summary.pass_rate == 1999 / 2000
    assert summary.line().startswith("quality: 99.95% of tests passed (1999/2000; 0 warn, 1 fail, 0 error)")
    for passed, total, shown in [(19_999, 20_000, "99.995%"), (39_999, 40_000, "99.997%"), (2, 3, "66.7%")]:
        assert _percent(passed / total) == shown


def test_no_tests_is_said_plainly(tmp_path):
    write_artifacts(tmp_path, {"model.harbor.not_a_test": "success"})
    summary = quality_summary(tmp_path)
    assert summary.total == 0
    assert summary.pass_rate is None
    assert summary.line() == "quality: no data tests ran"


def test_a_run_whose_tests_were_all_skipped_says_so(tmp_path):
    """A model that failed skips the tests on it: "no data tests ran" alone read as a project without tests."""
    write_artifacts(tmp_path, {})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["nodes"]["test.harbor.t1"] = _test("model.harbor.fct_orders", ["model.harbor.fct_orders"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run_results.json").write_text(
        json.dumps({"results": [{"unique_id": "test.harbor.t1", "status": "skipped"}]})
    )
    assert quality_summary(tmp_path).line() == "quality: no data tests ran (1 skipped)"


def test_coverage_counts_key_tests_tested_columns_and_freshness():
    def column_test(name, model, column):
        return {
            "resource_type": "test",
            "attached_node": model,
            "column_name": column,
            "test_metadata": {"name": name},
        }

    manifest = {
        "metadata": {"project_name": "harbor"},
        "nodes": {
            "model.harbor.a": {"resource_type": "model", "package_name": "harbor", "name": "a", "columns": {"id": {}}},
            "model.harbor.b": {
                "resource_type": "model",
                "package_name": "harbor",
                "name": "b",
                "columns": {"id": {}, "x": {}, "y": {}},
            },
            "model.harbor.c": {"resource_type": "model", "package_name": "harbor", "name": "c", "columns": {}},
            "model.other.d": {"resource_type": "model", "package_name": "other", "name": "d", "columns": {"id": {}}},
            "t1": column_test("unique", "model.harbor.a", "id"),
            "t2": column_test("not_null", "model.harbor.a", "id"),
            "t3": column_test("expect_column_values_to_be_unique", "model.harbor.b", "id"),
            "t4": column_test("accepted_values", "model.harbor.b", "x"),
            "t5": {
                "resource_type": "test",
                "attached_node": "model.harbor.c",
                "test_metadata": {"name": "expect_compound_columns_to_be_unique"},
            },
        },
        "sources": {
            "source.harbor.s.t1": {"package_name": "harbor", "freshness": {"warn_after": {"count": 1}}},
            "source.harbor.s.t2": {"package_name": "harbor", "config": {"freshness": {"error_after": {"count": 2}}}},
            "source.harbor.s.t3": {"package_name": "harbor", "freshness": {"warn_after": {"count": None}}},
        },
    }
    coverage = coverage_summary(manifest)
    # b has a unique test but no not-null test on the same column: no primary-key test.
    assert coverage.models_without_primary_key_test == ("b",)
    assert coverage.line() == (
        "coverage: 2/3 models with a primary-key test, 3/4 columns tested, 2/3 source tables with freshness"
    )


def test_every_harbor_model_has_a_primary_key_test_and_every_source_freshness(settings):
    run_dbt(settings, "parse")
    coverage = coverage_summary(json.loads((dbt_target_dir(settings.project_dir) / "manifest.json").read_text()))
    assert coverage.models > 0
    assert coverage.models_without_primary_key_test == ()
    assert coverage.source_tables_with_freshness == coverage.source_tables > 0
