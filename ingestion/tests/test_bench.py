"""The benchmark's parts at a tiny scale: the set-based fill, the 1% change, the two PostgreSQL backends it
compares and the plain-SQL reference marts (the full suite is `make bench`, not part of the tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import sqlalchemy as sa

from bench.fill import Scale, change_fraction, fill_shop
from bench.run import REFERENCE_SQL, alternated, fresh, marts_equal, raw_equal
from ingestion.demo.shop import SHOP_START
from ingestion.pipeline import ingest_shop
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import run_dbt


def test_fill_is_consistent_and_proportional(postgres_url):
    counts = fill_shop(postgres_url, Scale(1_000))
    assert counts["order_items"] == 1_000
    assert counts["orders"] == 400 and counts["customers"] == 133 and counts["products"] == 26
    assert 0 < counts["payments"] < counts["orders"]
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        orphans = conn.execute(
            sa.text(
                "select count(*) from order_items i left join orders o using (order_id) "
                "left join products p using (product_id) where o.order_id is null or p.product_id is null "
                "or i.unit_price <> p.unit_price"
            )
        ).scalar_one()
        wrong_amounts = conn.execute(
            sa.text(
                "select count(*) from payments p join (select order_id, sum(quantity * unit_price) as total "
                "from order_items group by order_id) t using (order_id) where p.amount <> t.total"
            )
        ).scalar_one()
        statuses = set(conn.execute(sa.text("select distinct status from orders")).scalars())
    engine.dispose()
    assert orphans == 0 and wrong_amounts == 0
    assert {"placed", "paid", "shipped", "completed", "returned"} <= statuses

    touched = change_fraction(postgres_url, 0.02)
    # 2% of all rows: 1% updated in every table (4 of 400 orders), the other 1% new customers, orders and items,
    # more of each than 1% of their table, as payments and products get no new rows.
    assert abs(sum(touched.values()) - 0.02 * sum(counts.values())) <= 2
    assert 4 + 4 < touched["orders"] <= 4 + 6
    # The change trickles in over the day before the tick's instant, not all at once.
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        first, last, distinct = conn.execute(
            sa.text(
                "select min(updated_at), max(updated_at), count(distinct updated_at) from order_items "
                "where updated_at > :start"
            ),
            {"start": SHOP_START},
        ).one()
    engine.dispose()
    assert distinct == touched["order_items"]
    assert timedelta(hours=12) < last - first < timedelta(hours=23)


def test_the_scanner_backend_loads_what_connectorx_loads_and_stays_incremental(
    settings, postgres_url, tmp_path, monkeypatch
):
    fill_shop(postgres_url, Scale(2_000))
    scanner = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    connectorx = Settings(settings.project_dir, tmp_path / "cx" / "harbor.duckdb", tmp_path / "cx_data", postgres_url)

    def ingest_with_connectorx() -> dict[str, int]:
        with monkeypatch.context() as m:
            m.setenv("SOURCES__SHOP__BACKEND", "connectorx")
            return ingest_shop(connectorx).rows_extracted

    first = ingest_shop(scanner).rows_extracted
    assert first == ingest_with_connectorx()
    assert raw_equal(scanner.warehouse, connectorx.warehouse)

    touched = change_fraction(postgres_url, 0.02)
    second = ingest_shop(scanner).rows_extracted
    ingest_with_connectorx()
    # The changed rows come again, plus the lag window's re-reads of the last hour before the previous cursor.
    assert all(second[t] >= touched[t] for t in touched)
    assert sum(second.values()) < 0.2 * sum(first.values())
    assert raw_equal(scanner.warehouse, connectorx.warehouse)
    # A second change: the lag window re-reads only the previous change's last hour, not all of it.
    touched_again = change_fraction(postgres_url, 0.02, tick=2)
    third = ingest_shop(scanner).rows_extracted
    ingest_with_connectorx()
    assert sum(touched_again.values()) <= sum(third.values()) < sum(touched_again.values()) + sum(touched.values()) / 4
    assert raw_equal(scanner.warehouse, connectorx.warehouse)
    with duckdb.connect(str(scanner.warehouse), read_only=True) as conn:
        (loads, missing_metadata) = conn.execute(
            "select count(distinct _dlt_load_id), count(*) filter (where _extracted_at is null or _source is null) "
            "from raw_shop.orders"
        ).fetchone()
    assert loads == 3 and missing_metadata == 0

    # The plain-SQL reference computes the same marts as dbt on these raw tables.
    run_dbt(scanner, "build")
    with duckdb.connect(str(scanner.warehouse)) as conn:
        conn.execute(REFERENCE_SQL.read_text())
    assert marts_equal(scanner.warehouse)


def test_a_step_reports_its_own_peak_memory_not_the_runner_s():
    """Linux hands a spawned process the spawner's ru_maxrss; the bench runner grows large comparing marts, so
    each step reads the peak of its own address space instead."""
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    reported = subprocess.run(
        [sys.executable, "-c", "from bench.run import _own_peak_kib; print(_own_peak_kib())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(reported) < 300 * 1024
    del ballast


def test_the_ingest_step_times_the_ingest_not_the_bench_s_bookkeeping(settings, monkeypatch):
    """Reading dlt's trace back after the ingest opens the pipeline again; that is not Harbor's time."""
    import bench.run
    import ingestion.cli
    import ingestion.pipeline

    normalized = SimpleNamespace(row_counts={"orders": 3, "_dlt_pipeline_state": 1})
    trace = SimpleNamespace(last_normalize_info=normalized)

    def slow_trace(pipeline):
        time.sleep(1.0)
        return {}

    monkeypatch.setattr(ingestion.cli, "main", lambda argv: 0 if argv == ["ingest", "shop"] else 1)
    monkeypatch.setattr(ingestion.pipeline, "make_pipeline", lambda source, settings: SimpleNamespace(last_trace=trace))
    monkeypatch.setattr(ingestion.pipeline, "dlt_step_seconds", slow_trace)
    report = bench.run.step_harbor_ingest(settings, time.monotonic())
    assert report["rows"] == 3 and report["rows_per_table"]["orders"] == 3
    assert report["seconds"] < 0.5


def test_each_side_pays_its_own_imports():
    """A step's clock starts before dlt, SQLAlchemy or DuckDB is imported: Harbor's ingest pays for dlt and itself
    as `harbor ingest shop` does, the reference for DuckDB only."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bench.run; print(sorted({'dlt', 'sqlalchemy', 'duckdb'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "[]"


