"""The SQL source is configuration, not demo code: a foreign PostgreSQL database (TPC-H) loaded by
configuration alone; schema drift (a new column loads, a type change stops the load naming table and column)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from datetime import timedelta
from unittest import mock

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.cli import main
from ingestion.demo import shop
from ingestion.demo.tpch import make_tpch
from ingestion.parquet_writer import DICTIONARY_COLUMNS
from ingestion.pipeline import ingest_shop, state_dir
from ingestion.settings import Settings, shown_location


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_foreign_postgres_database_loads_by_configuration_only(settings, postgres_url, monkeypatch, capsys):
    counts = make_tpch(postgres_url, "tpch")
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", postgres_url)
    monkeypatch.setenv("SOURCES__SHOP__SCHEMA", "tpch")
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["*"]')
    monkeypatch.setenv(
        "SOURCES__SHOP__TABLE_OPTIONS",
        json.dumps(
            {
                "lineitem": {"primary_key": ["l_orderkey", "l_linenumber"]},
                "partsupp": {"primary_key": ["ps_partkey", "ps_suppkey"]},
                "part": {"primary_key": ["p_partkey"]},
                "supplier": {"primary_key": ["s_suppkey"]},
                "orders": {"cursor_column": "o_orderdate", "lag_seconds": 0},
            }
        ),
    )
    assert main(["ingest", "shop"]) == 0
    out = capsys.readouterr().out
    assert "shop.lineitem" in out
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        loaded = {t: conn.execute(f"select count(*) from raw_shop.{t}").fetchone()[0] for t in counts}
        (revenue,) = conn.execute("select sum(l_extendedprice) from raw_shop.lineitem").fetchone()
    assert loaded == counts
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert revenue == conn.execute(sa.text("select sum(l_extendedprice) from tpch.lineitem")).scalar_one()
        conn.execute(sa.text("update tpch.orders set o_comment = 'changed' where o_orderkey = 1"))
        conn.execute(
            sa.text(
                "update tpch.orders set o_orderdate = (select max(o_orderdate) from tpch.orders) where o_orderkey = 1"
            )
        )
        conn.commit()
    engine.dispose()
    # Second run: orders incremental on its cursor (only the latest day comes again), the rest reloaded.
    assert main(["ingest", "shop"]) == 0
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.orders").fetchone()[0] == counts["orders"]
        assert conn.execute("select o_comment from raw_shop.orders where o_orderkey = 1").fetchone()[0] == "changed"
        assert conn.execute("select count(*) from raw_shop.lineitem").fetchone()[0] == counts["lineitem"]


def test_a_table_without_a_key_is_refused_with_the_setting_to_use(settings, postgres_url):
    make_tpch(postgres_url, "tpch", scale=0.001)
    from ingestion.sources.shop import SourceConfigError, shop_source

    with pytest.raises(SourceConfigError, match=r"sources\.shop\.table_options\.lineitem\.primary_key"):
        shop_source(credentials=postgres_url, schema="tpch", table_names=["lineitem"])


def test_schema_drift_new_column_loads_and_a_type_change_stops_naming_table_and_column(settings, postgres_url):
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    shop.create_shop(postgres_url, scale=0.2)
    ingest_shop(settings)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("alter table customers add column loyalty_tier text"))
        conn.execute(sa.text("update customers set loyalty_tier = 'gold', updated_at = now() where customer_id = 1"))
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        tiers = conn.execute("select customer_id, loyalty_tier from raw_shop.customers where loyalty_tier is not null")
        assert tiers.fetchall() == [(1, "gold")]
        (before,) = conn.execute("select count(*) from raw_shop.payments").fetchone()
    with engine.begin() as conn:
        conn.execute(sa.text("alter table payments alter column amount type text using amount::text"))
        conn.execute(sa.text("update payments set amount = 'twelve', updated_at = now() where payment_id = 1"))
    engine.dispose()
    # Stopped by the schema contract at extract, before anything is written: with the type allowed to evolve, the
    # load failed later in DuckDB with a conversion error that also named the table and the column.
    with pytest.raises(PipelineStepFailed, match="Can't evolve column type of `amount` in table `payments`") as failure:
        ingest_shop(settings)
    assert failure.value.step == "extract"
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.payments").fetchone()[0] == before


@pytest.mark.parametrize("backend", ["duckdb", "pyarrow", "connectorx", "sqlalchemy"])
def test_a_not_null_column_the_source_drops_stays_in_raw_as_null(settings, postgres_url, monkeypatch, backend):
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", backend)
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    shop.create_shop(postgres_url, scale=0.2)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("alter table customers add column tier text not null default 'gold'"))
    ingest_shop(settings)
    with engine.begin() as conn:
        conn.execute(sa.text("alter table customers drop column tier"))
        conn.execute(
            sa.text("update customers set email = 'new@example.com', updated_at = now() where customer_id = 1")
        )
    engine.dispose()
    ingest_shop(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select email, tier from raw_shop.customers where customer_id in (1, 2) order by customer_id"
        )
        assert rows.fetchall() == [("new@example.com", None), (mock.ANY, "gold")]


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_database_that_is_down_is_retried_one_that_refuses_is_a_wrong_setting_and_state_stays(
    settings, postgres_url, monkeypatch, capsys
):
    shop.create_shop(postgres_url, scale=0.2)
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", postgres_url)
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    assert main(["ingest", "shop"]) == 0

    def snapshot():
        with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
            return conn.execute(
                "select (select count(*) from raw_shop._dlt_loads), (select count(*) from raw_shop.orders), "
                "(select max(version) from raw_shop._dlt_pipeline_state)"
            ).fetchone()

    before = snapshot()
    capsys.readouterr()
    # Nothing listens on port 1: the database is "down".
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", "postgresql+psycopg2://postgres@127.0.0.1:1/shop")
    assert main(["ingest", "shop"]) == 3
    err = capsys.readouterr().err
    assert err.count("unreachable, retrying") == 2  # 3 attempts, jittered backoff between them
    assert "source 'shop' is unavailable" in err and "port 1" in err
    assert snapshot() == before

    # A database that is up and refuses: waiting changes nothing, so a wrong setting at once (exit 2), no retries.
    for refusing in (
        postgres_url.rsplit("/", 1)[0] + "/harbor_no_such_shop",
        postgres_url.replace("postgres@", "no_such_role@"),
    ):
        monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", refusing)
        assert main(["ingest", "shop"]) == 2
        err = capsys.readouterr().err
        assert "does not exist" in err and "SOURCES__SHOP__CREDENTIALS" in err and "retrying" not in err
    assert snapshot() == before

    # After recovery the next run catches up exactly.
    shop.advance_shop(postgres_url)
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", postgres_url)
    assert main(["ingest", "shop"]) == 0
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        expected = conn.execute(sa.text("select count(*) from orders")).scalar_one()
    engine.dispose()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*), count(distinct order_id) from raw_shop.orders").fetchone() == (
            expected,
            expected,
        )


@pytest.mark.parametrize("backend", ["duckdb", "pyarrow", "connectorx", "sqlalchemy"])
def test_rows_without_key_or_cursor_are_quarantined_and_the_rest_loads(settings, postgres_url, monkeypatch, backend):
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", backend)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table widgets (widget_id integer, name text, updated_at timestamptz)"))
        conn.execute(
            sa.text(
                "insert into widgets values (1, 'a', '2024-01-01'), (2, 'b', null), (null, 'c', '2024-01-02'), "
                "(4, 'd', '2024-01-03')"
            )
        )
    engine.dispose()
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["widgets"]')
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", '{"widgets": {"primary_key": ["widget_id"]}}')
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    counts = ingest_shop(settings).tables["widgets"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (4, 2, 2)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select widget_id from raw_shop.widgets order by 1").fetchall() == [(1,), (4,)]
        dead = conn.execute("select reason, payload from raw_shop._dead_letters order by reason").fetchall()
    assert [reason for reason, _ in dead] == [
        "widgets.updated_at: required field is missing or null",
        "widgets.widget_id: required field is missing or null",
    ]
    assert '"name": "b"' in dead[0][1]


@pytest.mark.parametrize(
    ("backend", "cursor_type"),
    [
        ("duckdb", "timestamptz"),
        ("duckdb", "timestamp"),
        ("pyarrow", "timestamp"),
        ("connectorx", "timestamptz"),
    ],
)
def test_a_cursor_far_in_the_future_is_held_back_and_later_changes_still_load(
    settings, postgres_url, monkeypatch, backend, cursor_type
):
    """One row stamped 2099 would move the table's cursor there, and every real change after it would be skipped
    until 2099. It is quarantined instead, read again by each run (one dead letter), and the cursor stays."""
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", backend)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["widgets"]')
    monkeypatch.setenv("SOURCES__SHOP__TABLE_OPTIONS", '{"widgets": {"primary_key": "widget_id"}}')
    engine = sa.create_engine(postgres_url)

    def source(statement: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))

    # A declared primary key: reflected NOT NULL, it once became a column of `_dead_letters` too, and the first
    # quarantined row of such a table failed the load on every backend but DuckDB's scanner.
    source(f"create table widgets (widget_id integer primary key, name text, updated_at {cursor_type})")
    source("insert into widgets values (1, 'a', '2024-01-01'), (2, 'b', '2024-01-02')")
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    assert ingest_shop(settings).tables["widgets"].loaded == 2
    source("update widgets set name = 'b from the future', updated_at = '2099-01-01' where widget_id = 2")
    source("update widgets set name = 'a2', updated_at = '2024-01-05' where widget_id = 1")
    assert ingest_shop(settings).tables["widgets"].quarantined == 1
    source("update widgets set name = 'a3', updated_at = '2024-01-06' where widget_id = 1")
    ingest_shop(settings)
    engine.dispose()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        names = dict(conn.execute("select widget_id, name from raw_shop.widgets").fetchall())
        dead = conn.execute("select reason from raw_shop._dead_letters").fetchall()
    assert names == {1: "a3", 2: "b"}
    assert len(dead) == 1 and "widgets.updated_at: 2099-01-01" in dead[0][0]


@pytest.mark.parametrize("backend", ["duckdb", "pyarrow"])
def test_a_cursor_ahead_of_the_source_clock_by_more_than_the_lag_is_held_back(
    settings, postgres_url, monkeypatch, backend
):
    """A row stamped 5 hours ahead under the 1-hour lag loaded and moved the cursor there: the next run started 4
    hours ahead of now, and every change of those 4 hours was skipped for good, exit 0."""
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", backend)
    monkeypatch.setenv("SOURCES__SHOP__TABLE_NAMES", '["widgets"]')
    engine = sa.create_engine(postgres_url)

    def source(statement: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))

    source("create table widgets (widget_id integer primary key, name text, updated_at timestamptz not null)")
    source("insert into widgets values (1, 'a', now() - interval '1 day'), (2, 'b', now() - interval '1 day')")
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    assert ingest_shop(settings).tables["widgets"].loaded == 2
    source("insert into widgets values (3, 'skewed', now() + interval '5 hours')")
    assert ingest_shop(settings).tables["widgets"].quarantined == 1
    source("insert into widgets values (4, 'new', now())")
    source("update widgets set name = 'a changed', updated_at = now() where widget_id = 1")
    ingest_shop(settings)
    engine.dispose()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        names = dict(conn.execute("select widget_id, name from raw_shop.widgets").fetchall())
        (reason,) = conn.execute("select reason from raw_shop._dead_letters").fetchone()
    assert names == {1: "a changed", 2: "b", 4: "new"}
    assert "is more than 3600 s (the lag, lag_seconds) after the run started, on the source's clock" in reason


@pytest.mark.parametrize("backend", ["duckdb", "pyarrow", "connectorx"])
def test_every_backend_keeps_types_exact(settings, postgres_url, monkeypatch, backend):
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", backend)
    shop.create_shop(postgres_url, scale=0.2)
    ingest_shop(Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url))
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        expected = dict(conn.execute(sa.text("select payment_id, amount from payments")).all())
    engine.dispose()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        types = dict(
            conn.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw_shop' and table_name = 'payments'"
            ).fetchall()
        )
        loaded = dict(conn.execute("select payment_id, amount from raw_shop.payments").fetchall())
    assert types["amount"] == "DECIMAL(12,2)" and types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert loaded == expected


def test_a_row_committed_late_inside_the_lag_window_is_still_loaded(settings):
    shop.create_shop(settings.shop_url, scale=0.2)
    ingest_shop(settings)
    engine = sa.create_engine(settings.shop_url)
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(shop.orders.c.updated_at))).scalar_one()
        # A long transaction commits a row stamped 30 minutes before the cursor the last run reached.
        late = newest - timedelta(minutes=30)
        conn.execute(
            sa.insert(shop.orders).values(
                order_id=10_000,
                customer_id=1,
                status="placed",
                currency="USD",
                ordered_at=late,
                created_at=late,
                updated_at=late,
            )
        )
    engine.dispose()
    second = ingest_shop(settings)
    assert second.tables["orders"].loaded >= 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw_shop.orders where order_id = 10000").fetchone() == (1,)
        assert conn.execute("select count(*) = count(distinct order_id) from raw_shop.orders").fetchone() == (True,)


def raw_write_dispositions(settings: Settings) -> dict[str, str]:
    from ingestion.pipeline import make_pipeline

    tables = make_pipeline("shop", settings).default_schema.tables
    return {name: tables[name]["write_disposition"] for name in shop.SHOP_TABLES}


def test_a_first_load_replaces_later_loads_merge_and_a_lost_local_state_never_replaces(settings, postgres_url):
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    shop.create_shop(postgres_url, scale=0.2)
    ingest_shop(settings)
    assert set(raw_write_dispositions(settings).values()) == {"replace"}

    shop.advance_shop(postgres_url, ticks=1)
    changed = ingest_shop(settings)
    assert set(raw_write_dispositions(settings).values()) == {"merge"}
    assert 0 < changed.total_rows < sum(source_counts(postgres_url).values())

    # The machine loses dlt's local state (a new checkout, a wiped cache) but keeps the warehouse: the state comes
    # back from the warehouse, so the next run still reads only the changed rows and merges them.
    shutil.rmtree(state_dir(settings) / "harbor_shop")
    shop.advance_shop(postgres_url, ticks=1)
    again = ingest_shop(settings)
    assert 0 < again.total_rows < sum(source_counts(postgres_url).values())
    assert set(raw_write_dispositions(settings).values()) == {"merge"}
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        raw = {t: conn.execute(f"select count(*) from raw_shop.{t}").fetchone()[0] for t in shop.SHOP_TABLES}
    assert raw == source_counts(postgres_url)


def source_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in shop.SHOP_TABLES}
    engine.dispose()
    return counts


def test_a_backend_that_cannot_read_the_database_is_refused(settings, monkeypatch):
    shop.create_shop(settings.shop_url, scale=0.1)
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "duckdb")
    with pytest.raises(Exception, match="backend 'duckdb' reads PostgreSQL only, not sqlite"):
        ingest_shop(settings)
    monkeypatch.setenv("SOURCES__SHOP__BACKEND", "turbo")
    with pytest.raises(Exception, match="backend must be one of auto, duckdb, connectorx, pyarrow, sqlalchemy"):
        ingest_shop(settings)


def test_the_scanner_reads_every_table_in_dlt_s_pool_and_leaves_no_loaded_files(settings, postgres_url, monkeypatch):
    """Tables are read in parallel, off the main thread, which meanwhile writes what they read (README
    "Performance"); the files a load consumed are deleted, so the pipeline folder does not grow with every run."""
    from ingestion.sources import postgres_scan

    readers: dict[str, str] = {}
    scan = postgres_scan._scan

    def recording_scan(session, query, batch_rows):
        for batch in scan(session, query, batch_rows):
            readers[re.search(r'from "[^"]+"\."([^"]+)"', query).group(1)] = threading.current_thread().name
            yield batch

    monkeypatch.setattr(postgres_scan, "_scan", recording_scan)
    shop.create_shop(postgres_url, scale=0.2)
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    ingest_shop(settings)
    assert set(readers) == set(shop.SHOP_TABLES)
    assert "MainThread" not in readers.values()
    leftovers = list((state_dir(settings) / "harbor_shop").rglob("*.parquet"))
    assert leftovers == []


def test_a_run_opens_the_duckdb_warehouse_once(settings, postgres_url, monkeypatch):
    """dlt alone opens and closes the warehouse around every load job, and each close checkpoints it: on a big
    warehouse most of an incremental load's time. A run holds one connection instead."""
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    shop.create_shop(postgres_url, scale=0.2)
    ingest_shop(settings)
    shop.advance_shop(postgres_url, ticks=1)
    opened: list[str] = []
    connect = duckdb.connect

    def counting_connect(database=":memory:", *args, **kwargs):
        if str(database) == str(settings.warehouse):
            opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting_connect)
    changed = ingest_shop(settings)
    assert changed.total_rows > 0
    assert len(opened) == 1


