"""Incremental marts (README "Transformations / Incremental marts"): after one targeted change of each hard kind,
written into raw as a later load, an incremental `dbt build` gives exactly the marts of a `--full-refresh`, on
DuckDB and on PostgreSQL, and recomputes only the rows the changes affect (untouched rows keep `_loaded_at`).

The changes: a soft-deleted order; a soft-deleted customer; an item of the oldest order (long outside any time window) changed; a late
exchange rate that an already-built order now picks; an order moved to another day; an order moved to
another customer."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.demo import shop
from ingestion.demo.fx_api import FxApi
from ingestion.pipeline import ingest_shop
from ingestion.settings import Settings
from ingestion.tests.warehouses import (
    MARTS,
    Warehouse,
    assert_a_full_refresh_gives_the_same_marts,
    built_demo_shop,
    duckdb_and_postgres,
    select,
)
from ingestion.transform import run_dbt

INCREMENTAL_MARTS = ("agg_daily_revenue", "dim_customers", "fct_order_items", "fct_orders", "fct_payments")


def test_incremental_marts_equal_a_full_refresh_and_recompute_only_what_changed(settings, pg_env, monkeypatch):
    both = duckdb_and_postgres(settings, pg_env)
    shop.create_shop(settings.shop_url, seed=11, scale=0.2, events_to=settings.data_dir)
    with FxApi(seed=11, tick=0) as fx_api:
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            withheld = _withhold_rate(warehouse)
            warehouse.build()

    incremental = {}
    for warehouse in both:
        initial = warehouse.marts()
        (built_at,) = select(warehouse, "select max(_loaded_at) from marts.fct_orders")[0]
        change = _change_raw(warehouse, withheld)
        warehouse.build()
        marts = incremental[warehouse.target] = warehouse.marts()

        # Each change shows in the marts...
        deleted, old_item, moved, reassigned, priced = (
            change["deleted"],
            change["old_item"],
            change["moved"],
            change["reassigned"],
            change["priced"],
        )
        assert select(warehouse, f"select count(*) from marts.fct_orders where order_id = {deleted['order_id']}") == [
            (0,)
        ]
        for mart in ("fct_order_items", "fct_payments"):
            rows = select(warehouse, f"select count(*) from marts.{mart} where order_id = {deleted['order_id']}")
            assert rows == [(0,)], mart
        assert _order(warehouse, old_item["order_id"])["order_total"] == old_item["order_total"] + old_item["added"]
        assert _lifetime_value(warehouse, old_item["customer_id"]) != old_item["lifetime_value"]
        assert _order(warehouse, moved["order_id"])["order_date"] == moved["order_date"]
        assert _order(warehouse, reassigned["order_id"])["customer_id"] == reassigned["customer_id"]
        assert _order(warehouse, priced["order_id"])["usd_per_unit"] == priced["usd_per_unit"]
        assert _order(warehouse, priced["order_id"])["order_total_usd"] != priced["order_total_usd"]
        # ... including the aggregates that lost an order: the deleted order's customer and day, the moved
        # order's old day, the reassigned order's old customer.
        assert _customer_orders(warehouse, deleted["customer_id"]) == deleted["customer_order_count"] - 1
        assert _customer_orders(warehouse, reassigned["old_customer_id"]) == reassigned["old_customer_order_count"] - 1
        assert _day_orders(warehouse, deleted["order_date"]) == deleted["day_order_count"] - 1
        assert _day_orders(warehouse, moved["old_order_date"]) == moved["old_day_order_count"] - 1
        # A customer who left stays in dim_customers, flagged (the row-count reconciliation failed the build).
        assert select(
            warehouse, f"select is_deleted from marts.dim_customers where customer_id = {change['left_customer']}"
        ) == [(True,)]
        assert marts != initial

        # Only what the changes affect was recomputed; every other row kept its `_loaded_at`.
        recomputed = select(
            warehouse, "select order_id from marts.fct_orders where _loaded_at > %s order by order_id", (built_at,)
        )
        expected = sorted(
            {old_item["order_id"], moved["order_id"], reassigned["order_id"], *priced["orders_on_new_rate"]}
        )
        assert [order_id for (order_id,) in recomputed] == expected, warehouse.target
        recomputed_lines = select(
            warehouse,
            "select order_item_id from marts.fct_order_items where _loaded_at > %s order by order_item_id",
            (built_at,),
        )
        assert [line_id for (line_id,) in recomputed_lines] == change["lines_to_recompute"], warehouse.target
        for mart in INCREMENTAL_MARTS:
            ((total, touched),) = select(
                warehouse,
                f"select count(*), count(case when _loaded_at > %s then 1 end) from marts.{mart}",
                (built_at,),
            )
            assert 0 < touched <= max(10, total // 10), f"{mart} on {warehouse.target}: {touched} of {total} rows"

    for mart in MARTS:
        assert incremental["ci"][mart] == incremental["pg"][mart], f"{mart}: DuckDB and PostgreSQL differ"
    assert_a_full_refresh_gives_the_same_marts(both, incremental)


def test_an_incremental_build_reads_the_change_not_the_whole_history(settings, monkeypatch):
    """What keeps an incremental build's cost with the size of the change (README "Performance"): a mart's
    watermark is written into its query as a literal (a bound the engine pushes into its scans, where a subquery
    was compared only after the joins), an incremental mart's import CTEs are inlined (not copied whole before
    its filters), DuckDB's staging upserts delete and insert (its MERGE rewrote the updated rows in place)
    while PostgreSQL's merge, and a snapshot reads only the versions staged since its last run."""
    shop.create_shop(settings.shop_url, seed=5, scale=0.05, events_to=settings.data_dir)
    warehouse = Warehouse(settings, "dev")
    with FxApi(seed=5, tick=0) as fx_api:
        warehouse.ingest(monkeypatch, fx_api)
    warehouse.build()
    warehouse.build()  # every mart exists now: this one runs incrementally
    target = settings.warehouse.parent.parent / "target_dev"

    compiled = (target / "compiled" / "harbor" / "models" / "marts" / "fct_orders.sql").read_text()
    (newest,) = select(warehouse, "select cast(max(_loaded_at) as varchar) from marts.fct_orders")[0]
    assert f"'{newest}'" in compiled
    assert "max(_loaded_at)" not in compiled
    imports = re.findall(r"(\w+) as (not materialized )?\(\s*select \* from \"harbor\"", compiled)
    assert {name for name, _ in imports} >= {"orders", "order_items", "payments", "exchange_rates"}
    assert all(inlined for _, inlined in imports), imports

    staged = (target / "run" / "harbor" / "models" / "staging" / "shop" / "stg_shop__orders.sql").read_text().lower()
    assert "delete from" in staged and "merge into" not in staged
    run_dbt(settings, "parse", "--target", "pg", "--target-path", str(settings.warehouse.parent.parent / "pg"))
    manifest = json.loads((settings.warehouse.parent.parent / "pg" / "manifest.json").read_text())
    assert manifest["nodes"]["model.harbor.stg_shop__orders"]["config"]["incremental_strategy"] == "merge"

    # A version staged before the snapshot's last run is not read again: changed behind dbt's back (no new
    # `_staged_at`), it makes no new version; stamped as a new staging run would, it does.
    snapshot = ["--select", "snp_shop__customers", "--exclude-resource-type", "test"]
    versions = "select count(*) from snapshots.snp_shop__customers where customer_id = 1"
    (before,) = select(warehouse, versions)[0]
    with warehouse.connect() as conn:
        conn.execute(
            "update staging.stg_shop__customers set updated_at = updated_at + interval 1 second where customer_id = 1"
        )
    warehouse.build(*snapshot)
    assert select(warehouse, versions) == [(before,)]
    with warehouse.connect() as conn:
        conn.execute(
            "update staging.stg_shop__customers set _staged_at = _staged_at + interval 1 day where customer_id = 1"
        )
    warehouse.build(*snapshot)
    assert select(warehouse, versions) == [(before + 1,)]


