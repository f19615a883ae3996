"""The shop source on the edges a reviewer found: a cursor lag of 0, numerics without a precision, drift that
must load (or stop before writing), wrong settings, date cursors and bad values in a SQLite source."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.cli import main
from ingestion.demo import shop
from ingestion.pipeline import ingest_fx, ingest_shop
from ingestion.settings import Settings
from ingestion.tests.conftest import fresh_postgres_database


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def raw(settings: Settings, query: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        return conn.execute(query).fetchall()


def on(settings: Settings, url: str) -> Settings:
    return Settings(settings.project_dir, settings.warehouse, settings.data_dir, url)


def widgets(monkeypatch, options: dict | None = None) -> None:
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["widgets"]')
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps(options or {}))


# 1. lag 0 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["postgres", "sqlite"])
@pytest.mark.parametrize("lag", ["0", "3600"])
def test_a_row_changed_again_at_the_cursor_s_last_value_is_loaded_with_lag_0(
    settings, postgres_url, monkeypatch, lag, source
):
    """dlt deduplicates the rows at the cursor's last value by primary key: with no lag, a row changed again
    without a new `updated_at` (a status fixed in the same second) was skipped for good."""
    url = postgres_url if source == "postgres" else settings.shop_url
    settings = on(settings, url)
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", lag)
    widgets(monkeypatch)
    # SQLite compares timestamps as text: written as SQLAlchemy writes them, with microseconds.
    run_sql(
        url,
        "create table widgets (widget_id integer primary key, status text, updated_at timestamp)",
        "insert into widgets values (1, 'a', '2024-01-01 00:00:00.000000'), (2, 'b', '2024-01-02 00:00:00.000000')",
    )
    ingest_shop(settings)
    run_sql(url, "update widgets set status = 'b2' where widget_id = 2")
    ingest_shop(settings)
    assert raw(settings, "select widget_id, status from raw_shop.widgets order by 1") == [(1, "a"), (2, "b2")]
    # Read again at every run (the boundary is no longer deduplicated by dlt): merged, never doubled.
    run_sql(url, "insert into widgets values (3, 'c', '2024-01-02 00:00:00.000000')")
    ingest_shop(settings)
    ingest_shop(settings)
    assert raw(settings, "select widget_id, status from raw_shop.widgets order by 1") == [(1, "a"), (2, "b2"), (3, "c")]


def test_a_sqlite_row_written_without_microseconds_at_the_cursor_s_last_value_is_loaded_with_lag_0(
    settings, monkeypatch
):
    """SQLite compares timestamps as text, and dlt binds the cursor with microseconds: `2024-01-02 00:00:00`, as
    SQLite's own CURRENT_TIMESTAMP writes it, sorts before `2024-01-02 00:00:00.000000`, so with no lag a row
    changed again at the cursor's last value was never read again."""
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", "0")
    widgets(monkeypatch)
    run_sql(
        settings.shop_url,
        "create table widgets (widget_id integer primary key, status text, updated_at timestamp)",
        "insert into widgets values (1, 'a', '2024-01-01 00:00:00'), (2, 'b', '2024-01-02 00:00:00')",
    )
    ingest_shop(settings)
    run_sql(settings.shop_url, "update widgets set status = 'b2' where widget_id = 2")
    ingest_shop(settings)
    assert raw(settings, "select widget_id, status from raw_shop.widgets order by 1") == [(1, "a"), (2, "b2")]


def test_a_sqlite_text_cursor_keeps_loading_with_lag_0(settings, monkeypatch):
    """A cursor column declared TEXT compares text with text: the extra microsecond of a timestamp cursor is not
    for it (dlt cannot lag a string it does not parse, and the second run failed)."""
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", "0")
    widgets(monkeypatch)
    run_sql(
        settings.shop_url,
        "create table widgets (widget_id integer primary key, status text, updated_at text)",
        "insert into widgets values (1, 'a', '2024-01-01 00:00:00'), (2, 'b', '2024-01-02 00:00:00')",
    )
    ingest_shop(settings)
    run_sql(
        settings.shop_url, "update widgets set status = 'b2', updated_at = '2024-01-03 00:00:00' where widget_id = 2"
    )
    ingest_shop(settings)
    assert raw(settings, "select widget_id, status from raw_shop.widgets order by 1") == [(1, "a"), (2, "b2")]


