"""`--vars '{test_scope: changed}'`: row-level tests check the rows the build wrote, every other test all rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from ingestion.demo import shop
from ingestion.pipeline import ingest_shop
from ingestion.tests.obs_project import make_project
from ingestion.tests.warehouses import built_demo_shop
from ingestion.transform import run_dbt

CHANGED = ["--vars", "{test_scope: changed}"]


def ended_with(*statuses: str) -> str:
    """The names of the last invocation's tests that ended with one of `statuses`, space-separated."""
    results = json.loads((Path(os.environ["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    return " ".join(r["unique_id"].split(".")[2] for r in results["results"] if r["status"] in statuses)


def compiled_code(test_name_prefix: str) -> str:
    """The SQL the last invocation ran for the one test whose name starts with `test_name_prefix`."""
    results = json.loads((Path(os.environ["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    (code,) = [
        r["compiled_code"] for r in results["results"] if r["unique_id"].split(".")[2].startswith(test_name_prefix)
    ]
    return code


def test_changed_scope_tests_the_rows_a_build_wrote_and_only_those(settings):
    built_demo_shop(settings)

    # An old staged row goes bad (as if a past build had let it through): the changed scope of a build does not
    # look at it again; `dbt test`, which writes nothing, checks every row whatever the scope.
    with duckdb.connect(str(settings.warehouse)) as conn:
        (order_id,) = conn.execute("select min(order_id) from staging.stg_shop__orders").fetchone()
        conn.execute("update staging.stg_shop__orders set order_status = 'lost' where order_id = ?", [order_id])
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    # Narrowed: a row-level test. Not narrowed: one with `mostly`, whose fraction is of the whole table.
    assert "_staged_at >" in compiled_code(
        "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_"
    )
    assert "_staged_at" not in compiled_code(
        "harbor_expectations_expect_column_values_to_match_regex_stg_shop__customers"
    )
    assert run_dbt(settings, "test", "--select", "stg_shop__orders", *CHANGED, check=False) != 0
    assert "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_" in ended_with(
        "fail", "error"
    )
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
    assert "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_" in ended_with(
        "fail", "error"
    )

    # The next build brings nothing new, and still checks that row: a test is narrowed to the rows written since
    # the last build in which it passed (it had passed the rows it failed, and dropped their stored failures).
    assert run_dbt(settings, "build", *CHANGED, check=False) != 0
    assert "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_" in ended_with(
        "fail", "error"
    )
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("update staging.stg_shop__orders set order_status = 'placed' where order_status = 'lost'")
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0

    # Rows a `dbt run` staged were never tested: the next build's changed scope checks them.
    shop.advance_shop(settings.shop_url, ticks=1)
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "update raw_shop.orders set status = 'lost' where order_id = (select max(order_id) from raw_shop.orders)"
        )
    run_dbt(settings, "run", *CHANGED)
    assert run_dbt(settings, "build", *CHANGED, check=False) != 0
    assert "relationships_stg_shop__orders_order_status__order_status__ref_order_statuses_" in ended_with(
        "fail", "error"
    )


def test_changed_scope_tests_a_source_s_rows_not_staged_yet_and_the_old_rows_sharing_their_keys(settings):
    built_demo_shop(settings)
    source_unique = "source_unique_shop_customers_customer_id"

    # A duplicate key among rows already staged: not this build's rows, so the changed scope leaves it to the
    # full scope (staging deduplicates, and the test only warns).
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("insert into raw_shop.customers select * from raw_shop.customers order by customer_id limit 1")
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    assert source_unique not in ended_with("warn")
    assert run_dbt(settings, "build", check=False) == 0
    assert source_unique in ended_with("warn")
    # A full refresh restages every row, so even under the changed scope it tests every row of the source.
    assert run_dbt(settings, "build", "--full-refresh", *CHANGED, check=False) == 0
    assert source_unique in ended_with("warn")
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "delete from raw_shop.customers where rowid = (select max(rowid) from raw_shop.customers"
            " where customer_id = (select min(customer_id) from raw_shop.customers))"
        )

    # The test warned in its last run, so the next build checks every row again; passing, it narrows again.
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    assert source_unique in ended_with("pass")

    # A new load repeats the key of an old row: the changed scope sees it, although the old row is not new.
    shop.advance_shop(settings.shop_url, ticks=1)
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse)) as conn:
        (newest_load,) = conn.execute("select max(_dlt_load_id) from raw_shop.customers").fetchone()
        conn.execute(
            "insert into raw_shop.customers select * replace ((select min(customer_id) from raw_shop.customers)"
            " as customer_id) from raw_shop.customers where _dlt_load_id = ? limit 1",
            [newest_load],
        )
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    assert source_unique in ended_with("warn")
    compiled = next((Path(os.environ["DBT_TARGET_PATH"]) / "compiled").rglob(f"{source_unique}*.sql")).read_text()
    assert "_dlt_load_id not in" in compiled  # scoped, not the whole table


def test_changed_scope_checks_a_new_value_of_a_unique_column_against_the_old_rows(settings):
    """Narrowed to the new rows, a `unique` test on a column other than the model's key passed a new product
    repeating an old product's SKU; `dbt test` failed it."""
    built_demo_shop(settings)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "insert into raw_shop.products select * replace (product_id + 100000 as product_id, "
            "'9999999999.1' as _dlt_load_id, now() as _extracted_at) from raw_shop.products order by product_id limit 1"
        )
    assert run_dbt(settings, "build", *CHANGED, check=False) != 0
    assert "unique_stg_shop__products_sku" in ended_with("fail", "error")


def test_changed_scope_tests_a_source_s_load_that_a_dbt_run_staged_untested(settings):
    """Source tests were narrowed to the loads not staged yet: a load a plain `dbt run` staged was never
    source-tested. They now also check the loads extracted since the test last passed."""
    built_demo_shop(settings)
    source_unique = "source_unique_shop_customers_customer_id"
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(
            "insert into raw_shop.customers select * replace ('9999999999.2' as _dlt_load_id, now() as _extracted_at)"
            " from raw_shop.customers where customer_id = (select min(customer_id) from raw_shop.customers)"
        )
    run_dbt(settings, "run", *CHANGED)
    assert run_dbt(settings, "build", *CHANGED, check=False) == 0
    assert source_unique in ended_with("warn")
    assert "_dlt_load_id not in" in compiled_code(source_unique)  # still scoped, not the whole table


def test_changed_scope_leaves_tests_with_a_count_threshold_whole(tmp_path):
    """With `warn_if: ">5"` a narrowed test saw each build's few new bad rows, stayed under the threshold, passed,
    and the rows behind it were never counted together: such a test, like one with `mostly`, sees every row."""
    project = make_project(tmp_path / "project")
    (project.path / "models" / "stamped.sql").write_text(
        "{{ config(materialized='table', unique_key='order_id') }}\n"
        "select order_id, amount, current_timestamp as _staged_at from {{ ref('orders') }}\n"
    )
    (project.path / "models" / "_stamped.yml").write_text(
        "version: 2\nmodels:\n  - name: stamped\n    columns:\n      - name: order_id\n        data_tests:\n"
        "          - not_null:\n              name: stamped_order_id_plain\n"
        "          - not_null:\n              name: stamped_order_id_threshold\n"
        "              config: {warn_if: '>5', error_if: '>10'}\n"
        "      - name: amount\n      - name: _staged_at\n"
    )
    project.dbt("build", "--select", "orders", "stamped")
    built = project.dbt("build", "--select", "stamped", "--vars", "{test_scope: changed}")
    assert built.returncode == 0, built.stdout
    results = json.loads((project.path / "target" / "run_results.json").read_text())
    compiled = {r["unique_id"].split(".")[2]: r["compiled_code"] for r in results["results"]}
    assert "_staged_at >" in compiled["stamped_order_id_plain"]
    assert "_staged_at" not in compiled["stamped_order_id_threshold"]
