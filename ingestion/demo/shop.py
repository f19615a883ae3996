"""The demo shop: a small, deterministic e-commerce OLTP database that moves forward in time.

`create_shop` fills customers, products, orders, order_items and payments with about 90 days of history;
`advance_shop` moves the shop clock one day per tick: new customers and orders, status changes, payments,
a few updates to old rows and a few soft deletes. Everything is derived from (seed, scale, tick), so two
databases built with the same arguments hold the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from ingestion.settings import ConfigError, shown_location

SHOP_START = datetime(2024, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 90
SHOP_TABLES = ("customers", "products", "orders", "order_items", "payments")

COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "PL", "CA")
CURRENCY_BY_COUNTRY = {"US": "USD", "CA": "USD", "GB": "GBP"}
CATEGORIES = ("apparel", "footwear", "accessories", "home", "outdoor", "beauty")
FIRST_NAMES = ("Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lea", "Mia")
LAST_NAMES = ("Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Novak", "Berg", "Silva", "Kim")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "gift_card")
# Order life cycle: placed -> paid -> shipped -> completed, with cancellations and returns on the way.
NEXT_STATUS = {"placed": "paid", "paid": "shipped", "shipped": "completed"}

metadata = sa.MetaData()
_timestamps = (
    lambda: sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    lambda: sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_name", sa.String(50), nullable=False),
    sa.Column("last_name", sa.String(50), nullable=False),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("phone", sa.String(30)),
    sa.Column("country_code", sa.String(2), nullable=False),
    *(make() for make in _timestamps),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(20), nullable=False),
    sa.Column("product_name", sa.String(100), nullable=False),
    sa.Column("category", sa.String(30), nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
    *(make() for make in _timestamps),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
    *(make() for make in _timestamps),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)
order_items = sa.Table(
    "order_items",
    metadata,
    sa.Column("order_item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
    *(make() for make in _timestamps),
)
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("payment_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("payment_method", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    *(make() for make in _timestamps),
)
shop_clock = sa.Table(
    "shop_clock",
    metadata,
    sa.Column("clock_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("scale", sa.Float, nullable=False),
    sa.Column("tick", sa.Integer, nullable=False),
    sa.Column("shop_time", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ShopClock:
    seed: int
    scale: float
    tick: int
    shop_time: datetime


@dataclass
class TickSummary:
    """What one call changed, per table: rows inserted and rows updated."""

    tick: int
    shop_time: datetime  # the shop's clock after the call: the end of the last day simulated
    inserted: dict[str, int]
    updated: dict[str, int]

    @property
    def day(self) -> datetime:
        """The day a tick simulated: the one its clock ended (at midnight after it)."""
        return self.shop_time - timedelta(days=1)


def engine_for(url: str) -> sa.Engine:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        raise ConfigError(
            "Write PostgreSQL URLs as postgresql+psycopg2://... (SQLAlchemy 2.1 maps postgresql:// to psycopg 3, "
            "which Harbor does not install)"
        )
    connect_args = {}
    if url.startswith("postgresql+psycopg2:") and "connect_timeout=" not in url:  # the URL's own wins
        from ingestion.sources.http import RetryPolicy

        # Bounded, a server that never answers is an attempt that failed, retried and reported as an outage.
        connect_args["connect_timeout"] = RetryPolicy.libpq_connect_timeout()
    try:
        return sa.create_engine(url, connect_args=connect_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as error:
        # Not a URL, a dialect or driver not installed (mysql:// wants MySQLdb), a port that is not a number:
        # a wrong setting, not a failed load (they were exit 4, or a traceback from `demo create`).
        shown = shown_location(url)
        raise ConfigError(f"cannot use the shop database {shown}: {error}") from None


def read_clock(engine: sa.Engine) -> ShopClock | None:
    if not sa.inspect(engine).has_table("shop_clock"):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(shop_clock)).one_or_none()
    if row is None:
        return None
    return ShopClock(row.seed, row.scale, row.tick, _as_utc(row.shop_time))


def _tables_holding_rows(engine: sa.Engine, names: set[str]) -> list[str]:
    with engine.connect() as conn:
        return [
            name
            for name in sorted(names)
            if conn.execute(sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)).first() is not None
        ]


def create_shop(
    url: str, *, seed: int = 42, scale: float = 1.0, replace: bool = False, events_to: Path | None = None
) -> TickSummary:
    """Create the shop schema and fill it with HISTORY_DAYS of history ending at SHOP_START.

    With `events_to` (a data folder), the clickstream file of tick 0 lands in `<events_to>/events/` too.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    engine = engine_for(url)
    if read_clock(engine) is not None:
        if not replace:
            raise FileExistsError(f"a demo shop already exists at {safe_url(url)}; use --replace to start over")
        metadata.drop_all(engine)
    elif taken := _tables_holding_rows(engine, set(sa.inspect(engine).get_table_names()) & set(metadata.tables)):
        # Someone else's tables of the same names (a real shop's `orders`): demo rows would be written into them.
        # Empty ones (a create that stopped before its commit) are filled as if new.
        engine.dispose()
        raise FileExistsError(
            f"{safe_url(url)} holds tables {', '.join(taken)} that are not a demo shop's: not writing into them"
        )
    metadata.create_all(engine)
    generator = _Generator(random.Random(f"{seed}:create"), scale)
    rows = generator.history(SHOP_START - timedelta(days=HISTORY_DAYS), SHOP_START)
    with engine.begin() as conn:
        for table_name in SHOP_TABLES:
            _insert(conn, metadata.tables[table_name], rows[table_name])
        conn.execute(sa.insert(shop_clock).values(clock_id=1, seed=seed, scale=scale, tick=0, shop_time=SHOP_START))
    engine.dispose()
    if events_to is not None:
        write_events(events_to, seed=seed, tick=0, scale=scale)
    return TickSummary(0, SHOP_START, {t: len(rows[t]) for t in SHOP_TABLES}, dict.fromkeys(SHOP_TABLES, 0))