def test_a_rate_revised_at_the_cursor_s_last_value_is_loaded_with_lag_0(settings):
    from ingestion.tests.test_fx import FxApiWith

    def rate(usd: str) -> dict:
        return {
            "currency_code": "AAA",
            "rate_date": "2024-01-01",
            "usd_per_unit": usd,
            "updated_at": "2024-03-01T00:00:00+00:00",  # later than every demo rate: the cursor's last value
        }

    extra = [rate("1.5")]
    with FxApiWith(extra, seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url, lag_seconds=0)
        extra[0] = rate("2.5")
        ingest_fx(settings, base_url=api.base_url, lag_seconds=0)
        ingest_fx(settings, base_url=api.base_url, lag_seconds=0)
    rows = raw(settings, "select usd_per_unit from raw_fx.exchange_rates where currency_code = 'AAA'")
    assert [Decimal(value) for (value,) in rows] == [Decimal("2.5")]


# 2. numerics without a precision, time with a time zone ----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "before", "after", "value"),
    [
        ("amount", "double precision", "numeric", "12345678901234567.89"),
        ("opens", "time", "timetz", "'09:30:00+02'"),
    ],
)
def test_a_column_changed_to_a_type_the_scanner_casts_stops_the_load_naming_it(
    settings, postgres_url, monkeypatch, column, before, after, value
):
    """Raw holds a `double precision` column as DOUBLE and a `time` as TIME: changed to `numeric` or `timetz`, the
    column was read as raw held it, and 12345678901234567.89 loaded as 1.2345678901234568e16, 09:30+02 as 09:30,
    exit 0. A changed type stops the load instead, as any other does."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url, f"create table widgets (widget_id integer primary key, {column} {before}, updated_at timestamptz)"
    )
    run_sql(postgres_url, "insert into widgets values (1, null, now() - interval '1 day')")
    ingest_shop(settings)
    run_sql(
        postgres_url,
        f"alter table widgets alter column {column} type {after}",
        f"insert into widgets values (2, {value}, now())",
    )
    with pytest.raises(Exception, match=rf"(?s)Can't evolve column type of `{column}` in table `widgets`"):
        ingest_shop(settings)
    assert raw(settings, "select widget_id from raw_shop.widgets") == [(1,)]


def test_the_scanner_keeps_numerics_without_a_precision_exact_and_quarantines_what_does_not_fit(
    settings, postgres_url, monkeypatch
):
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id integer primary key, amount numeric, wide numeric(40, 2), "
        "opens timetz, updated_at timestamptz)",
        "insert into widgets values "
        "(1, 12345678901234567.89, 123456789012345678901234.56, '09:30:00+02', '2024-01-01'), "
        "(2, 1e40, 1.5, '10:00:00-05', '2024-01-01'), "
        "(3, 0.1234567891, 2.5, null, '2024-01-01'), "
        "(4, 'NaN', 1e37, null, '2024-01-01')",
    )
    counts = ingest_shop(on(settings, postgres_url)).tables["widgets"]
    assert (counts.loaded, counts.quarantined) == (1, 3)
    assert raw(settings, "select widget_id, amount, wide, opens from raw_shop.widgets") == [
        (1, Decimal("12345678901234567.89"), Decimal("123456789012345678901234.56"), "09:30:00+02")
    ]
    types = dict(
        raw(
            settings,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_shop' and table_name = 'widgets'",
        )
    )
    assert types["amount"] == "DECIMAL(38,9)" and types["wide"] == "DECIMAL(38,2)" and types["opens"] == "VARCHAR"
    reasons = sorted(reason for (reason,) in raw(settings, "select reason from raw_shop._dead_letters"))
    assert len(reasons) == 3
    assert any("widgets.amount" in r and "1" + "0" * 40 in r and "DECIMAL(38, 9)" in r for r in reasons)
    assert any("widgets.amount" in r and "NaN" in r for r in reasons)
    assert any("widgets.amount" in r and "0.1234567891" in r for r in reasons)
    assert any("widgets.wide" in r and "DECIMAL(38, 2)" in r for r in reasons)


# 3. drift that must load, or stop before anything is written ------------------------------------------------


@pytest.mark.parametrize("source", ["postgres", "sqlite"])
def test_turning_a_table_s_cursor_off_and_on_again_keeps_loading(settings, postgres_url, monkeypatch, source):
    url = postgres_url if source == "postgres" else settings.shop_url
    settings = on(settings, url)
    shop.create_shop(url, scale=0.1)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["orders"]')
    ingest_shop(settings)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        orders = conn.execute(sa.text("select count(*) from orders")).scalar_one()
    engine.dispose()
    # Each round's change is its own, and the cursor-on round's is a new cursor value: what every round loaded
    # shows, not only the last round's full reload.
    for round_, options in enumerate(({"orders": {"cursor_column": ""}}, {}, {"orders": {"cursor_column": ""}})):
        monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", json.dumps(options))
        run_sql(
            url,
            f"update orders set status = 'changed-{round_}', "
            "updated_at = (select max(updated_at) from orders) where order_id = 1",
        )
        ingest_shop(settings)
        assert raw(settings, "select status from raw_shop.orders where order_id = 1") == [(f"changed-{round_}",)]
        assert raw(settings, "select count(*) from raw_shop.orders") == [(orders,)], options


def test_a_not_null_cursor_column_added_to_a_table_loads(settings, postgres_url, monkeypatch):
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(postgres_url, "create table widgets (widget_id integer primary key, name text)")
    run_sql(postgres_url, "insert into widgets values (1, 'a')")
    ingest_shop(settings)
    run_sql(postgres_url, "alter table widgets add column updated_at timestamptz not null default now()")
    run_sql(postgres_url, "alter table widgets add column tier text not null default 'gold'")
    run_sql(postgres_url, "insert into widgets values (2, 'b')")
    ingest_shop(settings)
    run_sql(postgres_url, "update widgets set name = 'b2', updated_at = now() where widget_id = 2")
    ingest_shop(settings)
    assert raw(settings, "select widget_id, name, tier from raw_shop.widgets order by 1") == [
        (1, "a", "gold"),
        (2, "b2", "gold"),
    ]


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_wider_integer_stops_the_load_before_anything_is_written_naming_table_and_column(
    settings, postgres_url, monkeypatch, capsys
):
    shop.create_shop(postgres_url, scale=0.1)
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", postgres_url)
    assert main(["ingest", "shop"]) == 0

    def snapshot():
        return raw(
            settings,
            "select (select count(*) from raw_shop._dlt_loads), (select max(updated_at) from raw_shop.orders), "
            "(select max(quantity) from raw_shop.order_items)",
        )

    before = snapshot()
    run_sql(
        postgres_url,
        "update orders set status = 'changed', updated_at = now() where order_id = 1",
        "alter table order_items alter column quantity type bigint",
        "update order_items set quantity = 3000000000, updated_at = now() where order_item_id = 1",
    )
    capsys.readouterr()
    assert main(["ingest", "shop"]) == 4
    err = capsys.readouterr().err
    assert "order_items" in err and "quantity" in err and "Can't evolve column type" in err
    assert snapshot() == before
    # Nothing left behind: the next run stops the same way, not on a half-loaded package.
    assert main(["ingest", "shop"]) == 4
    assert "Can't evolve column type" in capsys.readouterr().err
    # What the message says to do works: raw is dropped, so its old width binds nothing.
    assert main(["ingest", "shop", "--full-refresh"]) == 0
    assert snapshot()[0][2] == 3_000_000_000


def test_a_wider_integer_is_caught_whatever_the_case_of_the_column_name(settings, postgres_url, monkeypatch, capsys):
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(postgres_url, 'create table widgets (widget_id integer primary key, "Qty" integer, updated_at timestamptz)')
    run_sql(postgres_url, "insert into widgets values (1, 5, now())")
    ingest_shop(settings)
    run_sql(
        postgres_url,
        'alter table widgets alter column "Qty" type bigint',
        "insert into widgets values (2, 3000000000, now())",
    )
    with pytest.raises(
        Exception, match=r"(?s)Can't evolve column type of `qty` in table `widgets`.*Nothing was loaded"
    ):
        ingest_shop(settings)


def test_the_scanner_reads_intervals_and_the_arrays_it_would_change_as_their_text(settings, postgres_url, monkeypatch):
    """An `interval` stopped the table (dlt's writer refuses the type DuckDB reads it into); a `numeric[]` loaded as
    doubles and a `timetz[]` without its offsets, without a word. Arrays the scanner keeps exact stay as they were."""
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id integer primary key, takes interval, spans interval[], loose numeric[], "
        "opens timetz[], prices numeric(12, 2)[], tags text[], updated_at timestamptz)",
        "insert into widgets values (1, '1 day 02:00:03.5', '{1 hour, 2 mons}', '{12345678901234567.89, NaN}', "
        "'{09:30:00+02}', '{1.10, 1234567891.99}', '{a, b}', '2024-01-01')",
    )
    assert ingest_shop(on(settings, postgres_url)).tables["widgets"].loaded == 1
    columns = "takes, spans::varchar, loose::varchar, opens::varchar, prices::varchar, tags::varchar"
    assert raw(settings, f"select {columns} from raw_shop.widgets") == [
        (
            "1 day 02:00:03.5",
            '["01:00:00","2 mons"]',
            '["12345678901234567.89","NaN"]',
            '["09:30:00+02"]',
            "[1.1,1234567891.99]",
            '["a","b"]',
        )
    ]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_former_cursor_column_that_turns_null_or_is_dropped_is_released_in_raw_and_loads(
    settings, monkeypatch, caplog, request, warehouse
):
    """Raw held the cursor NOT NULL once another column was the cursor: a null in the old one, or the old one
    dropped, stopped every load until a full refresh. It is released in raw (warehouse and dlt's schema), and
    both load: from SQLite into DuckDB (dlt's pyarrow reader), from PostgreSQL into PostgreSQL (DuckDB's
    scanner)."""
    if warehouse == "postgres":
        monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
        warehouse_url = request.getfixturevalue("pg_env")
    widgets(monkeypatch)
    with fresh_postgres_database() if warehouse == "postgres" else nullcontext(settings.shop_url) as url:
        settings = on(settings, url)
        run_sql(
            url,
            "create table widgets (widget_id integer primary key, name text, updated_at timestamp, "
            "changed_at timestamp)",
            "insert into widgets values (1, 'a', '2024-01-01 00:00:00', '2024-01-01 00:00:00'), "
            "(2, 'b', '2024-01-01 00:00:00', '2024-01-01 00:00:00')",
        )
        ingest_shop(settings)

        def loaded(query: str) -> list[tuple]:
            if warehouse == "duckdb":
                return raw(settings, query)
            engine = sa.create_engine(warehouse_url)
            with engine.connect() as conn:
                rows = [tuple(row) for row in conn.execute(sa.text(query))]
            engine.dispose()
            return rows

        # A merge before the change: dlt's merge creates its staging table NOT NULL where raw is.
        run_sql(url, "update widgets set name = 'b1', updated_at = '2024-01-15 00:00:00' where widget_id = 2")
        ingest_shop(settings)
        nullable = (
            "select table_schema, is_nullable from information_schema.columns "
            "where table_name = 'widgets' and column_name = 'updated_at' order by 1"
        )
        assert loaded(nullable) == [("raw_shop", "NO"), ("raw_shop_staging", "NO")]
        widgets(monkeypatch, {"widgets": {"cursor_column": "changed_at"}})
        run_sql(
            url,
            "update widgets set name = 'no updated_at', updated_at = null, changed_at = '2024-02-01 00:00:00' "
            "where widget_id = 1",
        )
        caplog.clear()
        ingest_shop(settings)
        assert "column(s) updated_at are no longer its key or cursor: raw holds them nullable" in caplog.text
        assert loaded(nullable) == [("raw_shop", "YES"), ("raw_shop_staging", "YES")]
        assert loaded("select widget_id, name, updated_at is null from raw_shop.widgets order by 1") == [
            (1, "no updated_at", True),
            (2, "b1", False),
        ]
        run_sql(
            url,
            "alter table widgets drop column updated_at",
            "update widgets set name = 'dropped', changed_at = '2024-03-01 00:00:00' where widget_id = 2",
        )
        caplog.clear()
        ingest_shop(settings)
        assert "no longer its key or cursor" not in caplog.text  # released once: dlt's schema remembers it
        assert "no longer has column(s) updated_at" in caplog.text
        assert loaded("select widget_id, name from raw_shop.widgets order by 1") == [
            (1, "no updated_at"),
            (2, "dropped"),
        ]


# 4. wrong settings -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SOURCES__SHOP__CURSOR_COLUMN": "updatedat"}, ["cursor_column", "updatedat"]),
        (
            {"SOURCES__SHOP__TABLE_OPTIONS": '{"orders": {"primary_keys": ["order_id"]}}'},
            ["primary_keys", "table_options.orders", "primary_key, cursor_column, lag_seconds"],
        ),
        (
            {"SOURCES__SHOP__TABLE_OPTIONS": '{"orders": {"cursor_colum": "updated_at"}}'},
            ["cursor_colum", "table_options.orders"],
        ),
        ({"SOURCES__SHOP__TABLE_OPTIONS": '{"orders": ["order_id"]}'}, ["table_options.orders", "primary_key"]),
        ({"SOURCES__SHOP__TABLE_OPTIONS": '{"orders": {"lag_seconds": "1h"}}'}, ["lag_seconds", "orders", "1h"]),
        ({"SOURCES__SHOP__LAG_SECONDS": "1h"}, ["lag_seconds", "1h"]),
        ({"SOURCES__SHOP__LAG_SECONDS": "-5"}, ["lag_seconds", "-5"]),
    ],
)
def test_a_mistyped_setting_is_a_wrong_setting_naming_it(settings, monkeypatch, capsys, env, named):
    shop.create_shop(settings.shop_url, scale=0.1)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["ingest", "shop"]) == 2
    err = capsys.readouterr().err
    assert "a setting is wrong" in err
    for word in named:
        assert word in err


# 5. lag on a date cursor -------------------------------------------------------------------------------------


def test_lag_seconds_on_a_date_cursor_is_whole_days(settings, monkeypatch):
    """dlt reads a lag on a date cursor as days: 3600 meant ten years back."""
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", "3600")
    widgets(monkeypatch, {"widgets": {"cursor_column": "changed_on"}})
    run_sql(settings.shop_url, "create table widgets (widget_id integer primary key, changed_on date)")
    start = date(2024, 1, 1)
    values = ", ".join(f"({day}, '{start + timedelta(days=day)}')" for day in range(30))
    run_sql(settings.shop_url, f"insert into widgets values {values}")
    assert ingest_shop(settings).tables["widgets"].loaded == 30
    # 3600 s is one day, rounded up: the last two days are read again, not all thirty.
    assert ingest_shop(settings).tables["widgets"].extracted == 2
    from ingestion.sources.shop import incremental_lag

    assert incremental_lag(0, is_date=True) == 0
    assert incremental_lag(1, is_date=True) == 1
    assert incremental_lag(86400, is_date=True) == 1
    assert incremental_lag(86401, is_date=True) == 2
    assert incremental_lag(3600, is_date=False) == 3600
    assert incremental_lag(3600, is_date=False, text_timestamps=True) == 3600 + 1e-6


# 6. a bad value in a SQLite source ---------------------------------------------------------------------------


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize(
    ("statement", "column"),
    [
        (
            "update products set unit_price = 'abc', updated_at = '2024-06-01 00:00:00' where product_id = 1",
            "unit_price",
        ),
        ("update products set updated_at = '2026-13-45 99:00:00' where product_id = 1", "updated_at"),
        # Wider than NUMERIC(12, 2): "Decimal value does not fit in precision 12" failed the whole source.
        (
            "update products set unit_price = 123456789012345.5, updated_at = '2024-06-01 00:00:00' "
            "where product_id = 1",
            "unit_price",
        ),
    ],
)
def test_a_bad_value_in_a_sqlite_source_goes_to_the_dead_letters_naming_table_and_column(
    settings, monkeypatch, capsys, statement, column
):
    """SQLite keeps any value in any column; one its type cannot read failed every table of the run, naming none."""
    shop.create_shop(settings.shop_url, scale=0.1)
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", str(400 * 86400))  # the bad row is read again
    assert main(["ingest", "shop"]) == 0
    (before,) = raw(settings, "select unit_price from raw_shop.products where product_id = 1")
    run_sql(settings.shop_url, statement, "update products set product_name = 'renamed' where product_id = 2")
    capsys.readouterr()
    assert main(["ingest", "shop"]) == 0
    assert raw(settings, "select product_name from raw_shop.products where product_id = 2") == [("renamed",)]
    assert raw(settings, "select unit_price from raw_shop.products where product_id = 1") == [before]
    dead = raw(settings, "select table_name, reason, origin from raw_shop._dead_letters")
    assert len(dead) == 1
    table, reason, origin = dead[0]
    assert table == "products" and f"products.{column}" in reason and "bad value in the source" in reason
    assert "product_id=1" in origin
    columns = raw(settings, "select column_name from information_schema.columns where table_name = 'products'")
    assert ("_harbor_invalid",) not in columns


@pytest.mark.usefixtures("harbor_cli_env")
@pytest.mark.parametrize("value", ["'12abc'", "'abc'", "3.7"])
def test_what_is_not_an_integer_in_a_sqlite_integer_column_goes_to_the_dead_letters(settings, monkeypatch, value):
    """Text failed the whole shop source, naming no table ("Expected bytes, got a 'int' object"); 3.7 loaded as 3."""
    shop.create_shop(settings.shop_url, scale=0.1)
    monkeypatch.setenv("SOURCES__SHOP__LAG_SECONDS", str(400 * 86400))  # the bad row is read again
    assert main(["ingest", "shop"]) == 0
    (before,) = raw(settings, "select quantity from raw_shop.order_items where order_item_id = 1")
    run_sql(
        settings.shop_url,
        f"update order_items set quantity = {value}, updated_at = '2024-06-01 00:00:00' where order_item_id = 1",
        "update order_items set quantity = quantity + 1 where order_item_id = 2",
    )
    assert main(["ingest", "shop"]) == 0
    assert raw(settings, "select quantity from raw_shop.order_items where order_item_id = 1") == [before]
    dead = raw(settings, "select table_name, reason, origin from raw_shop._dead_letters")
    assert len(dead) == 1, dead
    table, reason, origin = dead[0]
    assert table == "order_items" and "order_items.quantity" in reason and "order_item_id=1" in origin, dead


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
def test_a_dead_letter_holding_an_infinite_timestamp_is_written_and_the_valid_rows_load(
    settings, postgres_url, monkeypatch, value
):
    """A NaN sends the row to the dead letters, and its `infinity` timestamp, which Python cannot hold, failed
    that step, and so the whole source at every run ("date value out of range")."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id int primary key, n numeric, seen_at timestamptz, updated_at timestamptz)",
        f"insert into widgets values (1, 'NaN', '{value}', now() - interval '1 day'), "
        "(2, 1.5, now(), now() - interval '1 day')",
    )
    ingest_shop(settings)
    assert raw(settings, "select widget_id from raw_shop.widgets") == [(2,)]
    ((reason, row),) = raw(settings, "select reason, payload from raw_shop._dead_letters")
    assert "widgets.n: NaN does not fit" in reason
    assert json.loads(row)["seen_at"] == value


def test_nan_in_a_numeric_with_a_precision_is_a_dead_letter_not_zero(settings, postgres_url, monkeypatch):
    """PostgreSQL allows NaN in `numeric(10, 2)`; DuckDB's scanner read it as 0.00, loaded without a word."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id int primary key, amount numeric(10, 2), updated_at timestamptz)",
        "insert into widgets values (1, 'NaN', now() - interval '1 day'), (2, 12.34, now() - interval '1 day')",
    )
    ingest_shop(settings)
    assert raw(settings, "select widget_id, amount, typeof(amount) from raw_shop.widgets") == [
        (2, Decimal("12.34"), "DECIMAL(10,2)")
    ]
    ((reason,),) = raw(settings, "select reason from raw_shop._dead_letters")
    assert reason == "widgets.amount: NaN is not a number the warehouse's DECIMAL(10, 2) holds"


def test_a_domain_over_numeric_stays_exact(settings, postgres_url, monkeypatch):
    """SQLAlchemy reflects a domain as DOMAIN, not Numeric: it missed the exactness cast, and DuckDB's scanner read
    the unconstrained numeric under it as a double (12345678901234567.89 became 1.2345678901234568e16)."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create domain price as numeric",
        "create table widgets (widget_id int primary key, amount price, updated_at timestamptz)",
        "insert into widgets values (1, 12345678901234567.89, now() - interval '1 day')",
    )
    ingest_shop(settings)
    assert raw(settings, "select amount from raw_shop.widgets") == [(Decimal("12345678901234567.890000000"),)]