def _change_raw(warehouse: Warehouse, withheld: tuple[str, date, dict[str, Any]]) -> dict[str, Any]:
    """Writes the changes into raw as one later load and returns what each should do to the marts. Orders are
    picked by SQL with a total order, so both engines (loaded from the same shop) get the same changes."""
    orders = select(
        warehouse,
        "select order_id, customer_id, order_date, currency_code, order_total, is_revenue "
        "from marts.fct_orders order by ordered_at, order_id",
    )
    by_id = {row[0]: row for row in orders}
    used: set[int] = set()

    def pick(condition: Any) -> tuple:
        row = next(r for r in orders if r[0] not in used and condition(r))
        used.add(row[0])
        return row

    # The late rate: orders of the withheld rate's currency and day use the day before's; now it arrives.
    currency, rate_day, raw_rate = withheld
    late = select(
        warehouse,
        "select fct.order_id, rates.usd_per_unit from marts.fct_orders as fct "
        "inner join intermediate.int_orders__usd_rates as rates on fct.order_id = rates.order_id "
        "where fct.currency_code = %s and fct.order_date = %s and fct.order_total > 0 order by fct.order_id",
        (currency, rate_day),
    )
    assert late, "the withheld rate's day has orders"
    priced_id, old_rate = late[0]
    used.add(priced_id)
    priced_total_usd = _order(warehouse, priced_id)["order_total_usd"]
    new_rate = (Decimal(str(old_rate)) * Decimal("1.5")).quantize(Decimal("0.000001"))
    orders_on_new_rate = [
        order_id
        for (order_id,) in select(
            warehouse,
            "select fct.order_id from marts.fct_orders as fct "
            "inner join intermediate.int_orders__usd_rates as rates on fct.order_id = rates.order_id "
            "where fct.currency_code = %s and fct.order_date >= %s and rates.rate_date < %s",
            (currency, rate_day, rate_day),
        )
    ]

    deleted = pick(lambda r: r[5])
    old_item_order = pick(lambda r: r[4] > 0 and r[5])
    moved = pick(lambda r: r[2] != deleted[2])
    reassigned = pick(lambda r: r[1] != deleted[1])
    new_customer = next(r[1] for r in orders if r[1] not in (reassigned[1], deleted[1]))
    left_customer = next(
        r[1] for r in orders if r[1] not in (reassigned[1], deleted[1], new_customer, old_item_order[1])
    )
    ((item_id, unit_price),) = select(
        warehouse,
        "select order_item_id, unit_price from marts.fct_order_items where order_id = %s "
        "order by order_item_id limit 1",
        (old_item_order[0],),
    )

    # Lines copy the order's customer, currency and day: those of the moved and reassigned orders change.
    lines_to_recompute = sorted(
        {item_id}
        | {
            line_id
            for (line_id,) in select(
                warehouse,
                "select order_item_id from marts.fct_order_items where order_id in (%s, %s)",
                (moved[0], reassigned[0]),
            )
        }
    )

    load_id = f"{time.time():.6f}"
    now = datetime.now(UTC)
    with warehouse.connect() as conn:
        cur = conn.cursor()
        stamp = {"_extracted_at": now, "_dlt_load_id": load_id}
        _new_version(cur, "raw_shop.orders", "order_id", deleted[0], {**stamp, "deleted_at": now})
        _new_version(cur, "raw_shop.order_items", "order_item_id", item_id, stamp, add={"quantity": 2})
        _new_version(cur, "raw_shop.orders", "order_id", moved[0], stamp, add={"ordered_at": timedelta(days=-40)})
        _new_version(cur, "raw_shop.orders", "order_id", reassigned[0], {**stamp, "customer_id": new_customer})
        _new_version(cur, "raw_shop.customers", "customer_id", left_customer, {**stamp, "deleted_at": now})
        _insert(cur, "raw_fx.exchange_rates", _late_rate(raw_rate, new_rate, stamp))

    def order_count(column: str, value: Any) -> int:
        return sum(1 for r in orders if r[{"customer_id": 1, "order_date": 2}[column]] == value)

    return {
        "left_customer": left_customer,
        "lines_to_recompute": lines_to_recompute,
        "deleted": {
            "order_id": deleted[0],
            "customer_id": deleted[1],
            "order_date": deleted[2],
            "customer_order_count": order_count("customer_id", deleted[1]),
            "day_order_count": order_count("order_date", deleted[2]),
        },
        "old_item": {
            "order_id": old_item_order[0],
            "customer_id": old_item_order[1],
            "lifetime_value": _lifetime_value(warehouse, old_item_order[1]),
            "order_total": by_id[old_item_order[0]][4],
            "added": 2 * unit_price,
        },
        "moved": {
            "order_id": moved[0],
            "order_date": moved[2] - timedelta(days=40),
            "old_order_date": moved[2],
            "old_day_order_count": order_count("order_date", moved[2]) - (deleted[2] == moved[2]),
        },
        "reassigned": {
            "order_id": reassigned[0],
            "customer_id": new_customer,
            "old_customer_id": reassigned[1],
            "old_customer_order_count": order_count("customer_id", reassigned[1]),
        },
        "priced": {
            "order_id": priced_id,
            "usd_per_unit": new_rate,
            "order_total_usd": priced_total_usd,
            "orders_on_new_rate": orders_on_new_rate,
        },
    }