def test_steps_run_without_settings_that_would_change_what_is_measured(monkeypatch, settings):
    import bench.run

    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "pyarrow")
    monkeypatch.setenv("LOAD__WORKERS", "2")
    monkeypatch.setenv("DBT_PROFILES_DIR", "/somewhere/else")
    seen: dict = {}

    def child(command, env, **kwargs):
        seen.update(env)
        return SimpleNamespace(returncode=0, stdout='{"seconds": 1.0}', stderr="")

    monkeypatch.setattr(bench.run.subprocess, "run", child)
    bench.run.run_step("duckdb_scan", settings)
    assert "HARBOR_DESTINATION" not in seen and "SOURCES__SHOP__BACKEND" not in seen
    assert seen["LOAD__WORKERS"] == "2"  # a tuning setting passes
    assert seen["SOURCES__SHOP__CREDENTIALS"] == settings.shop_url
    assert seen["DBT_PROFILES_DIR"] == str(PROJECT_DIR)
    assert bench.run.ignored_settings(dict(os.environ)) == ["HARBOR_DESTINATION", "SOURCES__SHOP__BACKEND"]
    # dbt's variables too, but the bench's own (DBT_FULL_REFRESH=true made every incremental build a full one).
    monkeypatch.setenv("DBT_FULL_REFRESH", "true")
    monkeypatch.setenv("DBT_TARGET_PATH", "/bench/target")
    bench.run.run_step("duckdb_scan", settings)
    assert "DBT_FULL_REFRESH" not in seen or seen.get("DBT_FULL_REFRESH") is None
    assert "DBT_FULL_REFRESH" in bench.run.ignored_settings(dict(os.environ))
    assert "DBT_TARGET_PATH" not in bench.run.ignored_settings(dict(os.environ))


def test_every_product_can_be_ordered_at_every_scale():
    from bench.fill import product_step

    for order_items in (1_000, 100_000, 1_000_000, 10_000_000):
        products = Scale(order_items).products
        step = product_step(products)
        assert len({1 + (g * step) % products for g in range(products)}) == products, order_items