# 7. values a warehouse cannot load: dead letters, not a package every later run fails on --------------------------


@pytest.fixture
def sql_ascii_url():
    """A PostgreSQL database in SQL_ASCII, which keeps whatever bytes it is given as text."""
    with fresh_postgres_database("encoding 'SQL_ASCII' template template0 lc_collate 'C' lc_ctype 'C'") as url:
        yield url


def test_text_that_is_not_utf8_is_a_dead_letter_and_loads_once_fixed(settings, sql_ascii_url, monkeypatch):
    """The load failed on it naming a parquet file, and the package stayed pending: every later run of the shop
    failed, the row fixed in the source or not, until a full refresh. (The pyarrow backend's driver stops the
    extract on it, before anything is written.)"""
    settings = on(settings, sql_ascii_url)
    widgets(monkeypatch)
    run_sql(
        sql_ascii_url,
        "create table widgets (widget_id int primary key, name text, updated_at timestamptz not null)",
        "insert into widgets values (1, 'ok', now() - interval '1 day'), "
        "(2, convert_from('\\x626164ff'::bytea, 'SQL_ASCII'), now() - interval '1 day')",
    )
    counts = ingest_shop(settings).tables["widgets"]
    assert (counts.loaded, counts.quarantined) == (1, 1)
    ((reason,),) = raw(settings, "select reason from raw_shop._dead_letters")
    assert reason.startswith("widgets.name: text that is not UTF-8 ('bad\\\\xff'")
    run_sql(sql_ascii_url, "update widgets set name = 'fixed', updated_at = now() where widget_id = 2")
    ingest_shop(settings)
    assert raw(settings, "select widget_id, name from raw_shop.widgets order by 1") == [(1, "ok"), (2, "fixed")]