def _new_version(
    cur: Any, table: str, key_column: str, key: int, changes: dict[str, Any], add: dict[str, Any] | None = None
) -> None:
    """A newer version of a raw row (its latest one with `changes` set and `add` added), one day later by
    `updated_at`, as a later load would bring it."""
    cur.execute(
        f"select * from {table} where {key_column} = %s order by updated_at desc, _dlt_load_id desc limit 1", (key,)
    )
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    for column, delta in (add or {}).items():
        row[column] += delta
    row.update(changes)
    row["updated_at"] += timedelta(days=1)
    _insert(cur, table, row)


def _withhold_rate(warehouse: Warehouse) -> tuple[str, date, dict[str, Any]]:
    """Removes from raw, before the first build, the rate of the (currency, day) with the most orders that has
    rates before and after it, so the first build prices that day's orders at the day before's rate. Returns
    the currency, the day and the raw row, which `_late_rate` brings back later."""
    orders = select(warehouse, "select upper(currency), ordered_at from raw_shop.orders")
    order_days = Counter((currency, _utc_day(ordered_at)) for currency, ordered_at in orders)
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("select * from raw_fx.exchange_rates")
        names = [d[0] for d in cur.description]
        rates = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        days = {(r["currency_code"].upper(), date.fromisoformat(str(r["rate_date"])[:10])): r for r in rates}
        inner = [
            key
            for key in days
            if any(c == key[0] and d < key[1] for c, d in days) and any(c == key[0] and d > key[1] for c, d in days)
        ]
        currency, day = max(inner, key=lambda key: (order_days[key], key))
        row = days[currency, day]
        cur.execute(
            "delete from raw_fx.exchange_rates where currency_code = %s and rate_date = %s",
            (row["currency_code"], row["rate_date"]),
        )
    return currency, day, row


