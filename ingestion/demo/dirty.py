"""Dirty mode for the demo: plant one known defect of each kind in the raw shop tables, then check that the data
tests catch every one of them, and nothing else.

The shop database itself enforces NOT NULL and primary keys, so the defects go where real ones surface: into the
warehouse's raw tables after ingestion (as a buggy loader or a schema drift upstream would leave them). Rebuild
staging with `dbt run --full-refresh` afterwards, so incremental models re-read the planted rows, then `dbt test`
(`dbt build` would skip the models downstream of a failing test, and their tests with them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.quality import NOT_PASSED, DataTestOutcome


@dataclass(frozen=True)
class Dirt:
    kind: str
    table: str  # the shop table (raw_shop.<table>, stg_shop__<table>)
    column: str
    description: str
    # Harbor's singular tests built to catch this kind; generic tests on (table, column) count as well.
    singular_tests: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    # Columns computed from the defective one downstream, where a test may rightly fail too.
    derived_columns: tuple[str, ...] = ()


def planted_defects(dataset: str = "raw_shop") -> tuple[Dirt, ...]:
    raw = dataset
    return (
        Dirt(
            "null_required",
            "orders",
            "customer_id",
            "an order without a customer",
            statements=(
                f"alter table {raw}.orders alter column customer_id drop not null",
                f"update {raw}.orders set customer_id = null where order_id = (select min(order_id) from {raw}.orders)",
            ),
        ),
        Dirt(
            "out_of_range",
            "order_items",
            "quantity",
            "an order line with a negative quantity",
            derived_columns=("unit_count", "order_total", "lifetime_value"),
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
            derived_columns=("amount_paid",),
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
            singular_tests=("assert_shop_sources_are_recent",),
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


def catches(outcome: DataTestOutcome, dirt: Dirt) -> bool:
    """Whether a test that did not pass is explained by this defect."""
    test_name = outcome.unique_id.split(".")[2] if outcome.unique_id.count(".") >= 2 else outcome.unique_id
    if test_name in dirt.singular_tests:
        return True
    if outcome.column_name in dirt.derived_columns:
        return True
    if outcome.column_name != dirt.column:
        return False
    # Generic tests on the defective column of the source table or of a model built from it (stg_shop__orders,
    # fct_orders). A relationships test also reads its parent; the node it is defined on comes first.
    nodes = [outcome.attached_node] if outcome.attached_node else list(outcome.depends_on[:1])
    return any(dirt.table in node.rsplit(".", 1)[-1] for node in nodes)


@dataclass(frozen=True)
class DirtReport:
    caught: dict[str, list[str]]  # defect kind -> tests that did not pass because of it
    missed: list[str]  # defect kinds no test caught: silent passes
    unexplained: list[str]  # tests that did not pass for no planted reason

    @property
    def exact(self) -> bool:
        return not self.missed and not self.unexplained


def check_dirt(outcomes: Iterable[DataTestOutcome], planted: Iterable[Dirt]) -> DirtReport:
    planted = list(planted)
    caught: dict[str, list[str]] = {dirt.kind: [] for dirt in planted}
    unexplained = []
    for outcome in outcomes:
        if outcome.status not in NOT_PASSED:
            continue
        explained = [dirt.kind for dirt in planted if catches(outcome, dirt)]
        for kind in explained:
            caught[kind].append(outcome.unique_id)
        if not explained:
            unexplained.append(outcome.unique_id)
    return DirtReport(caught, [kind for kind, tests in caught.items() if not tests], unexplained)
