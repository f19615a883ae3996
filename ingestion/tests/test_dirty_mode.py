"""The quality score end to end: 100% on the clean demo, and every planted defect caught, nothing else failing."""

from __future__ import annotations

import json

import duckdb

from ingestion import cli
from ingestion.demo.dirty import check_dirt, planted_defects
from ingestion.observability.alerts import WEBHOOK_ENV
from ingestion.quality import dbt_target_dir, load_outcomes, summarize


def test_clean_demo_scores_100_percent_and_dirty_demo_fails_exactly_the_planted_defects(
    harbor_cli_env, settings, monkeypatch, capsys, receiver
):
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", settings.shop_url)  # not a developer's .dlt/secrets.toml

    assert cli.main(["demo", "run", "--scale", "0.3", "--seed", "11"]) == 0
    out = capsys.readouterr().out.splitlines()
    line = next(x for x in out if x.startswith("quality:"))
    assert line.startswith("quality: 100.0% of tests passed"), line
    # The docs are where dbt wrote them (the fixture's DBT_TARGET_PATH), not in the project's target/.
    docs = dbt_target_dir(settings.project_dir) / "index.html"
    assert docs.is_file()
    assert f"docs:      {docs} " in next(x for x in out if x.startswith("docs:"))
    # It checks the sources' freshness too: the report's freshness section and metrics were empty after it.
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        freshness = conn.execute("select unique_id, status from observability.dbt_source_freshness_results").fetchall()
    assert {unique_id.split(".")[2] for unique_id, _ in freshness} == {"shop", "events", "fx"}
    assert {status for _, status in freshness} == {"pass"}

    # `harbor demo dirty`: the defects go into a copy; the warehouse itself stays clean.
    assert cli.main(["demo", "dirty"]) == 0
    out = capsys.readouterr().out
    assert "dirty mode: every defect caught, nothing else failed" in out
    assert "NOTHING" not in out and "failed with no planted defect" not in out
    copy = settings.warehouse.with_name("harbor-dirty.duckdb")
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.orders where customer_id is null").fetchone() == (0,)

    outcomes = load_outcomes(dbt_target_dir(settings.project_dir) / "dirty")
    planted = planted_defects()
    report = check_dirt(outcomes, planted)
    assert report.missed == []
    assert report.unexplained == []
    assert {kind for kind, tests in report.caught.items() if tests} == {dirt.kind for dirt in planted}
    # The failing rows are kept for inspection in the audit schema, in a table named after the test.
    manifest = json.loads((dbt_target_dir(settings.project_dir) / "dirty" / "manifest.json").read_text())
    (orphan_payments_test,) = [
        node["alias"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and node.get("attached_node") == "model.harbor.stg_shop__payments"
        and node.get("column_name") == "order_id"
        and (node.get("test_metadata") or {}).get("name") == "relationships"
    ]
    with duckdb.connect(str(copy), read_only=True) as conn:
        (orphans,) = conn.execute(f'select count(*) from audit."{orphan_payments_test}"').fetchone()
    assert orphans == 1
    summary = summarize(outcomes)
    assert summary.warned >= 1  # the stale source warns; integrity defects error
    assert summary.failed >= len(planted) - 1
    assert summary.pass_rate < 1

    # A demo run whose ingestion fails still writes the report and sends the alert saying so, and exits 2.
    url, received = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "oracle")
    report = settings.project_dir / "reports" / "harbor-report.html"
    before = report.stat().st_mtime_ns
    assert cli.main(["demo", "run", "--no-docs"]) == cli.EXIT_BAD_CONFIG
    out = capsys.readouterr().out
    assert "report:" in out and "alert:     critical sent" in out
    assert report.stat().st_mtime_ns > before
    (alert,) = received
    assert {f["name"] for f in alert["json"]["failures"] if f["kind"] == "ingestion"} == {"shop.*"}


def test_check_dirt_reports_silent_passes_and_unexplained_failures():
    from ingestion.demo.dirty import Dirt
    from ingestion.quality import DataTestOutcome

    planted = [
        Dirt("duplicate_key", "customers", "customer_id", "twice"),
        Dirt("stale_source", "products", "_extracted_at", "old", singular_tests=("assert_fresh",)),
    ]
    outcomes = [
        DataTestOutcome(
            "test.harbor.source_unique_shop_customers_customer_id.1",
            "fail",
            "source",
            "unique",
            column_name="customer_id",
            depends_on=("source.harbor.shop.customers",),
        ),
        # Same column name on another table: not explained by the customers defect.
        DataTestOutcome(
            "test.harbor.not_null_stg_shop__orders_customer_id.2",
            "fail",
            "staging",
            "not_null",
            attached_node="model.harbor.stg_shop__orders",
            column_name="customer_id",
        ),
        DataTestOutcome("test.harbor.assert_fresh", "pass", "source", None),
    ]
    report = check_dirt(outcomes, planted)
    assert report.caught["duplicate_key"] == ["test.harbor.source_unique_shop_customers_customer_id.1"]
    assert report.missed == ["stale_source"]
    assert report.unexplained == ["test.harbor.not_null_stg_shop__orders_customer_id.2"]
    assert not report.exact