def _late_rate(row: dict[str, Any], usd_per_unit: Decimal, changes: dict[str, Any]) -> dict[str, Any]:
    """The withheld raw rate, arriving late with a revised value."""
    now = datetime.now(UTC)
    return {
        **row,
        "usd_per_unit": type(row["usd_per_unit"])(str(usd_per_unit)),
        "updated_at": now if row["updated_at"].tzinfo else now.replace(tzinfo=None),
        **changes,
    }


def _utc_day(value: datetime) -> date:
    return (value.astimezone(UTC) if value.tzinfo else value).date()


def _insert(cur: Any, table: str, row: dict[str, Any]) -> None:
    if "_dlt_id" in row:
        row["_dlt_id"] = uuid.uuid4().hex[:14]
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    cur.execute(f"insert into {table} ({columns}) values ({marks})", tuple(row.values()))


def _order(warehouse: Warehouse, order_id: int) -> dict[str, Any]:
    with warehouse.connect() as conn:
        cur = conn.cursor()
        cur.execute("select * from marts.fct_orders where order_id = %s", (order_id,))
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def _customer_orders(warehouse: Warehouse, customer_id: int) -> int:
    ((count,),) = select(warehouse, f"select order_count from marts.dim_customers where customer_id = {customer_id}")
    return count


def _lifetime_value(warehouse: Warehouse, customer_id: int) -> Any:
    ((value,),) = select(
        warehouse, "select lifetime_value from marts.dim_customers where customer_id = %s", (customer_id,)
    )
    return value


def _day_orders(warehouse: Warehouse, day: date) -> int:
    ((count,),) = select(
        warehouse, "select coalesce(sum(order_count), 0) from marts.agg_daily_revenue where order_date = %s", (day,)
    )
    return count


def test_a_run_whose_clock_is_behind_the_last_run_s_stops_before_stamping(settings, capfd):
    """Rows are stamped with the run's start on the machine running dbt: after a run from a machine whose clock
    was ahead, changes stamped by a correct clock fell below the marts' watermarks and were skipped for good."""

    built_demo_shop(settings, scale=0.1)
    shop.advance_shop(settings.shop_url)  # changes waiting to be staged: a build would stamp them
    ingest_shop(settings)
    stamps = (
        "select (select max(_staged_at) from staging.stg_shop__orders), (select count(*) from staging.stg_shop__orders), "
        "(select max(_loaded_at) from marts.fct_orders), (select count(*) from marts.fct_orders)"
    )
    with duckdb.connect(str(settings.warehouse)) as conn:
        before = conn.execute(stamps).fetchone()
        conn.execute(
            "insert into observability.dbt_invocations (invocation_id, run_started_at) "
            "values ('from-a-clock-ahead', now()::timestamp + interval 1 hour)"
        )
    capfd.readouterr()
    assert run_dbt(settings, "build", check=False) != 0
    assert "the clock of this machine is behind" in capfd.readouterr().out
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute(stamps).fetchone() == before  # nothing staged, nothing stamped