def test_infinite_and_bc_dates_are_dead_letters_in_a_postgres_warehouse(settings, pg_env, monkeypatch):
    """DuckDB holds them, PostgreSQL too, but a PostgreSQL warehouse's load failed on them, naming no table, and
    the package stayed pending: every later run of the shop failed until a full refresh."""
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    widgets(monkeypatch)
    with fresh_postgres_database() as source_url:
        run_sql(
            source_url,
            "create table widgets (widget_id int primary key, born date, seen timestamptz, "
            "updated_at timestamptz not null)",
            "insert into widgets values "
            "(1, '2024-01-01', '2024-01-01 10:00+00', now() - interval '1 day'), "
            "(2, 'infinity', null, now() - interval '1 day'), "
            "(3, null, '-infinity', now() - interval '1 day'), "
            "(4, '4713-01-01 BC', '0044-03-15 12:00+00 BC', now() - interval '1 day')",
        )
        counts = ingest_shop(on(settings, source_url)).tables["widgets"]
        assert (counts.loaded, counts.quarantined) == (1, 3)
        run_sql(source_url, "update widgets set born = '2024-02-02', updated_at = now() where widget_id = 2")
        assert ingest_shop(on(settings, source_url)).tables["widgets"].quarantined == 2  # read again: in the lag
    engine = sa.create_engine(pg_env)
    with engine.connect() as conn:
        loaded = conn.execute(sa.text("select widget_id, born from raw_shop.widgets order by 1")).all()
        reasons = conn.execute(sa.text("select distinct reason from raw_shop._dead_letters order by 1")).scalars().all()
    engine.dispose()
    assert loaded == [(1, date(2024, 1, 1)), (2, date(2024, 2, 2))]
    cannot = "infinity, -infinity or a year before 1, which a PostgreSQL warehouse's load cannot take"
    assert reasons == [f"widgets.born: {cannot}", f"widgets.seen: {cannot}"]


