"""Dirty mode for the demo: plant one known defect of each kind in the raw shop tables, then check that the data
tests meant for each one catch it, and that nothing else fails.

The shop database itself enforces NOT NULL and primary keys, so the defects go where real ones surface: into the
warehouse's raw tables after ingestion (as a buggy loader or a schema drift upstream would leave them). Rebuild
staging with `dbt run --full-refresh` afterwards, so incremental models re-read the planted rows, then `dbt test`
(`dbt build` would skip the models downstream of a failing test, and their tests with them).

Each defect names the tests it must make fail (`Dirt.caught_by`), and how: the first tests that see it (the
source's own tests, else those of the table's staging model) and, for a defect staging passes on, the same check
of the mart it reaches. Any other test that does not pass is a finding: staging deduplicates, so a duplicate in raw
failing `unique_stg_shop__customers_customer_id` means staging stopped deduplicating, not that the duplicate was
caught.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.quality import DataTestOutcome


@dataclass(frozen=True)
class Catch:
    """A test a planted defect must make fail (or warn: `status`). A generic test by its name and the node and column
    it is defined on (`unique` on `source.harbor.shop.customers`, `customer_id`: its arguments are left out, so a new
    range does not rename it); a singular test by its name alone."""

    test: str  # the generic test (not_null, relationships, expect_column_values_to_be_between) or the singular test
    node: str | None = None  # the source or model a generic test is defined on; None for a singular test
    column: str | None = None
    status: str = "fail"  # how it must end: fail (severity error) or warn

    def matches(self, outcome: DataTestOutcome) -> bool:
        if self.node is None:
            return outcome.test_name is None and short_test_name(outcome.unique_id) == self.test
        return (
            outcome.test_name == self.test and tested_node(outcome) == self.node and outcome.column_name == self.column
        )

    def __str__(self) -> str:
        if self.node is None:
            return self.test
        return f"{self.test} on {self.node.split('.', 2)[-1]}.{self.column}"


def short_test_name(unique_id: str) -> str:
    """A test's name as dbt prints it: `test.harbor.<name>.<hash>` -> `<name>`."""
    parts = unique_id.split(".")
    return parts[2] if len(parts) >= 3 else unique_id


def tested_node(outcome: DataTestOutcome) -> str | None:
    """The node a generic test is defined on: its attached node, or the one source a source test reads."""
    if outcome.attached_node:
        return outcome.attached_node
    return outcome.depends_on[0] if len(outcome.depends_on) == 1 else None


@dataclass(frozen=True)
class Dirt:
    kind: str
    table: str  # the shop table it is planted in (raw_shop.<table>)
    column: str
    description: str
    # The tests it must make fail, and how; every other test must pass.
    caught_by: tuple[Catch, ...] = ()
    statements: tuple[str, ...] = ()


def planted_defects(dataset: str = "raw_shop") -> tuple[Dirt, ...]:
    raw = dataset
    return (
        Dirt(
            "null_required",
            "orders",
            "customer_id",
            "an order without a customer",
            # The shop source tests only its keys: staging's not_null sees it first. Staging and the marts pass the
            # order on as it is (a build holds the marts back instead), so fct_orders' not_null fails as well; the
            # relationships tests skip a null, and the marts' reconciliation tests must still pass.
            caught_by=(
                Catch("not_null", "model.harbor.stg_shop__orders", "customer_id"),
                Catch("not_null", "model.harbor.fct_orders", "customer_id"),
            ),
            statements=(
                f"alter table {raw}.orders alter column customer_id drop not null",
                # A live order: a soft-deleted one never reaches fct_orders.
                f"update {raw}.orders set customer_id = null"
                f" where order_id = (select min(order_id) from {raw}.orders where deleted_at is null)",
            ),
        ),
        Dirt(
            "out_of_range",
            "order_items",
            "quantity",
            "an order line with a negative quantity",
            # Only staging tests the quantity; the marts' totals must still reconcile with their lines.
            caught_by=(Catch("expect_column_values_to_be_between", "model.harbor.stg_shop__order_items", "quantity"),),
            statements=(
                f"update {raw}.order_items set quantity = -3"
                f" where order_item_id = (select min(order_item_id) from {raw}.order_items)",
            ),
        ),
        Dirt(
            "orphan_foreign_key",
            "payments",
            "order_id",
            "a payment for an order that does not exist",
            # fct_payments keeps the payments of live orders only: its tests and the amount reconciliation must pass.
            caught_by=(Catch("relationships", "model.harbor.stg_shop__payments", "order_id"),),
            statements=(
                f"update {raw}.payments set order_id = (select max(order_id) + 1000 from {raw}.orders)"
                f" where payment_id = (select min(payment_id) from {raw}.payments)",
            ),
        ),
        Dirt(
            "duplicate_key",
            "customers",
            "customer_id",
            "a customer loaded twice",
            # The source's unique test warns (staging deduplicates); staging's and the marts' unique tests must pass.
            caught_by=(Catch("unique", "source.harbor.shop.customers", "customer_id", status="warn"),),
            statements=(
                f"insert into {raw}.customers select * from {raw}.customers"
                f" where customer_id = (select min(customer_id) from {raw}.customers)",
            ),
        ),
        Dirt(
            "stale_source",
            "products",
            "_extracted_at",
            "a source table last loaded three days ago",
            caught_by=(Catch("assert_shop_sources_are_recent", status="warn"),),
            statements=(f"update {raw}.products set _extracted_at = _extracted_at - interval 3 day",),
        ),
    )


def apply_dirt(warehouse: Path, dataset: str = "raw_shop") -> tuple[Dirt, ...]:
    """Plant every defect in the DuckDB warehouse's raw tables; returns what was planted."""
    planted = planted_defects(dataset)
    with duckdb.connect(str(warehouse)) as conn:
        for dirt in planted:
            for statement in dirt.statements:
                conn.execute(statement)
    return planted


_ENDED = {"pass": "passed", "warn": "warned", "fail": "failed", "error": "errored", "skipped": "was skipped"}


@dataclass(frozen=True)
class DirtReport:
    caught: dict[str, list[str]]  # defect kind -> its tests that ended as they must (unique ids)
    missed: dict[str, list[str]]  # defect kind -> its tests that did not, and how they ended (e.g. "... (passed)")
    unexplained: list[str]  # unique ids of the other tests that did not pass (skipped ones too: they proved nothing)

    @property
    def exact(self) -> bool:
        return not self.missed and not self.unexplained


def check_dirt(outcomes: Iterable[DataTestOutcome], planted: Iterable[Dirt]) -> DirtReport:
    """Each defect's tests against how they ended; every other test must have passed."""
    outcomes = list(outcomes)
    planted = list(planted)
    caught: dict[str, list[str]] = {dirt.kind: [] for dirt in planted}
    missed: dict[str, list[str]] = {}
    expected: set[str] = set()
    for dirt in planted:
        for catch in dirt.caught_by:
            matching = [outcome for outcome in outcomes if catch.matches(outcome)]
            if not matching:
                missed.setdefault(dirt.kind, []).append(f"{catch} (did not run)")
            for outcome in matching:
                expected.add(outcome.unique_id)
                if outcome.status == catch.status:
                    caught[dirt.kind].append(outcome.unique_id)
                else:
                    ended = _ENDED.get(outcome.status, outcome.status)
                    missed.setdefault(dirt.kind, []).append(f"{catch} ({ended}, must {catch.status})")
    unexplained = [
        outcome.unique_id for outcome in outcomes if outcome.status != "pass" and outcome.unique_id not in expected
    ]
    return DirtReport(caught, missed, unexplained)