def test_the_reconciliations_fail_when_marts_and_staging_disagree(settings):
    """The singular reconciliation tests pass on every build; here each is shown to fail on the disagreement it
    exists for (a mart changed behind dbt's back)."""
    from ingestion.quality import dbt_target_dir, load_outcomes

    totals = "assert_fct_orders_totals_match_order_items"
    lifetime = "assert_dim_customers_lifetime_value_matches_fct_orders"
    counts = "assert_marts_row_counts_match_staging"
    paid = "assert_fct_orders_amount_paid_matches_payments"
    daily = "assert_agg_daily_revenue_matches_fct_orders"
    marts = ("fct_orders", "dim_customers", "agg_daily_revenue")

    def statuses(*tests: str) -> tuple[str, ...]:
        run_dbt(settings, "test", "--select", *tests, check=False)
        found = {o.unique_id.rsplit(".", 1)[-1]: o.status for o in load_outcomes(dbt_target_dir(settings.project_dir))}
        return tuple(found[test] for test in tests)

    def changed(statement: str) -> None:
        """The marts as the build left them (kept once, put back in SQL: a dbt rebuild each time cost a minute
        of the suite), then `statement` run on them."""
        with duckdb.connect(str(settings.warehouse)) as conn:
            for mart in marts:
                conn.execute(f"delete from marts.{mart}")
                conn.execute(f"insert into marts.{mart} select * from as_built.{mart}")
            conn.execute(statement)

    built_demo_shop(settings, scale=0.1)
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("create schema as_built")
        for mart in marts:
            conn.execute(f"create table as_built.{mart} as select * from marts.{mart}")
    assert statuses(totals, lifetime, counts, paid, daily) == ("pass",) * 5
    changed(
        "update marts.fct_orders set order_total = order_total + 1 "
        "where order_id = (select min(order_id) from marts.fct_orders where is_revenue)"
    )
    assert statuses(totals, lifetime, counts, paid) == ("fail", "fail", "pass", "pass")
    changed("delete from marts.dim_customers where customer_id = (select max(customer_id) from marts.dim_customers)")
    assert statuses(counts) == ("fail",)
    changed("select 1")
    assert statuses(totals, lifetime, counts, paid, daily) == ("pass",) * 5  # put back as built

    # The marts built from fct_orders, each column they sum or copy (found by review: none was checked).
    first_order = "order_id = (select min(order_id) from marts.fct_orders)"
    for statement, test in (
        ("update marts.agg_daily_revenue set revenue_usd = revenue_usd + 1", daily),
        ("update marts.agg_daily_revenue set units_sold = units_sold + 1", daily),
        ("update marts.agg_daily_revenue set revenue_usd = null", daily),
        (
            "delete from marts.agg_daily_revenue where order_date = (select max(order_date) from marts.agg_daily_revenue)",
            daily,
        ),
        ("update marts.dim_customers set lifetime_value_usd = lifetime_value_usd + 1", lifetime),
        ("update marts.dim_customers set first_ordered_at = last_ordered_at + interval 1 day", lifetime),
        # fct_orders' amount paid against the payments it sums (found by review: the one never shown to fail).
        (f"update marts.fct_orders set amount_paid = amount_paid + 1 where {first_order}", paid),
        # A null on one side is a disagreement too: `abs(a - b) > x` is null there, and never matched (found by
        # review: fct_orders without its `coalesce(amount_paid, 0)` passed every test).
        (f"update marts.fct_orders set amount_paid = null where {first_order}", paid),
        (f"update marts.fct_orders set order_total = null where {first_order}", totals),
        ("update marts.agg_daily_revenue set amount_paid = null", daily),
        ("update marts.dim_customers set lifetime_value_usd = null", lifetime),
    ):
        changed(statement)
        assert statuses(test) == ("fail",), statement


