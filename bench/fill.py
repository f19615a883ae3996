"""Fills the demo shop in PostgreSQL at a given scale with set-based SQL, and changes a fraction of it.

The tables are the demo shop's own (`ingestion.demo.shop.metadata`); only the rows differ: they come from
`generate_series` and arithmetic on the ids instead of Python's random module, so 10M order items take
seconds, not hours. Proportions follow the demo shop: 2.5 items per order, 3 orders per customer, a product per
15 orders, a payment for every order past `placed`, 90 days of history ending at `SHOP_START`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from math import gcd

import sqlalchemy as sa

from ingestion.demo import shop


@dataclass(frozen=True)
class Scale:
    order_items: int

    @property
    def orders(self) -> int:
        return max(20, self.order_items * 2 // 5)

    @property
    def customers(self) -> int:
        return max(10, self.orders // 3)

    @property
    def products(self) -> int:
        return max(10, self.orders // 15)


def product_step(n_products: int) -> int:
    """The stride that spreads order items over the products: 31, or the next prime after it that does not
    divide the number of products. A stride sharing a factor with it reaches only some products (at 100k order
    items, 31 and 2,666 products reached 86)."""
    step = 31
    while gcd(step, n_products) != 1:
        step = next(n for n in range(step + 2, 2 * step + 2, 2) if all(n % d for d in range(3, n, 2)))
    return step


def _array(values: tuple[str, ...]) -> str:
    return "array[" + ", ".join(f"'{v}'" for v in values) + "]"


def _currency(country_index: str) -> str:
    """The demo shop's currency rule on a 1-based index into COUNTRIES."""
    cases = " ".join(
        f"when {i} then '{shop.CURRENCY_BY_COUNTRY.get(code, 'EUR')}'" for i, code in enumerate(shop.COUNTRIES, 1)
    )
    return f"(case {country_index} {cases} end)"


COUNTRY_OF_CUSTOMER = "(1 + ({cid}::bigint * 7) % 10)"
PRICE_OF_PRODUCT = "round((499 + cast({pid} as bigint) * 7717 % 19500) / 100.0, 2)"
ORDERED_AT = ":t0 + ({oid}::float8 / :n_orders) * interval '90 days'"


