"""`harbor report` from a real demo run, rendered by Elementary's UI and looked at in headless Chromium; the dbt
docs likewise. Screenshots land in reports/screenshots/ (ignored by git, kept by CI as artifacts)."""

from __future__ import annotations

import duckdb
import pytest

from ingestion.cli import main
from ingestion.demo import shop
from ingestion.observability.report import HistoryRunner, Report, build_report_data
from ingestion.observability.warehouse import connected
from ingestion.pipeline import ingest_shop
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.tests.chromium import LivePage, page_text, screenshot
from ingestion.transform import run_dbt

SCREENSHOTS = PROJECT_DIR / "reports" / "screenshots"
FAILING_TEST = "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Two demo builds: a clean one, then one where the source sends an order status nobody expects."""
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_TARGET_PATH", str(tmp / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp / "logs"))
        mp.setenv("DBT_PROFILES_DIR", str(PROJECT_DIR))
        mp.setenv("HARBOR_RUN_ID", "report-test-run")
        settings = Settings(PROJECT_DIR, tmp / "harbor.duckdb", tmp / "data", f"sqlite:///{tmp / 'shop.sqlite'}")
        settings.data_dir.mkdir()
        shop.create_shop(settings.shop_url, seed=5, scale=0.2)
        ingest_shop(settings)
        run_dbt(settings, "build")
        with duckdb.connect(str(settings.warehouse)) as conn:
            # As a new load would bring it: its own load id (staging reads each load once).
            conn.execute(
                "insert into raw_shop.orders select * replace (order_id + 100000 as order_id, 'lost' as status, "
                "'9999999999.000001' as _dlt_load_id) from raw_shop.orders limit 1"
            )
        assert run_dbt(settings, "build", check=False) == 1
        assert run_dbt(settings, "source", "freshness", check=False) in (0, 1)
        yield settings, tmp


def test_report_data_from_a_real_demo_run(demo_run):
    settings, _ = demo_run
    with connected(settings.warehouse, read_only=True) as warehouse:
        data = build_report_data(warehouse)
        runner = HistoryRunner(warehouse)
        runner.run_operation("elementary_cli.get_models")
        with pytest.raises(RuntimeError, match="does not answer"):
            runner.run_operation("elementary_cli.get_something_new")

    results = {r["metadata"]["test_unique_id"]: r for rs in data["test_results"].values() for r in rs}
    failing = next(r for uid, r in results.items() if FAILING_TEST in uid)
    assert failing["metadata"]["latest_run_status"] == "fail"
    # The failed-row sample shows the status that broke the test.
    assert any("lost" in str(row.values()) for row in failing["test_results"]["results_sample"])
    # Test history: both builds, the older one passing.
    (history,) = [
        run
        for run in data["test_runs"]["model.harbor.stg_shop__orders"]
        if FAILING_TEST in run["metadata"]["test_unique_id"]
    ]
    assert [i["status"] for i in history["test_runs"]["invocations"]] == ["pass", "fail"]
    # Model durations and trends: every Harbor model with its runs.
    model_runs = {m["name"]: m for m in data["model_runs"]}
    assert {"fct_orders", "dim_customers", "stg_shop__orders"} <= model_runs.keys()
    assert len(model_runs["stg_shop__orders"]["runs"]) == 2
    # Source freshness and lineage. Events and rates are not ingested here: their checks could not run, and say so.
    freshness = {uid: r for uid, r in results.items() if r["metadata"]["test_type"] == "source_freshness"}
    assert freshness["source.harbor.shop.orders"]["metadata"]["latest_run_status"] == "pass"
    assert {uid for uid, r in freshness.items() if r["metadata"]["latest_run_status"] == "error"} == {
        "source.harbor.events.events",
        "source.harbor.fx.exchange_rates",
    }
    nodes = {n["id"] for n in data["lineage"]["nodes"]}
    assert {"model.harbor.fct_orders", "source.harbor.shop.orders"} <= nodes
    assert ("model.harbor.fct_orders", "model.harbor.int_orders__amounts") in {
        tuple(e) for e in data["lineage"]["edges"]
    }