def test_an_order_paid_before_its_lines_arrive_shows_the_payment_and_moved_lines_and_payments_recompute_both_orders(
    settings,
):
    """`fct_orders` took its amounts from the order's lines: an order paid before its lines arrived read 0 paid.
    A payment or line moved to another order left the order it left with its old amounts (an incremental build
    recomputed only the order it belongs to now), and the reconciliation tests failed the build."""
    import sqlalchemy as sa

    from ingestion.quality import dbt_target_dir, load_outcomes

    built_demo_shop(settings, scale=0.1)
    engine = shop.engine_for(settings.shop_url)
    with engine.begin() as conn:
        now = conn.execute(sa.select(shop.shop_clock.c.shop_time)).scalar_one()
        customer_id = conn.execute(sa.select(sa.func.min(shop.customers.c.customer_id))).scalar_one()
        order_id = conn.execute(sa.select(sa.func.max(shop.orders.c.order_id))).scalar_one() + 1
        payment_id = conn.execute(sa.select(sa.func.max(shop.payments.c.payment_id))).scalar_one() + 1
        stamps = {"created_at": now, "updated_at": now}
        conn.execute(
            shop.orders.insert().values(
                order_id=order_id, customer_id=customer_id, status="paid", currency="USD", ordered_at=now, **stamps
            )
        )
        conn.execute(
            shop.payments.insert().values(
                payment_id=payment_id,
                order_id=order_id,
                payment_method="card",
                status="succeeded",
                amount=Decimal("12.34"),
                **stamps,
            )
        )
    ingest_shop(settings)
    assert run_dbt(settings, "build", check=False) == 0

    def amount_paid(order: int) -> Decimal:
        return amounts(order)[0]

    def amounts(order: int) -> tuple[Decimal, Decimal, int]:
        with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
            return conn.execute(
                "select amount_paid, order_total, item_count from marts.fct_orders where order_id = ?", [order]
            ).fetchone()

    assert amount_paid(order_id) == Decimal("12.34")

    # An old succeeded payment and an old line move to another old order: no order is re-read in the lag window.
    payment, line = shop.payments.c, shop.order_items.c
    with engine.begin() as conn:
        moved, left, amount = conn.execute(
            sa.select(payment.payment_id, payment.order_id, payment.amount)
            .where(payment.status == "succeeded")
            .order_by(payment.payment_id)
            .limit(1)
        ).one()
        moved_line, line_left, quantity, unit_price = conn.execute(
            sa.select(line.order_item_id, line.order_id, line.quantity, line.unit_price)
            .where(line.order_id != left)
            .order_by(line.order_item_id)
            .limit(1)
        ).one()
        joined = conn.execute(
            sa.select(sa.func.min(shop.orders.c.order_id)).where(shop.orders.c.order_id.not_in([left, line_left]))
        ).scalar_one()
        before = {order: amounts(order) for order in (left, line_left, joined)}
        later = {"updated_at": now + timedelta(minutes=1)}
        conn.execute(shop.payments.update().where(payment.payment_id == moved).values(order_id=joined, **later))
        conn.execute(shop.order_items.update().where(line.order_item_id == moved_line).values(order_id=joined, **later))
    engine.dispose()
    ingest_shop(settings)
    assert run_dbt(settings, "build", check=False) == 0  # the reconciliations pass
    outcomes = load_outcomes(dbt_target_dir(settings.project_dir))
    assert not [o for o in outcomes if o.status in ("fail", "error", "warn")]
    line_total = Decimal(quantity) * Decimal(unit_price)
    assert amounts(joined) == (before[joined][0] + amount, before[joined][1] + line_total, before[joined][2] + 1)
    assert amount_paid(left) == before[left][0] - amount
    assert amounts(line_left)[1:] == (before[line_left][1] - line_total, before[line_left][2] - 1)


def test_a_row_deleted_from_a_table_reloaded_in_full_leaves_staging_and_the_marts(settings, pg_env, monkeypatch):
    """A table loaded without a cursor is replaced at every run, so a row deleted in the shop leaves raw; staging
    only added and replaced keys and kept it, and so did `fct_payments`, `fct_orders.amount_paid` and
    `agg_daily_revenue`, with every test passing. Now the staged key goes and the marts rebuild, as a full refresh
    would have them, on both engines. A table loaded by cursor (orders) pays no full rebuild."""
    with _built_with_payments_reloaded_in_full(settings, pg_env, monkeypatch, seed=12) as (both, fx_api):
        (payment_id, order_id, amount) = select(
            both[0],
            "select payment_id, order_id, amount from marts.fct_payments where payment_status = 'succeeded' "
            "order by payment_id limit 1",
        )[0]
        (paid_before,) = select(both[0], f"select amount_paid from marts.fct_orders where order_id = {order_id}")[0]
        _write_to_the_shop(settings, f"delete from payments where payment_id = {payment_id}")
        incremental = {}
        for warehouse in both:
            (orders_built_at,) = select(warehouse, "select max(_loaded_at) from marts.fct_orders")[0]
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
            for relation in ("staging.stg_shop__payments", "marts.fct_payments"):
                found = select(warehouse, f"select count(*) from {relation} where payment_id = {payment_id}")
                assert found == [(0,)], f"{relation} on {warehouse.target}"
            paid = select(warehouse, f"select amount_paid from marts.fct_orders where order_id = {order_id}")
            assert paid == [(paid_before - amount,)], warehouse.target
            incremental[warehouse.target] = warehouse.marts()
        # A later build with no reload recomputes only what changed again.
        warehouse = both[0]
        (built_at,) = select(warehouse, "select max(_loaded_at) from marts.fct_orders")[0]
        assert built_at > orders_built_at
        warehouse.build()
        assert select(warehouse, "select count(*) from marts.fct_orders where _loaded_at > %s", (built_at,)) == [(0,)]
    assert_a_full_refresh_gives_the_same_marts(both, incremental)