def fill_shop(url: str, scale: Scale) -> dict[str, int]:
    """Create the demo shop's tables (dropping old ones) and fill them; returns rows per table."""
    engine = shop.engine_for(url)
    shop.metadata.drop_all(engine)
    shop.metadata.create_all(engine)
    t0 = shop.SHOP_START - timedelta(days=shop.HISTORY_DAYS)
    params = {
        "t0": t0,
        "end": shop.SHOP_START - timedelta(seconds=1),
        "n_customers": scale.customers,
        "n_products": scale.products,
        "product_step": product_step(scale.products),
        "n_orders": scale.orders,
        "n_items": scale.order_items,
    }
    statements = [
        f"""
        insert into customers
        select
            g, ({_array(shop.FIRST_NAMES)})[1 + g % 13], ({_array(shop.LAST_NAMES)})[1 + (g / 13) % 10],
            'user.' || g || '@example.com',
            case when g % 5 = 0 then null else '+1-555-' || lpad(((g::bigint * 7919) % 10000000)::text, 7, '0') end,
            ({_array(shop.COUNTRIES)})[{COUNTRY_OF_CUSTOMER.format(cid="g")}],
            :t0 + (g::float8 / :n_customers) * interval '90 days',
            :t0 + (g::float8 / :n_customers) * interval '90 days',
            null
        from generate_series(1, :n_customers) as g
        """,
        f"""
        insert into products
        select
            g, 'SKU-' || lpad(g::text, 6, '0'),
            initcap(({_array(shop.CATEGORIES)})[1 + g % 6]) || ' item ' || g,
            ({_array(shop.CATEGORIES)})[1 + g % 6],
            {PRICE_OF_PRODUCT.format(pid="g")},
            :t0 + (g::float8 / :n_products) * interval '90 days',
            :t0 + (g::float8 / :n_products) * interval '90 days',
            null
        from generate_series(1, :n_products) as g
        """,
        f"""
        insert into orders
        select
            order_id, customer_id,
            case
                when age_days >= 7 then case when order_id % 20 = 0 then 'returned' else 'completed' end
                when age_days >= 3 then 'shipped'
                when age_days >= 1 then case when order_id % 20 = 0 then 'cancelled' else 'paid' end
                else 'placed'
            end,
            {_currency(COUNTRY_OF_CUSTOMER.format(cid="customer_id"))},
            ordered_at, ordered_at,
            least(ordered_at + least(age_days, 7) * interval '1 day', :end),
            case when order_id % 997 = 0 then least(ordered_at + least(age_days, 7) * interval '1 day', :end) end
        from (
            select
                g as order_id,
                1 + (g::bigint * 7919) % :n_customers as customer_id,
                {ORDERED_AT.format(oid="g")} as ordered_at,
                floor(90 - 90 * g::float8 / :n_orders)::int as age_days
            from generate_series(1, :n_orders) as g
        ) as o
        """,
        f"""
        insert into order_items
        select
            g, order_id, product_id, 1 + g % 3, {PRICE_OF_PRODUCT.format(pid="product_id")},
            {ORDERED_AT.format(oid="order_id")}, {ORDERED_AT.format(oid="order_id")}
        from (
            select
                g,
                1 + ((g - 1)::bigint * :n_orders) / :n_items as order_id,
                1 + (g::bigint * :product_step) % :n_products as product_id
            from generate_series(1, :n_items) as g
        ) as i
        """,
        f"""
        insert into payments
        select
            row_number() over (order by o.order_id), o.order_id,
            ({_array(shop.PAYMENT_METHODS)})[1 + o.order_id % 4], 'succeeded', t.total,
            least(o.ordered_at + (1 + o.order_id % 20) * interval '1 hour', :end),
            least(o.ordered_at + (1 + o.order_id % 20) * interval '1 hour', :end)
        from orders as o
        inner join (
            select order_id, sum(quantity * unit_price) as total from order_items group by order_id
        ) as t on o.order_id = t.order_id
        where o.status <> 'placed'
        """,
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)
        conn.execute(
            sa.insert(shop.shop_clock).values(clock_id=1, seed=0, scale=0.0, tick=0, shop_time=shop.SHOP_START)
        )
        # Harbor reads changed rows with `updated_at >= cursor - lag`: like any OLTP table read incrementally,
        # the cursor column is indexed, so a run reads the change instead of scanning the table (README
        # "Ingestion"). Built after the rows are in: faster than maintaining it row by row.
        for table in shop.SHOP_TABLES:
            conn.execute(sa.text(f"create index {table}_updated_at on {table} (updated_at)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("vacuum analyze"))
    counts = row_counts(engine)
    engine.dispose()
    return counts


def change_fraction(url: str, fraction: float = 0.01, tick: int = 1) -> dict[str, int]:
    """Change `fraction` of the rows: half updates spread over every table, the other half new customers, orders
    and items (in proportion to their tables: payments and products get no new rows, so the others get more). Tick n's changes carry an `updated_at` spread over the 23 hours before SHOP_START + n days,
    as changes trickle in between two daily runs (all at one instant, the next run's lag window would re-read
    every row of the previous change). Returns rows touched."""
    engine = shop.engine_for(url)
    every = max(2, round(2 / fraction))  # update one row in `every`: fraction / 2
    at = shop.SHOP_START + timedelta(days=tick)
    touched: dict[str, int] = {}
    with engine.begin() as conn:
        ids = {t: conn.execute(sa.text(f"select coalesce(max({pk}), 0) from {t}")).scalar_one() for t, pk in _PKS}
        params = {"at": at, "every": every, "tick": tick}
        updates = {
            "customers": "update customers set phone = '+1-555-0000000', updated_at = " + _spread("customer_id") + " "
            "where customer_id % :every = :tick % :every",
            "products": "update products set unit_price = unit_price + 1, updated_at = " + _spread("product_id") + " "
            "where product_id % :every = :tick % :every",
            "orders": "update orders set status = case status when 'placed' then 'paid' when 'paid' then 'shipped' "
            "else status end, updated_at = " + _spread("order_id") + " where order_id % :every = :tick % :every",
            "order_items": "update order_items set quantity = quantity + 1, updated_at = "
            + _spread("order_item_id")
            + " "
            "where order_item_id % :every = :tick % :every",
            "payments": "update payments set status = 'refunded', updated_at = " + _spread("payment_id") + " "
            "where payment_id % :every = :tick % :every",
        }
        for table, statement in updates.items():
            touched[table] = conn.execute(sa.text(statement), params).rowcount
        # Ids are 1..n in the bench's tables: the largest id is the table's row count.
        growing = ids["customers"] + ids["orders"] + ids["order_items"]
        share = (fraction * sum(ids.values()) - sum(touched.values())) / growing
        new_orders = max(1, round(ids["orders"] * share))
        new_items = max(1, round(ids["order_items"] * share))
        new_customers = max(1, round(ids["customers"] * share))
        params |= {
            "c0": ids["customers"],
            "o0": ids["orders"],
            "i0": ids["order_items"],
            "n_c": new_customers,
            "n_o": new_orders,
            "n_i": new_items,
            "n_products": ids["products"],
            "product_step": product_step(ids["products"]),
        }
        inserts = {
            "customers": "insert into customers select :c0 + g, 'New', 'Customer', 'new.' || (:c0 + g) || "
            "'@example.com', null, 'DE', " + _spread(":c0 + g", 2) + ", null from generate_series(1, :n_c) as g",
            "orders": "insert into orders select :o0 + g, 1 + (g::bigint * 7919) % (:c0 + :n_c), 'placed', 'EUR', "
            + _spread(":o0 + g", 3)
            + ", null from generate_series(1, :n_o) as g",
            "order_items": "insert into order_items select :i0 + g, :o0 + 1 + ((g - 1)::bigint * :n_o) / :n_i, "
            f"1 + (g::bigint * :product_step) % :n_products, 1, {PRICE_OF_PRODUCT.format(pid='1 + (g::bigint * :product_step) % :n_products')}, "
            + _spread(":i0 + g", 2)
            + " from generate_series(1, :n_i) as g",
        }
        for table, statement in inserts.items():
            touched[table] += conn.execute(sa.text(statement), params).rowcount
    engine.dispose()
    return touched


def _spread(row_id: str, times: int = 1) -> str:
    """A timestamp per row id within the 23 hours before `:at`, repeated `times` times (created, updated...)."""
    stamp = f"(:at - (({row_id})::bigint * 7919 % 82800) * interval '1 second')"
    return ", ".join([stamp] * times)


_PKS = (
    ("customers", "customer_id"),
    ("products", "product_id"),
    ("orders", "order_id"),
    ("order_items", "order_item_id"),
    ("payments", "payment_id"),
)


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in shop.SHOP_TABLES}