def test_the_scanner_starts_duckdb_once_for_the_tables_read_together_and_closes_it(settings, postgres_url, monkeypatch):
    """Starting DuckDB and the scanner per table cost about 0.06 s each, 0.33 s for five at once."""
    from ingestion.sources import postgres_scan

    started: list[duckdb.DuckDBPyConnection] = []
    start = postgres_scan.ScannerSession._start

    def recording_start(self):
        started.append(start(self))
        return started[-1]

    monkeypatch.setattr(postgres_scan.ScannerSession, "_start", recording_start)
    shop.create_shop(postgres_url, scale=0.2)
    ingest_shop(Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url))
    # Tables read at the same time share one; a table whose read begins after the others all finished (not seen
    # here, but thread scheduling does not rule it out) starts it again.
    assert 1 <= len(started) <= 2 < len(shop.SHOP_TABLES)
    for conn in started:
        with pytest.raises(duckdb.ConnectionException):  # closed by the last reader
            conn.execute("select 1")


def test_two_warehouses_fed_from_one_data_folder_each_get_every_row(settings):
    """dlt's local state was one per data folder, and dlt trusts a newer local state over the warehouse's: when
    runs alternated between two warehouse files (`HARBOR_WAREHOUSE`), each skipped the rows the other had read."""
    shop.create_shop(settings.shop_url, scale=0.2)
    other = Settings(
        settings.project_dir, settings.warehouse.with_name("other.duckdb"), settings.data_dir, settings.shop_url
    )
    for _ in range(2):
        for warehouse in (settings, other):
            ingest_shop(warehouse)
            shop.advance_shop(settings.shop_url, ticks=1)
    expected = source_counts(settings.shop_url)["order_items"]
    for warehouse in (settings, other):
        ingest_shop(warehouse)
        with duckdb.connect(str(warehouse.warehouse), read_only=True) as conn:
            (loaded,) = conn.execute("select count(distinct order_item_id) from raw_shop.order_items").fetchone()
        assert loaded == expected, warehouse.warehouse.name