def test_a_lost_or_new_column_is_said_as_it_leaves_nulls_behind(settings, postgres_url, monkeypatch, caplog):
    """A renamed column nulled staging's for every changed row, and a column added with a default stayed null in
    the rows loaded before, both without a word."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id int primary key, currency text, updated_at timestamptz not null)",
        "insert into widgets values (1, 'EUR', now() - interval '1 day')",
    )
    ingest_shop(settings)
    run_sql(
        postgres_url,
        "alter table widgets rename column currency to currency_code",
        "alter table widgets add column tier text not null default 'bronze'",
    )
    caplog.clear()
    ingest_shop(settings)
    said = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "shop: table 'widgets'" in r.getMessage()
    ]
    assert any("no longer has column(s) currency: raw keeps them, null in every row loaded" in m for m in said), said
    assert any("has new column(s) currency_code, tier: rows loaded before hold null" in m for m in said), said


def test_a_cursor_changed_between_timestamp_and_timestamptz_stops_naming_it(settings, postgres_url, monkeypatch):
    """dlt's stored cursor and the new values could not be compared: the run failed naming neither table nor
    column, and guessed that the source's database had changed."""
    settings = on(settings, postgres_url)
    widgets(monkeypatch)
    run_sql(
        postgres_url,
        "create table widgets (widget_id int primary key, updated_at timestamptz not null)",
        "insert into widgets values (1, now() - interval '1 day')",
    )
    ingest_shop(settings)
    run_sql(postgres_url, "alter table widgets alter column updated_at type timestamp")
    with pytest.raises(
        Exception, match="table 'widgets' cursor column 'updated_at' is now a timestamp without time zone"
    ):
        ingest_shop(settings)
