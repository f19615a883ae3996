"""`--vars '{test_scope: changed}'`: row-level tests check the rows the build wrote, every other test all rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from ingestion.demo import shop
from ingestion.pipeline import ingest_shop
from ingestion.transform import run_dbt

CHANGED = ["--vars", "{test_scope: changed}"]


def failed_tests() -> set[str]:
    results = json.loads((Path(os.environ["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    return {r["unique_id"].split(".")[2] for r in results["results"] if r["status"] in ("fail", "error")}


def test_changed_scope_tests_the_rows_a_build_wrote_and_only_those(settings):
    shop.create_shop(settings.shop_url, scale=0.2)
    ingest_shop(settings)
    run_dbt(settings, "build")

    # An old staged row goes bad (as if a past build had let it through): the changed scope of a build does not
    # look at it again; `dbt test`, which writes nothing, checks every row whatever the scope.
    with duckdb.connect(str(settings.warehouse)) as conn:
        (order_id,) = conn.execute("select min(order_id) from staging.stg_shop__orders").fetchone()
        conn.execute("update staging.stg_shop__orders set order_status = 'lost' where order_id = ?", [order_id])
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    assert run_dbt(settings, "test", "--select", "stg_shop__orders", *CHANGED, check=False) != 0
    assert "accepted_values_stg_shop__orders_order_status" in " ".join(failed_tests())
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("update staging.stg_shop__orders set order_status = 'placed' where order_id = ?", [order_id])

    # A new bad row arrives: the changed scope catches it, as the full scope would.
    shop.advance_shop(settings.shop_url, ticks=1)
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "update raw_shop.orders set status = 'lost' where order_id = (select max(order_id) from raw_shop.orders)"
        )
    assert run_dbt(settings, "build", *CHANGED, check=False) != 0
    assert "accepted_values_stg_shop__orders_order_status" in " ".join(failed_tests())