def test_a_mart_column_the_reference_does_not_compute_is_an_error_not_unchecked(tmp_path):
    warehouse = tmp_path / "harbor.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create schema marts; create schema bench_ref")
        conn.execute("create table marts.fct_orders as select 1 as order_id, 2 as amount, now() as _loaded_at")
        conn.execute("create table bench_ref.fct_orders as select 1 as order_id, 2 as amount")
        conn.execute("create table marts.dim_customers as select 1 as customer_id, 'DE' as country_code")
        conn.execute("create table bench_ref.dim_customers as select 1 as customer_id, 'DE' as country_code")
    assert marts_equal(warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update bench_ref.dim_customers set country_code = 'FR'")
    assert not marts_equal(warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("alter table marts.fct_orders add column order_total_usd integer")
    with pytest.raises(ValueError, match="does not compute fct_orders's order_total_usd"):
        marts_equal(warehouse)


def _measured(order_items: int) -> dict:
    """A scale's result as `bench_scale` returns it, every figure 1."""
    step = {"seconds": 1.0, "peak_rss_mib": 1.0}
    return {
        "order_items": order_items,
        "source_rows": {"orders": order_items},
        "ingest": {"harbor": step, "connectorx": step, "duckdb_scan": step, "ratio": 1.0, "ratio_connectorx": 1.0},
        "transform": {"dbt_run": step, "reference_sql": step, "dbt_build": step, "ratio_run": 1.0},
        "incremental": {"fraction_of_full": 0.1, "ingest": step},
        "incremental_changed_scope": {"fraction_of_full": 0.1, "ingest": step},
        **dict.fromkeys(
            ("marts_equal", "marts_equal_after_change", "marts_equal_after_second_change", "connectorx_raw_equal"),
            True,
        ),
    }


def test_a_failing_scale_keeps_the_figures_of_the_scales_before_it(tmp_path, monkeypatch, capsys):
    import bench.run

    def bench_scale(order_items, work_dir, *args):
        (work_dir / f"scale_{order_items}").mkdir(parents=True)
        if order_items == 200:
            raise RuntimeError("bench step dbt_build failed")
        return _measured(order_items)

    monkeypatch.setattr(bench.run, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(bench.run, "bench_scale", bench_scale)
    with pytest.raises(RuntimeError):
        bench.run.main(["--scales", "100", "200", "300", "--work-dir", str(tmp_path / "work")])
    (saved,) = (tmp_path / "results").glob("bench-*.json")
    output = json.loads(saved.read_text())
    assert output["results"] == [_measured(100)]
    assert output["failed"] == {"order_items": 200, "error": "RuntimeError: bench step dbt_build failed"}
    assert not list((tmp_path / "work").iterdir())  # both scales' warehouses deleted
    # ... and prints them: the table came only when every scale had finished.
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:2] == ["order", "items"] and printed[2].split()[0] == "100"


def _saved_run(directory, name: str, run_at: str, ingest_seconds: float) -> None:
    result = {
        "order_items": 1000,
        "ingest": {"harbor": {"seconds": ingest_seconds, "peak_rss_mib": 300.0}, "ratio": 0.5},
        "transform": {"ratio_run": 1.2, "dbt_build": {"seconds": 10.0}},
        "incremental": {"fraction_of_full": 0.3},
    }
    run = {"run_at": run_at, "commit": name, "machine": {"cpus": 2, "memory_gib": 23.5}, "results": [result]}
    (directory / f"bench-{name}.json").write_text(json.dumps(run))


def test_the_trend_lists_runs_by_time_with_each_figure_s_change(tmp_path, capsys):
    from bench.trend import load_runs, main, trend

    # File names do not sort by time here: the trend must follow run_at.
    _saved_run(tmp_path, "b", "2026-01-01T00:00:00+00:00", 10.0)
    _saved_run(tmp_path, "a", "2026-02-01T00:00:00+00:00", 12.0)
    (tmp_path / "bench-broken.json").write_text("{not json")
    runs, skipped = load_runs(tmp_path)
    assert [run["commit"] for run in runs] == ["b", "a"]
    assert len(skipped) == 1 and "bench-broken.json" in skipped[0]
    lines = trend(runs).splitlines()
    assert lines[0] == "1,000 order items"
    assert " b " in lines[2] and "10.00" in lines[2] and "(" not in lines[2]
    assert " a " in lines[3] and "12.00 (+20%)" in lines[3]
    assert "profiled" not in trend(runs)
    runs[1]["profiled"] = True
    lines = trend(runs).splitlines()
    # A profiled run is marked and compared with profiled runs only (here: none before it).
    assert lines[3].lstrip().startswith("* 2026-02-01") and "(+20%)" not in lines[3]
    assert "profiled with py-spy" in lines[-1]

    # A run that stopped partway (or an older format) lacks figures: shown as "-", compared with the run before.
    runs.append({**runs[1], "profiled": False, "run_at": "2026-03-01T00:00:00+00:00", "commit": "c", "repeat": 3})
    runs[2]["results"] = [{"order_items": 1000, "ingest": {"harbor": {"seconds": 11.0, "peak_rss_mib": 300.0}}}]
    last = trend(runs).splitlines()[4]
    assert " c " in last and " 3 " in last and "11.00 (-8%)" not in last and "11.00 (+10%)" in last
    assert last.split().count("-") == 4

    assert main(["--results-dir", str(tmp_path / "empty")]) == 1
    assert "run `make bench` first" in capsys.readouterr().err


def test_a_profiled_step_gets_a_profile_file_of_its_own_and_its_report_still_reads(tmp_path):
    from bench.run import profiled, step_report

    command = [sys.executable, "-m", "bench.run", "--step", "harbor_ingest"]
    first = profiled(command, tmp_path / "profiles" / "scale_1000-harbor_ingest")
    assert first[-len(command) :] == command and first[first.index("--") + 1 :] == command
    assert "--subprocesses" in first  # dbt steps run dbt in a process of its own
    output = Path(first[first.index("--output") + 1])
    assert output.name == "scale_1000-harbor_ingest-1.speedscope.json" and output.parent.is_dir()
    output.write_text("{}")
    second = profiled(command, tmp_path / "profiles" / "scale_1000-harbor_ingest")
    assert Path(second[second.index("--output") + 1]).name == "scale_1000-harbor_ingest-2.speedscope.json"

    # py-spy prints its own lines around the step's JSON report.
    stdout = 'py-spy> Sampling process 100 times a second.\n\n{"seconds": 1.5}\n\npy-spy> Wrote speedscope file\n'
    assert step_report(stdout) == {"seconds": 1.5}


def test_an_unreachable_server_is_one_clear_line_without_the_password(capsys):
    from bench.run import main

    assert main(["--scales", "1000", "--admin-url", "postgresql+psycopg2://bench:s3cret@127.0.0.1:1/postgres"]) == 2
    err = capsys.readouterr().err
    assert "bench: cannot use PostgreSQL at postgresql+psycopg2://bench:***@127.0.0.1:1/postgres" in err
    assert "s3cret" not in err and "Traceback" not in err


def test_the_bench_refuses_bad_arguments_and_a_role_that_may_not_create_databases(capsys):
    from bench.run import main

    for arguments in (["--scales", "0"], ["--change", "0"], ["--change", "1.5"], ["--repeat", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(arguments)
        assert exited.value.code == 2
    role = f"bench_no_createdb_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create role "{role}" login nocreatedb'))
    try:
        assert main(["--scales", "1000", "--admin-url", f"postgresql+psycopg2://{role}@127.0.0.1:5432/postgres"]) == 2
        assert "its role may not create databases (CREATEDB)" in capsys.readouterr().err
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop role "{role}"'))
        admin.dispose()


def test_the_compared_steps_take_turns_going_first_and_their_medians_are_compared():
    """Whichever of a pair runs first finds the caches colder: Harbor goes first in odd rounds, the reference in
    even ones, and each side reports its median run with every run's time and its worst peak memory."""
    order: list[str] = []

    def step(name: str, seconds: list[float], peaks: list[float]):
        def run() -> dict:
            order.append(name)
            return {"seconds": seconds.pop(0), "peak_rss_mib": peaks.pop(0), "round": len(order)}

        return run

    harbor, reference = alternated(
        3, step("harbor", [3.0, 2.0, 2.5], [300, 350, 320]), step("reference", [1.0, 1.4, 1.2], [200, 210, 205])
    )
    assert order == ["harbor", "reference", "reference", "harbor", "harbor", "reference"]
    assert harbor["seconds"] == 2.5 and harbor["runs_seconds"] == [3.0, 2.0, 2.5]
    assert harbor["round"] == 5 and harbor["peak_rss_mib"] == 350
    assert reference["seconds"] == 1.2 and reference["peak_rss_mib"] == 210
    single, _ = alternated(1, step("harbor", [4.0], [1]), step("reference", [1.0], [1]))
    assert single["seconds"] == 4.0 and single["runs_seconds"] == [4.0]


def test_a_repeated_ingest_starts_from_an_empty_warehouse(settings):
    """Each repeated Harbor ingest must be a first load, not an incremental one finding every row loaded."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    settings.warehouse.write_bytes(b"x")
    wal = settings.warehouse.with_name(settings.warehouse.name + ".wal")
    wal.write_bytes(b"x")
    assert fresh(settings) is settings
    assert not settings.warehouse.exists() and not wal.exists()
    fresh(settings)  # nothing to delete: no error