def test_a_table_reloaded_in_full_that_comes_back_empty_empties_staging_and_the_marts(settings, pg_env, monkeypatch):
    """Every payment deleted from a table reloaded in full: raw comes back empty, and staging and the marts used to
    keep the last payments (an empty reload was read as no reload) until the table held a row again. Now they let
    go of them, on both engines, as a full refresh would."""
    with _built_with_payments_reloaded_in_full(settings, pg_env, monkeypatch, seed=13) as (both, fx_api):
        for warehouse in both:
            assert select(warehouse, "select count(*) > 0 from marts.fct_payments") == [(True,)]
        _write_to_the_shop(settings, "delete from payments")
        incremental = {}
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
            for relation in ("raw_shop.payments", "staging.stg_shop__payments", "marts.fct_payments"):
                assert select(warehouse, f"select count(*) from {relation}") == [(0,)], (
                    f"{relation} on {warehouse.target}"
                )
            paid = select(warehouse, "select count(*) from marts.fct_orders where amount_paid <> 0")
            assert paid == [(0,)], warehouse.target
            incremental[warehouse.target] = warehouse.marts()
    assert_a_full_refresh_gives_the_same_marts(both, incremental)


def test_a_customer_the_source_deleted_ends_its_snapshot_version_and_starts_a_new_one_when_back(
    settings, pg_env, monkeypatch
):
    """Staging and the marts let go of a customer deleted from a table reloaded in full, but `snp_shop__customers`
    kept the customer's version current for good: the snapshot reads only the versions staged since its last run,
    so nothing told it. Now that version ends at the build that lost the key, and the customer, back in the
    source, starts a new one, on both engines."""
    both = duckdb_and_postgres(settings, pg_env)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps({"customers": {"cursor_column": ""}}))
    shop.create_shop(settings.shop_url, seed=14, scale=0.2, events_to=settings.data_dir)
    # A customer with no orders, whom the source may delete without breaking its orders' keys.
    add_the_customer = (
        "insert into customers (customer_id, first_name, last_name, email, phone, country_code, created_at, "
        "updated_at, deleted_at) select max(customer_id) + 1, 'Ada', 'Byron', 'ada@example.com', null, 'GB', "
        "max(created_at), max(updated_at), null from customers"
    )
    _write_to_the_shop(settings, add_the_customer)
    versions = "select dbt_valid_to is null from snapshots.snp_shop__customers where customer_id = %s order by 1"
    with FxApi(seed=14, tick=0) as fx_api:
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
        (customer_id,) = select(both[0], "select max(customer_id) from staging.stg_shop__customers")[0]
        assert select(both[0], versions, (customer_id,)) == [(True,)]
        # Staging without the key while raw still holds it (a reload caught half-way): the version stays current.
        with both[0].connect() as conn:  # DuckDB: autocommit
            conn.cursor().execute("delete from staging.stg_shop__customers where customer_id = %s", (customer_id,))
        both[0].build("--select", "snp_shop__customers")
        assert select(both[0], versions, (customer_id,)) == [(True,)]
        _write_to_the_shop(settings, f"delete from customers where customer_id = {customer_id}")
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
            assert select(warehouse, versions, (customer_id,)) == [(False,)], warehouse.target
            gone = f"select count(*) from marts.dim_customers where customer_id = {customer_id}"
            assert select(warehouse, gone) == [(0,)], warehouse.target
        _write_to_the_shop(settings, add_the_customer)
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
            assert select(warehouse, versions, (customer_id,)) == [(False,), (True,)], warehouse.target


