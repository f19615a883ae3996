from __future__ import annotations

import pytest
import sqlalchemy as sa

from ingestion.demo import shop


def _snapshot(url: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = {
            name: [tuple(r) for r in conn.execute(sa.select(shop.metadata.tables[name]).order_by(sa.text("1")))]
            for name in shop.SHOP_TABLES
        }
    engine.dispose()
    return rows


def test_same_seed_and_scale_give_the_same_shop(tmp_path):
    first, second = f"sqlite:///{tmp_path / 'a.sqlite'}", f"sqlite:///{tmp_path / 'b.sqlite'}"
    for url in (first, second):
        shop.create_shop(url, seed=7, scale=0.5)
        shop.advance_shop(url, ticks=2)
    assert _snapshot(first) == _snapshot(second)


def test_same_seed_and_scale_give_the_same_shop_on_sqlite_and_postgres(tmp_path, postgres_url):
    """PostgreSQL moves an updated row to the end of its table: products read without an order were sampled by
    position, so from the first price change on the two shops sold different products (229 of 1093 lines)."""
    sqlite_url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    for url in (sqlite_url, postgres_url):
        shop.create_shop(url, seed=42, scale=0.3)
        shop.advance_shop(url, ticks=10)
    on_sqlite, on_postgres = _snapshot(sqlite_url), _snapshot(postgres_url)
    for name in shop.SHOP_TABLES:
        assert _comparable(on_sqlite[name]) == _comparable(on_postgres[name]), name


def _comparable(rows: list[tuple]) -> list[tuple]:
    """Rows with their timestamps in UTC and decimals as text: SQLite hands back what the other engine types."""
    return [tuple(_plain(value) for value in row) for row in rows]


def _plain(value: object) -> object:
    from datetime import UTC, datetime
    from decimal import Decimal

    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Decimal | float):
        return f"{Decimal(str(value)):.2f}"
    return value


def test_a_different_seed_gives_a_different_shop(tmp_path):
    first, second = f"sqlite:///{tmp_path / 'a.sqlite'}", f"sqlite:///{tmp_path / 'b.sqlite'}"
    shop.create_shop(first, seed=1)
    shop.create_shop(second, seed=2)
    assert _snapshot(first)["customers"] != _snapshot(second)["customers"]


def test_advancing_inserts_and_updates_rows_with_later_timestamps(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    created = shop.create_shop(url, scale=1)
    assert created.inserted["orders"] == 300
    engine = sa.create_engine(url)

    def orders() -> dict[int, dict]:
        with engine.connect() as conn:
            return {row.order_id: row._asdict() for row in conn.execute(sa.select(shop.orders))}

    before = orders()
    (tick,) = shop.advance_shop(url)
    after = orders()
    engine.dispose()
    assert tick.tick == 1
    assert tick.inserted["orders"] > 0 and tick.updated["orders"] > 0
    touched = [order_id for order_id, row in after.items() if before.get(order_id) != row]
    assert tick.inserted["orders"] < len(touched) <= tick.inserted["orders"] + tick.updated["orders"]
    # Every row the tick touched carries a timestamp inside the new day, so an incremental load sees it.
    day_start = shop.SHOP_START.replace(tzinfo=None)
    late = [order_id for order_id in touched if after[order_id]["updated_at"] < day_start]
    assert not late, f"orders changed without a new updated_at: {late}"


def test_a_small_shop_still_sees_price_changes_and_soft_deletes(tmp_path):
    """At the default scale 2% of 20 products is 0.4 a day: rounded, no price ever changed (the product snapshot
    had nothing to record) and no order was ever soft-deleted."""
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    shop.create_shop(url)
    ticks = shop.advance_shop(url, ticks=10)
    assert sum(t.updated["products"] for t in ticks) >= 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        deleted = conn.execute(
            sa.select(sa.func.count()).select_from(shop.orders).where(shop.orders.c.deleted_at.is_not(None))
        ).scalar_one()
    engine.dispose()
    assert deleted >= 1


def test_creating_twice_needs_replace(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    shop.create_shop(url)
    with pytest.raises(FileExistsError, match="--replace"):
        shop.create_shop(url)
    shop.create_shop(url, replace=True, seed=3)
    assert shop.read_clock(sa.create_engine(url)).seed == 3


def test_advancing_a_missing_shop_says_how_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="harbor demo create"):
        shop.advance_shop(f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert not (tmp_path / "none.sqlite").exists()  # SQLite created an empty file on connecting


def test_plain_postgresql_urls_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"postgresql\+psycopg2://"):
        shop.engine_for("postgresql://postgres@127.0.0.1/test")