def test_harbor_report_renders_in_chromium(demo_run, capsys):
    settings, tmp = demo_run
    output = tmp / "harbor-report.html"
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", str(output)]) == 0
    # The failing test, and the freshness checks of the two sources this run never ingested (no table to check).
    assert "3 failing test(s)" in capsys.readouterr().out
    url = output.as_uri()

    tests_page = page_text(url + "#/report/test-results/")
    assert "stg_shop__orders" in tests_page and "relationships" in tests_page
    assert "Failure" in tests_page
    screenshot(url + "#/report/test-results/", SCREENSHOTS / "report-test-results.png")

    models_page = page_text(url + "#/report/model-runs/")
    assert "fct_orders" in models_page and "dim_customers" in models_page
    # The lineage lays itself out in a Web Worker: watched in real time, not virtual time.
    with LivePage(url + "#/report/lineage/") as page:
        lineage = page.wait_for("fct_orders", "dim_customers", "stg_shop__orders", "int_orders__amounts")
        assert "Source" in lineage and "Model" in lineage
        page.screenshot(SCREENSHOTS / "report-lineage.png")


def test_harbor_report_into_a_folder_or_where_it_cannot_write(demo_run, capsys):
    """`--output reports` (the folder the metrics land in) was an IsADirectoryError traceback."""
    settings, tmp = demo_run
    folder = tmp / "reports-folder"
    folder.mkdir()
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", str(folder)]) == 0
    assert f"report:    {folder / 'harbor-report.html'}" in capsys.readouterr().out
    assert (folder / "harbor-report.html").stat().st_size > 0 and (folder / "harbor-metrics.prom").exists()
    new_folder = tmp / "new-folder"  # written with a trailing slash: a folder to create, not a file's name
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", f"{new_folder}/"]) == 0
    assert (new_folder / "harbor-report.html").is_file() and (new_folder / "harbor-metrics.prom").is_file()
    named_without_an_extension = tmp / "out"  # wrote an HTML file called `out`
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", str(named_without_an_extension)]) == 0
    assert (named_without_an_extension / "harbor-report.html").is_file()
    not_a_folder = tmp / "a-file"
    not_a_folder.write_text("")
    output = not_a_folder / "report.html"
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harbor: error: cannot write the report:") and "Traceback" not in err
    not_html = tmp / "report.json"  # held an HTML page
    assert main(["report", "--warehouse", str(settings.warehouse), "--output", str(not_html)]) == 2
    assert "the report is one HTML file: name it `<name>.html`" in capsys.readouterr().err
    assert not not_html.exists()


def test_static_dbt_docs_render_in_chromium(demo_run, capsys, monkeypatch):
    settings, tmp = demo_run
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    assert main(["docs"]) == 0  # what `make docs` runs
    page = tmp / "target" / "static_index.html"
    assert f"docs:      {page} (one file" in capsys.readouterr().out
    url = page.as_uri()
    text = page_text(url + "#!/model/model.harbor.fct_orders", budget_ms=20000)
    assert "fct_orders" in text
    screenshot(url + "#!/overview?g_v=1", SCREENSHOTS / "docs-lineage.png", budget_ms=20000)


def test_a_failing_singular_test_counts_once():
    """Elementary files a singular test's result under the model it reads and again under the test's own id:
    `harbor report` said "2 failing test(s)" for one."""
    singular = {"metadata": {"test_unique_id": "test.harbor.assert_totals", "latest_run_status": "fail"}}
    generic = {"metadata": {"test_unique_id": "test.harbor.unique_x.1a", "latest_run_status": "error"}}
    passing = {"metadata": {"test_unique_id": "test.harbor.not_null_x.2b", "latest_run_status": "pass"}}
    data = {
        "test_results": {
            "model.harbor.fct_orders": [dict(singular), generic, passing],
            "test.harbor.assert_totals": [dict(singular)],
        }
    }
    failed = Report(PROJECT_DIR / "unused.html", data, 0.0).failed_tests
    assert sorted(r["metadata"]["test_unique_id"] for r in failed) == [
        "test.harbor.assert_totals",
        "test.harbor.unique_x.1a",
    ]