@contextmanager
def _built_with_payments_reloaded_in_full(
    settings: Settings, postgres_url: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> Iterator[tuple[tuple[Warehouse, Warehouse], FxApi]]:
    """The demo shop with payments loaded without a cursor (reloaded in full at every run), ingested and built
    once on both engines; the fx API stays up for the test's later runs."""
    both = duckdb_and_postgres(settings, postgres_url)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps({"payments": {"cursor_column": ""}}))
    shop.create_shop(settings.shop_url, seed=seed, scale=0.2, events_to=settings.data_dir)
    with FxApi(seed=seed, tick=0) as fx_api:
        for warehouse in both:
            warehouse.ingest(monkeypatch, fx_api)
            warehouse.build()
        yield both, fx_api


def _write_to_the_shop(settings: Settings, statement: str) -> None:
    engine = sa.create_engine(settings.shop_url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def test_a_key_a_reload_lost_leaves_staging_and_the_marts_beside_another_hook_and_a_build_late(
    settings, pg_env, monkeypatch
):
    """Two things kept a payment deleted from a table reloaded in full in a PostgreSQL warehouse, every test passing
    (found by review). The staging hooks of two models built at once (two threads) took the ingest's lock from each
    other, and each read the other as an ingest loading; and a key deleted a build after its reload stayed in the
    marts, which nothing told to recompute, until the next reload. Held shared by another hook, the lock keeps no
    hook from deleting; and a key deleted a build late leaves the marts at that build."""
    from ingestion.pipeline import _advisory_lock

    warehouse = Warehouse(settings, "pg", pg_env)
    lock_key = "('x' || left(encode(sha256(convert_to('harbor ingest harbor_shop_postgres', 'UTF8')), 'hex'), 16))"
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps({"payments": {"cursor_column": ""}}))
    shop.create_shop(settings.shop_url, seed=15, scale=0.2, events_to=settings.data_dir)

    def held_by(payment_id: int) -> list[tuple]:
        return [
            select(warehouse, f"select count(*) from {relation} where payment_id = {payment_id}")[0]
            for relation in ("staging.stg_shop__payments", "marts.fct_payments")
        ]

    with FxApi(seed=15, tick=0) as fx_api:
        warehouse.ingest(monkeypatch, fx_api)
        warehouse.build()
        first, second = (
            row[0] for row in select(warehouse, "select payment_id from marts.fct_payments order by 1 limit 2")
        )

        _write_to_the_shop(settings, f"delete from payments where payment_id = {first}")
        warehouse.ingest(monkeypatch, fx_api)
        with warehouse.connect() as other_hook:
            other_hook.cursor().execute(f"select pg_advisory_lock_shared({lock_key}::bit(64)::bigint)")
            warehouse.build()
        assert held_by(first) == [(0,), (0,)]

        _write_to_the_shop(settings, f"delete from payments where payment_id = {second}")
        warehouse.ingest(monkeypatch, fx_api)
        monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
        with _advisory_lock("harbor ingest harbor_shop_postgres", "held by the test"):
            warehouse.build()
        assert held_by(second) == [(1,), (1,)]  # an ingest was loading: kept, for the next build
        warehouse.build()  # the reconciliation of fct_orders with its items and payments fails the build otherwise
        assert held_by(second) == [(0,), (0,)]
    assert_a_full_refresh_gives_the_same_marts((warehouse,), {"pg": warehouse.marts()})


def test_a_raw_table_an_ingest_is_reloading_is_not_read_as_a_reload_that_lost_every_key(settings, pg_env, monkeypatch):
    """A load replaces a table by emptying it in a commit of its own, then inserting: a PostgreSQL build meanwhile
    read the empty table as a reload that lost every payment, and published staging and the marts without them.
    While the ingest's lock is held, the staged keys stay; the next build without it deletes what raw lost."""
    from ingestion.pipeline import _advisory_lock

    warehouse = Warehouse(settings, "pg", pg_env)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps({"payments": {"cursor_column": ""}}))
    shop.create_shop(settings.shop_url, seed=14, scale=0.2, events_to=settings.data_dir)
    with FxApi(seed=14, tick=0) as fx_api:
        warehouse.ingest(monkeypatch, fx_api)
    warehouse.build()
    staged = "select count(*) from staging.stg_shop__payments"
    (payments,) = select(warehouse, staged)[0]
    assert payments > 0

    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    with _advisory_lock("harbor ingest harbor_shop_postgres", "held by the test"):
        with warehouse.connect() as conn:
            conn.cursor().execute("truncate raw_shop.payments")  # the reload's first commit
        warehouse.build()
        assert select(warehouse, staged) == [(payments,)]
        assert select(warehouse, "select count(*) from marts.fct_payments") == [(payments,)]

    warehouse.build()
    assert select(warehouse, staged) == [(0,)]