def test_the_scanner_failing_to_connect_does_not_show_the_password(tmp_path):
    """DuckDB's error names the whole libpq URL: it reached stderr and JSON logs, password included."""
    from ingestion.duckdb_extensions import load_postgres_scanner
    from ingestion.pipeline import _unavailable_cause
    from ingestion.sources.postgres_scan import ScannerConnectionError, attach_postgres

    conn = duckdb.connect()
    load_postgres_scanner(conn, tmp_path / "extensions")
    with pytest.raises(ScannerConnectionError) as raised:
        attach_postgres(conn, "postgresql+psycopg2://harbor:Top%2FS3cret@127.0.0.1:1/shop", "source_db")
    seen: BaseException | None = raised.value
    while seen is not None:
        assert "S3cret" not in str(seen)
        seen = seen.__cause__ or seen.__context__
    assert "***" in str(raised.value) and "127.0.0.1" in str(raised.value)
    assert _unavailable_cause(raised.value)  # an outage: exit code 3, like the other ways a source is unreachable


def test_extracted_files_dictionary_encode_only_the_columns_constant_in_a_load(settings, postgres_url, monkeypatch):
    """pyarrow's default dictionary-encodes every column, which made extract ~20% slower (ingestion/parquet_writer.py)."""
    monkeypatch.setenv("LOAD__DELETE_COMPLETED_JOBS", "false")  # keep the files to look at
    shop.create_shop(postgres_url, scale=0.2)
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, postgres_url)
    ingest_shop(settings)
    files = sorted(state_dir(settings).glob("**/completed_jobs/*.parquet"))
    assert {path.name.split(".")[0] for path in files} == set(shop.SHOP_TABLES)
    for path in files:
        row_group = pq.ParquetFile(path).metadata.row_group(0)
        columns = [row_group.column(index) for index in range(row_group.num_columns)]
        encoded = {column.path_in_schema for column in columns if "RLE_DICTIONARY" in column.encodings}
        assert encoded == DICTIONARY_COLUMNS, path.name


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("postgresql+psycopg2://harbor:s3cret@db:5432/shop", "postgresql+psycopg2://harbor:***@db:5432/shop"),
        ("postgresql+psycopg2://harbor:s3cret@db:port/shop", "an unparseable URL"),
        ("not a url :// harbor:s3cret", "an unparseable URL"),
        ("warehouse/harbor.duckdb", "warehouse/harbor.duckdb"),
        # Not URLs to SQLAlchemy, shown as file paths were: the password and all (found by review).
        (
            "postgresql+psycopg2//postgres:s3cret@127.0.0.1:5432/shop",
            "postgresql+psycopg2//postgres:***@127.0.0.1:5432/shop",
        ),
        ("postgres:s3cret@127.0.0.1:5432/shop", "postgres:***@127.0.0.1:5432/shop"),
        ("postgresql+psycopg2:/postgres:s3cret@db/shop", "postgresql+psycopg2:/postgres:***@db/shop"),
        # A URL SQLAlchemy reads otherwise: the user-info as the database, or part of the password as the host.
        (
            "postgresql+psycopg2:///postgres:s3cret@127.0.0.1:5432/shop",
            "postgresql+psycopg2:///postgres:***@127.0.0.1:5432/shop",
        ),
        ("postgresql+psycopg2://harbor:s3c@ret@db/shop", "postgresql+psycopg2://harbor:***@db/shop"),
    ],
)
def test_messages_show_a_location_without_its_password(location, shown):
    assert shown_location(location) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "retrying http://user:s3cret@127.0.0.1:9/v1/rates?page=1 in 0.01s",
            "retrying http://user:***@127.0.0.1:9/v1/rates?page=1 in 0.01s",
        ),
        ("base_url='https://u:s3cret@api/v1/', x", "base_url='https://u:***@api/v1/', x"),
        ("mysql://u:s3cret@h/db and postgres:s3cret@h2/db", "mysql://u:***@h/db and postgres:***@h2/db"),
        # Left as they are: no password before a host.
        ("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries", None),
        ("postgresql+psycopg2://postgres@127.0.0.1:5432/shop", None),
        ("error: sent to ops@example.com at 10:30", None),
        # A path ends a web URL's user-info: an address in a query string is no password (found by review).
        ("GET http://127.0.0.1:8765/rates?contact=ops@example.com failed", None),
        # A database URL's password runs to the last `@`, as SQLAlchemy reads it: `/`, `?` and `#` unescaped.
        ("postgresql+psycopg2://u:ab/cd@h:5432/db", "postgresql+psycopg2://u:***@h:5432/db"),
        (
            "postgresql://u:ab?cd@h/db and postgresql://u:ab#cd@h/db",
            "postgresql://u:***@h/db and postgresql://u:***@h/db",
        ),
        ("PGPASSWORD=s3cret psql", "PGPASSWORD=*** psql"),
        ("postgresql+psycopg2://user:@h/db", None),
        # libpq's keywords and JSON: no URL, the password all the same (found by review).
        (
            "cannot use host=db user=shop password=s3cret dbname=shop",
            "cannot use host=db user=shop password=*** dbname=shop",
        ),
        ('{"password": "s3cret", "host": "db"}', '{"password": ***, "host": "db"}'),
    ],
)
def test_messages_and_logs_mask_any_password_before_a_host(text, shown):
    from ingestion.settings import masked_passwords  # new with the fix: the other tests run without it

    assert masked_passwords(text) == (text if shown is None else shown)