def missing_sqlite_file(url: str | sa.URL) -> str | None:
    """The file a SQLite URL names when it is not there, else None: check before connecting, which would create it
    empty (a stray file, and a confusing "table not found" at the next run). A URL that does not parse is None:
    connecting says what is wrong with it."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:") and not Path(database).exists():
        return database
    return None


def advance_shop(url: str, ticks: int = 1, *, events_to: Path | None = None) -> list[TickSummary]:
    """Move the shop forward `ticks` days, one transaction per day (and one event file each, with `events_to`)."""
    if missing_sqlite_file(url):
        raise FileNotFoundError(f"no demo shop at {safe_url(url)}; create it with `harbor demo create`")
    engine = engine_for(url)
    summaries = []
    for _ in range(ticks):
        clock = read_clock(engine)
        if clock is None:
            raise FileNotFoundError(f"no demo shop at {safe_url(url)}; create it with `harbor demo create`")
        summaries.append(_advance_one_day(engine, clock))
        if events_to is not None:
            write_events(events_to, seed=clock.seed, tick=clock.tick + 1, scale=clock.scale)
    engine.dispose()
    return summaries


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable url>"


def _advance_one_day(engine: sa.Engine, clock: ShopClock) -> TickSummary:
    tick = clock.tick + 1
    day_start = clock.shop_time
    day_end = day_start + timedelta(days=1)
    rng = random.Random(f"{clock.seed}:tick:{tick}")
    inserted: dict[str, int] = dict.fromkeys(SHOP_TABLES, 0)
    updated: dict[str, int] = dict.fromkeys(SHOP_TABLES, 0)

    def at() -> datetime:
        return day_start + timedelta(seconds=rng.randrange(86_400))

    with engine.begin() as conn:
        generator = _Generator(rng, clock.scale, ids=_max_ids(conn))
        rows = generator.day(
            day_start,
            day_end,
            known_customers=[
                (r.customer_id, r.country_code)
                for r in conn.execute(
                    sa.select(customers.c.customer_id, customers.c.country_code).order_by(customers.c.customer_id)
                )
            ],
            products=[
                (r.product_id, r.unit_price)
                for r in conn.execute(sa.select(products).order_by(products.c.product_id)).all()
            ],
        )
        for table_name in SHOP_TABLES:
            _insert(conn, metadata.tables[table_name], rows[table_name])
            inserted[table_name] = len(rows[table_name])

        # Orders move through their life cycle; a paid order gets its payment.
        open_orders = conn.execute(
            sa.select(orders.c.order_id, orders.c.status)
            .where(orders.c.status.in_(tuple(NEXT_STATUS)), orders.c.deleted_at.is_(None))
            .where(orders.c.ordered_at < day_start)
            .order_by(orders.c.order_id)
        ).all()
        totals = _order_totals(conn, [o.order_id for o in open_orders if o.status == "placed"])
        for order in open_orders:
            if rng.random() > 0.6:
                continue
            changed_at = at()
            new_status = NEXT_STATUS[order.status]
            if order.status == "placed" and rng.random() < 0.08:
                new_status = "cancelled"
            elif order.status == "shipped" and rng.random() < 0.05:
                new_status = "returned"
            conn.execute(
                sa.update(orders)
                .where(orders.c.order_id == order.order_id)
                .values(status=new_status, updated_at=changed_at)
            )
            updated["orders"] += 1
            if new_status == "paid":
                payment = generator.payment(order.order_id, totals.get(order.order_id, Decimal("0")), changed_at)
                _insert(conn, payments, [payment])
                inserted["payments"] += 1

        # A few customers change their contact details, a few products change price.
        for customer_id in _sample(rng, _ids(conn, customers, customers.c.customer_id), 0.01):
            conn.execute(
                sa.update(customers)
                .where(customers.c.customer_id == customer_id)
                .values(phone=generator.phone(), updated_at=at())
            )
            updated["customers"] += 1
        for product_id in _sample(rng, _ids(conn, products, products.c.product_id), 0.02):
            conn.execute(
                sa.update(products)
                .where(products.c.product_id == product_id)
                .values(unit_price=products.c.unit_price + Decimal("1.00"), updated_at=at())
            )
            updated["products"] += 1
        # Test orders placed by mistake are soft-deleted: they stay in the source with deleted_at set.
        for order in _sample(rng, [o.order_id for o in open_orders if o.status == "placed"], 0.01):
            deleted_at = at()
            conn.execute(
                sa.update(orders)
                .where(orders.c.order_id == order, orders.c.deleted_at.is_(None))
                .values(deleted_at=deleted_at, updated_at=deleted_at)
            )
            updated["orders"] += 1

        conn.execute(sa.update(shop_clock).values(tick=tick, shop_time=day_end))
    return TickSummary(tick, day_end, inserted, updated)


class _Generator:
    """Builds rows; every random choice comes from the one rng it is given."""

    def __init__(self, rng: random.Random, scale: float, ids: dict[str, int] | None = None) -> None:
        self.rng = rng
        self.scale = scale
        self.next_id = {t: (ids or {}).get(t, 0) + 1 for t in SHOP_TABLES}

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] += 1
        return value

    def _time_between(self, start: datetime, end: datetime) -> datetime:
        seconds = int((end - start).total_seconds())
        return start + timedelta(seconds=self.rng.randrange(max(seconds, 1)))

    def phone(self) -> str:
        return f"+1-555-{self.rng.randrange(10_000_000):07d}"

    def customer(self, created_at: datetime) -> dict:
        customer_id = self._id("customers")
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        return {
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}.{customer_id}@example.com",
            "phone": self.phone() if self.rng.random() < 0.8 else None,
            "country_code": self.rng.choice(COUNTRIES),
            "created_at": created_at,
            "updated_at": created_at,
            "deleted_at": None,
        }

    def product(self, created_at: datetime) -> dict:
        product_id = self._id("products")
        category = self.rng.choice(CATEGORIES)
        return {
            "product_id": product_id,
            "sku": f"SKU-{product_id:06d}",
            "product_name": f"{category.title()} item {product_id}",
            "category": category,
            "unit_price": Decimal(self.rng.randrange(499, 19_999)) / 100,
            "created_at": created_at,
            "updated_at": created_at,
            "deleted_at": None,
        }

    def order(
        self, customer: tuple[int, str], products: list[tuple[int, Decimal]], ordered_at: datetime
    ) -> tuple[dict, list[dict]]:
        order_id = self._id("orders")
        items = []
        for product_id, unit_price in self.rng.sample(products, k=min(len(products), self.rng.randint(1, 4))):
            items.append(
                {
                    "order_item_id": self._id("order_items"),
                    "order_id": order_id,
                    "product_id": product_id,
                    "quantity": self.rng.randint(1, 3),
                    "unit_price": unit_price,
                    "created_at": ordered_at,
                    "updated_at": ordered_at,
                }
            )
        order = {
            "order_id": order_id,
            "customer_id": customer[0],
            "status": "placed",
            "currency": CURRENCY_BY_COUNTRY.get(customer[1], "EUR"),
            "ordered_at": ordered_at,
            "created_at": ordered_at,
            "updated_at": ordered_at,
            "deleted_at": None,
        }
        return order, items

    def payment(self, order_id: int, amount: Decimal, paid_at: datetime) -> dict:
        return {
            "payment_id": self._id("payments"),
            "order_id": order_id,
            "payment_method": self.rng.choice(PAYMENT_METHODS),
            "status": "succeeded",
            "amount": amount,
            "created_at": paid_at,
            "updated_at": paid_at,
        }

    def history(self, start: datetime, end: datetime) -> dict[str, list[dict]]:
        """Customers and products created over [start, end), and orders that have run their life cycle."""
        rows: dict[str, list[dict]] = {t: [] for t in SHOP_TABLES}
        n_customers = max(10, round(100 * self.scale))
        n_products = max(10, round(20 * self.scale))
        n_orders = max(20, round(300 * self.scale))
        rows["products"] = [self.product(start) for _ in range(n_products)]
        rows["customers"] = sorted(
            (self.customer(self._time_between(start, end)) for _ in range(n_customers)),
            key=lambda c: c["customer_id"],
        )
        catalogue = [(p["product_id"], p["unit_price"]) for p in rows["products"]]
        for _ in range(n_orders):
            customer = self.rng.choice(rows["customers"])
            ordered_at = self._time_between(customer["created_at"], end)
            order, items = self.order((customer["customer_id"], customer["country_code"]), catalogue, ordered_at)
            total = sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0"))
            # Older orders have moved further along their life cycle.
            age_days = (end - ordered_at).days
            status = "placed"
            for step, min_age in (("paid", 1), ("shipped", 3), ("completed", 7)):
                if age_days >= min_age:
                    status = step
            if status != "placed" and self.rng.random() < 0.05:
                status = "cancelled" if status == "paid" else "returned" if status == "completed" else status
            updated_at = min(ordered_at + timedelta(days=min(age_days, 7)), end - timedelta(seconds=1))
            order.update(status=status, updated_at=max(updated_at, ordered_at))
            rows["orders"].append(order)
            rows["order_items"].extend(items)
            if status != "placed":
                paid_at = min(ordered_at + timedelta(hours=self.rng.randint(1, 20)), end - timedelta(seconds=1))
                rows["payments"].append(self.payment(order["order_id"], total, max(paid_at, ordered_at)))
        return rows

    def day(
        self,
        start: datetime,
        end: datetime,
        known_customers: list[tuple[int, str]],
        products: list[tuple[int, Decimal]],
    ) -> dict[str, list[dict]]:
        """New customers and new orders created during one day."""
        rows: dict[str, list[dict]] = {t: [] for t in SHOP_TABLES}
        n_customers = self.rng.randint(0, max(1, round(5 * self.scale)))
        rows["customers"] = [self.customer(self._time_between(start, end)) for _ in range(n_customers)]
        known = known_customers + [(c["customer_id"], c["country_code"]) for c in rows["customers"]]
        n_orders = self.rng.randint(max(1, round(5 * self.scale)), max(2, round(15 * self.scale)))
        for _ in range(n_orders):
            order, items = self.order(self.rng.choice(known), products, self._time_between(start, end))
            rows["orders"].append(order)
            rows["order_items"].extend(items)
        return rows


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    for batch in _batches(rows, 5_000):
        conn.execute(sa.insert(table), batch)


def _batches(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def write_events(data_dir: Path, **kwargs) -> None:
    from ingestion.demo.events import write_events as write

    write(data_dir, **kwargs)


def _max_ids(conn: sa.Connection) -> dict[str, int]:
    result = {}
    for table_name in SHOP_TABLES:
        table = metadata.tables[table_name]
        pk = next(iter(table.primary_key.columns))
        result[table_name] = conn.execute(sa.select(sa.func.coalesce(sa.func.max(pk), 0))).scalar_one()
    return result


def _ids(conn: sa.Connection, table: sa.Table, column: sa.Column) -> list[int]:
    return list(conn.execute(sa.select(column).order_by(column)).scalars())


def _order_totals(conn: sa.Connection, order_ids: list[int]) -> dict[int, Decimal]:
    if not order_ids:
        return {}
    query = (
        sa.select(order_items.c.order_id, sa.func.sum(order_items.c.unit_price * order_items.c.quantity))
        .where(order_items.c.order_id.in_(order_ids))
        .group_by(order_items.c.order_id)
    )
    return {order_id: Decimal(str(total)).quantize(Decimal("0.01")) for order_id, total in conn.execute(query)}


def _sample(rng: random.Random, population: list, fraction: float) -> list:
    """About `fraction` of `population`, at random. The fraction of a row left over is the chance of one more row:
    rounded, 20 products at 2% a day (0.4) never changed price, and no order was ever soft-deleted."""
    expected = len(population) * fraction
    k = min(len(population), int(expected) + (rng.random() < expected - int(expected)))
    return sorted(rng.sample(population, k)) if k else []


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