def test_masking_a_long_line_without_spaces_takes_linear_time():
    """Compact JSON of 218 KB with many colons and no `@` took 40 s: the pattern backtracked over the whole line
    from every colon (found by review)."""
    from ingestion.settings import masked_passwords

    for line in ('{"a":1,' * 30_000, "a" * 100_000, "password=" * 5_000, "a@" * 50_000 + ":b"):
        started = time.perf_counter()
        masked_passwords(line)
        assert time.perf_counter() - started < 1, line[:20]


@pytest.mark.usefixtures("harbor_cli_env")
def test_a_sqlite_url_naming_no_file_is_a_wrong_setting_and_creates_nothing(settings, monkeypatch, capsys):
    mistyped = settings.data_dir / "shpo.sqlite"
    monkeypatch.setenv("SOURCES__SHOP__CREDENTIALS", f"sqlite:///{mistyped}")
    assert main(["ingest", "shop"]) == 2
    assert f"no SQLite database at {mistyped}" in capsys.readouterr().err
    assert not mistyped.exists()


@pytest.mark.parametrize(
    ("ddl", "said"),
    [
        (
            'create table "Orders" (id int primary key, updated_at timestamptz); '
            "create table orders (id int primary key, updated_at timestamptz)",
            "tables 'Orders' and 'orders' would both load into raw table 'orders'",
        ),
        (
            'create table widgets (id int primary key, "OrderId" int, order_id int, updated_at timestamptz)',
            "table 'widgets' columns 'OrderId' and 'order_id' would both load into raw column 'order_id'",
        ),
        (
            "create table widgets (id int primary key, _extracted_at timestamptz, updated_at timestamptz)",
            "table 'widgets' column '_extracted_at' would load into raw column '_extracted_at', which Harbor and dlt",
        ),
    ],
)
def test_source_names_raw_would_merge_or_overwrite_are_refused(postgres_url, ddl, said):
    """Both tables' rows went into one raw table (the second's replacing the first's by key), two columns into
    one, and a column named like a metadata column was overwritten: all silently."""
    from ingestion.sources.shop import SourceConfigError, shop_source

    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(ddl))
    engine.dispose()
    with pytest.raises(SourceConfigError, match=re.escape(said)):
        shop_source(credentials=postgres_url, table_names=["*"])


def test_rows_of_a_table_raw_names_otherwise_are_counted():
    """The closing summary read 0 loaded for `"MixedCase"`: dlt counts its rows under `mixed_case`."""
    from ingestion.pipeline import _table_counts
    from ingestion.sources.quarantine import Tally

    counts = _table_counts(["MixedCase", "table with spaces"], {"mixed_case": 3, "table_with_spaces": 2}, Tally())
    assert (counts["MixedCase"].loaded, counts["MixedCase"].extracted) == (3, 3)
    assert counts["table with spaces"].loaded == 2
