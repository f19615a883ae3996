"""The fx source: dlt rest_api against the local demo API, incremental merge, retries on injected faults."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
import requests

from ingestion.cli import EXIT_BAD_CONFIG, EXIT_LOAD_FAILED, EXIT_SOURCE_UNAVAILABLE, ingest_sources
from ingestion.demo.fx_api import FxApi, rates_as_of
from ingestion.pipeline import PendingLoadFailed, SourceUnavailable, ingest_fx
from ingestion.sources.http import RetryingSession, RetryPolicy
from ingestion.tests.warehouses import FX_STAGING


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")


@pytest.fixture
def api():
    with FxApi(seed=3, tick=0) as server:
        server.hang_seconds = 1.5
        yield server


def warehouse_rates(settings) -> dict[tuple[str, str], Decimal]:
    """Raw's rates by key; a key held twice (appended, not merged) fails here rather than collapsing."""
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = conn.execute("select currency_code, rate_date, usd_per_unit from raw_fx.exchange_rates").fetchall()
    rates = {(c, d.isoformat()): Decimal(v).normalize() for c, d, v in rows}
    assert len(rates) == len(rows), "a rate is in raw more than once"
    return rates


def source_rates(seed: int, tick: int) -> dict[tuple[str, str], Decimal]:
    return {
        (r["currency_code"], r["rate_date"]): Decimal(r["usd_per_unit"]).normalize()
        for r in rates_as_of(seed, tick)
        if r["rate_date"] != "not-a-date"
    }


def test_incremental_merge_converges_to_the_api_and_quarantines_bad_records(settings, api):
    first = ingest_fx(settings, base_url=api.base_url, page_size=100)
    assert first.tables["exchange_rates"].loaded == len(source_rates(3, 0))
    assert warehouse_rates(settings) == source_rates(3, 0)

    api.tick = 2
    api.log.clear()
    second = ingest_fx(settings, base_url=api.base_url, page_size=100)
    # Only rates updated since the last cursor were asked for, and revised rates replaced the old ones.
    assert all("updated_since=2023-12-30T06" in path for path, _ in api.log), api.log  # the cursor less the lag
    counts = second.tables["exchange_rates"]
    assert counts.quarantined == 2 and counts.extracted == counts.loaded + counts.quarantined
    assert counts.loaded < first.tables["exchange_rates"].loaded
    assert warehouse_rates(settings) == source_rates(3, 2)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        dead = conn.execute("select reason, origin, payload, _extracted_at from raw_fx._dead_letters").fetchall()
    assert len(dead) == 2
    assert all(
        "rate_date" in reason and "page http://" in origin and "N/A" in payload for reason, origin, payload, _ in dead
    )

    # The next run asks again for the lag window before the cursor (two days): nothing new, nothing changed.
    api.log.clear()
    again = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
    assert all("updated_since=2024-01-01T06" in path for path, _ in api.log), api.log
    assert warehouse_rates(settings) == source_rates(3, 2)
    # The window's two bad records are quarantined again: the same dead letters, not two more.
    assert again.quarantined == 2
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw_fx._dead_letters").fetchone() == (2,)


class FxApiWith(FxApi):
    """The demo API serving some rows of the test's besides its own, on the first page (after its own, or before
    them with `first`)."""

    def __init__(self, extra: list[dict], *, first: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra = extra
        self.first = first

    def page(self, updated_since: str | None, page: int, page_size: int) -> dict:
        served = super().page(updated_since, page, page_size)
        if page == 1:
            served["data"] = [*self.extra, *served["data"]] if self.first else [*served["data"], *self.extra]
        return served


def test_a_future_cursor_is_held_back_and_the_later_of_two_versions_wins(settings):
    """A rate dated 2099 would move the cursor there and every real revision after it would be skipped; two
    versions of one rate in one run must leave the later one, whichever the API sends first."""

    def rate(code: str, usd: str, updated_at: str) -> dict:
        return {"currency_code": code, "rate_date": "2024-01-01", "usd_per_unit": usd, "updated_at": updated_at}

    extra = [
        rate("ZZZ", "1.5", "2099-01-01T00:00:00+00:00"),
        rate("AAA", "2.0", "2024-01-01T05:00:00+00:00"),
        rate("AAA", "1.0", "2024-01-01T04:00:00+00:00"),
        rate("BBB", "3.0", "2024-01-01T04:00:00+00:00"),
        rate("BBB", "4.0", "2024-01-01T05:00:00+00:00"),
    ]
    with FxApiWith(extra, seed=3, tick=0) as api:
        counts = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
        assert counts.quarantined == 1
        api.log.clear()
        ingest_fx(settings, base_url=api.base_url)
        # The cursor stayed on the real rates (less the lag), not 2099 (nor 2099 less the lag).
        assert api.log and all("updated_since=2023-12-30T06" in path for path, _ in api.log), api.log
    rates = warehouse_rates(settings)
    assert rates[("AAA", "2024-01-01")] == Decimal("2") and rates[("BBB", "2024-01-01")] == Decimal("4")
    assert ("ZZZ", "2024-01-01") not in rates
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        dead = conn.execute("select reason from raw_fx._dead_letters").fetchall()
    # Served again by the second run and held back again: still one dead letter.
    assert len(dead) == 1 and "more than 1 day after the run started" in dead[0][0]


def test_a_rate_ahead_by_more_than_a_lag_under_a_day_is_held_back(settings):
    """With `lag_seconds` under a day, a rate stamped hours ahead moved the cursor past the run's start, and the
    revisions of those hours were skipped for good."""
    ahead = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    extra = [{"currency_code": "ZZZ", "rate_date": "2024-01-01", "usd_per_unit": "1.5", "updated_at": ahead}]
    with FxApiWith(extra, seed=3, tick=0) as api:
        counts = ingest_fx(settings, base_url=api.base_url, lag_seconds=3600).tables["exchange_rates"]
    assert counts.quarantined == 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (reason,) = conn.execute("select reason from raw_fx._dead_letters").fetchone()
    assert "is more than 3600 s (the lag, lag_seconds) after the run started" in reason


def test_a_bad_record_first_on_a_page_is_a_dead_letter_once_a_cursor_exists(settings):
    """dlt's lagged cursor step asserted on a run's first item holding no cursor, a dead letter: every run after
    the first failed with a bare AssertionError while the API served the bad record first."""
    bad = {"currency_code": "GBP", "rate_date": "2024-01-01", "usd_per_unit": "abc"}
    with FxApiWith([], first=True, seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url)
        api.extra = [{**bad, "updated_at": "2024-01-01T04:00:00+00:00"}]
        api.tick = 1
        counts = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
    assert counts.loaded > 0
    assert warehouse_rates(settings) == source_rates(seed=3, tick=1)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (dead,) = conn.execute("select count(*) from raw_fx._dead_letters where payload like '%\"abc\"%'").fetchone()
    assert dead == 1


def test_a_full_refresh_reloads_every_rate(settings, api):
    """The stored cursor was read before the full refresh dropped the state: the run asked for the lag window's
    rates alone and left raw with 11 of 273, and a full refresh of the build priced orders with null rates."""
    ingest_fx(settings, base_url=api.base_url)
    api.tick = 2
    ingest_fx(settings, base_url=api.base_url)
    api.log.clear()
    ingest_fx(settings, base_url=api.base_url, full_refresh=True)
    assert api.log and all("updated_since=1970-01-01" in path for path, _ in api.log), api.log
    assert warehouse_rates(settings) == source_rates(3, 2)


def test_initial_value_starts_the_first_run_only(settings, monkeypatch):
    """With dlt's incremental, one run with another `initial_value` moved the stored cursor there for good, and
    the rates revised before it were never asked for again."""
    with FxApi(seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url)
        api.log.clear()
        ingest_fx(settings, base_url=api.base_url, initial_value="2025-06-01T00:00:00+00:00")
        ingest_fx(settings, base_url=api.base_url)
    asked = [path for path, _ in api.log]
    assert asked and all("updated_since=2023-12-30T06" in path for path in asked), asked


def test_nan_infinity_and_nul_characters_from_the_api_are_dead_letters_naming_the_field(settings):
    """JSON has no NaN or Infinity: one failed the whole page (requests' parser refuses them), naming no record.
    Warehouses strip NUL from text: a currency code holding one loaded as another code."""
    good = {"currency_code": "AAA", "rate_date": "2024-01-01", "usd_per_unit": "2.0"}
    stamp = {"updated_at": "2024-01-01T04:00:00+00:00"}
    extra = [
        {**good, **stamp, "currency_code": "B\x00B"},
        {**good, **stamp, "currency_code": "CCC", "bid": float("nan")},
        {**good, **stamp, "currency_code": "DDD", "spread": {"ask": float("-inf")}},
        {**good, **stamp, "currency_code": "EEE", "note\x00": "x"},
        {**good, **stamp, "bid": 1.5},
    ]
    with FxApiWith(extra, seed=3, tick=0) as api:
        api.content_type = "text/plain; charset=utf-8"  # not said to be JSON: dlt parses it all the same
        counts = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
    assert counts.quarantined == 4
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        reasons = sorted(r for (r,) in conn.execute("select reason from raw_fx._dead_letters").fetchall())
        payloads = [p for (p,) in conn.execute("select payload from raw_fx._dead_letters").fetchall()]
        loaded = conn.execute(
            "select currency_code, bid from raw_fx.exchange_rates where rate_date = '2024-01-01' and bid is not null"
        ).fetchall()
    assert reasons == [
        "exchange_rates.bid: NaN is not a JSON value (JSON has no NaN or Infinity)",
        "exchange_rates.currency_code: text holds a NUL character (\\u0000), which a warehouse column cannot keep",
        "exchange_rates.spread.ask: -Infinity is not a JSON value (JSON has no NaN or Infinity)",
        "exchange_rates: field name 'note\\x00' holds a NUL character (\\u0000)",
    ], reasons
    assert loaded == [("AAA", 1.5)]
    # As the API sent them: bare, not the strings "NaN" and "-Infinity".
    assert any('"bid": NaN' in p for p in payloads) and any('"ask": -Infinity' in p for p in payloads), payloads


def test_rates_as_odd_text_and_records_dlt_could_not_write_are_dead_letters(settings):
    """`1_091` and Arabic-Indic digits loaded as 1091 and 7 (Python's Decimal reads both); a blank field name
    failed the whole source, at every run, the good rates of its page with it."""
    good = {"currency_code": "AAA", "rate_date": "2024-01-01", "usd_per_unit": "2.0"}
    stamp = {"updated_at": "2024-01-01T04:00:00+00:00"}
    extra = [
        {**good, **stamp, "currency_code": "BBB", "usd_per_unit": "1_091"},
        {**good, **stamp, "currency_code": "CCC", "usd_per_unit": "\u0660\u0660\u0660\u0667"},
        {**good, **stamp, "currency_code": "DDD", " ": "x"},
        {**good, **stamp, "currency_code": "EEE", "published": "0001-01-01T00:00:00+05:00"},
        {**good, **stamp, "usd_per_unit": " 1.5e0 "},
    ]
    with FxApiWith(extra, seed=3, tick=0) as api:
        counts = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
    assert counts.quarantined == 4
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        reasons = sorted(r for (r,) in conn.execute("select reason from raw_fx._dead_letters").fetchall())
        loaded = conn.execute("select currency_code from raw_fx.exchange_rates where rate_date = '2024-01-01'")
        codes = [code for (code,) in loaded.fetchall()]
    assert reasons == [
        "exchange_rates.published: timestamp '0001-01-01T00:00:00+05:00' is outside the range a warehouse can hold",
        "exchange_rates.usd_per_unit: expected a number, got '1_091'",
        "exchange_rates.usd_per_unit: expected a number, got '\u0660\u0660\u0660\u0667'",
        "exchange_rates: field name ' ' is empty or blank, which no column can be",
    ], reasons
    assert codes == ["AAA"]


def test_retries_429_500_timeouts_dropped_and_truncated_pages(settings, api):
    api.tick = 1
    api.faults.extend(["429", "500", "timeout"])
    started = time.monotonic()
    ingest_fx(settings, base_url=api.base_url, page_size=100)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    api.tick = 3
    api.faults.extend(["drop", "truncate", "503"])
    ingest_fx(settings, base_url=api.base_url, page_size=100)
    faults = [status for _, status in api.log if status != 200]
    assert faults == ["429", "500", "timeout", "drop", "truncate", "503"]
    assert warehouse_rates(settings) == source_rates(3, 3)


def test_an_api_that_stays_down_fails_clearly_and_leaves_state_unchanged(settings, api):
    ingest_fx(settings, base_url=api.base_url)
    before = warehouse_rates(settings)
    api.tick = 2
    api.faults.extend(["503"] * 4)  # as many as the attempts allowed
    with pytest.raises(SourceUnavailable, match=r"source 'fx' is unavailable: HTTP 503"):
        ingest_fx(settings, base_url=api.base_url)
    assert warehouse_rates(settings) == before
    # Pages cut short on every attempt are an outage too (exit code 3), not a failed load.
    api.faults.extend(["truncate"] * 4)
    with pytest.raises(SourceUnavailable, match=r"source 'fx' is unavailable"):
        ingest_fx(settings, base_url=api.base_url)
    assert warehouse_rates(settings) == before
    # After recovery the next run catches up exactly.
    ingest_fx(settings, base_url=api.base_url)
    assert warehouse_rates(settings) == source_rates(3, 2)


@pytest.mark.parametrize("json_logs", [False, True], ids=["text-logs", "json-logs"])
def test_an_api_url_s_password_is_in_no_retry_message_error_or_record(settings, api, monkeypatch, capsys, json_logs):
    """A base URL with `user:password@` was quoted whole by every retry warning ("retrying http://user:s3cret@..."),
    and by the closing error and the failed run's record, which the report and the alert show (found by review)."""
    harbor_log = logging.getLogger("harbor")  # `ingest_sources` points it at this test's stderr: restored after
    monkeypatch.setattr(harbor_log, "handlers", list(harbor_log.handlers))
    monkeypatch.setattr(harbor_log, "propagate", harbor_log.propagate)
    monkeypatch.setenv("HARBOR_RUN_ID", "run-with-a-password")
    monkeypatch.setenv("SOURCES__FX__BASE_URL", api.base_url.replace("http://", "http://user:s3cret@"))
    api.faults.extend(["503"] * 4)  # as many as the attempts allowed
    assert ingest_sources(settings, ["fx"], json_logs=json_logs) == EXIT_SOURCE_UNAVAILABLE
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err
    assert err.count("retrying http://user:***@127.0.0.1:") == 3
    assert "is unavailable: HTTP 503 from http://user:***@127.0.0.1:" in err
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (error,) = conn.execute(
            "select error from observability.ingestion_runs where run_id = 'run-with-a-password'"
        ).fetchone()
    assert "HTTP 503 from http://user:***@127.0.0.1:" in error and "s3cret" not in error


def test_a_package_that_never_loads_is_named_and_a_full_refresh_drops_it(settings, api, monkeypatch):
    """A package that fails to load is retried first by every later run, so it stopped the source for good, even
    with --full-refresh. Made here with a rate beyond DECIMAL(38, 9) that validation is told to let through."""
    import ingestion.demo.fx_api as fx_api
    import ingestion.sources.quarantine as quarantine

    def with_a_huge_rate(*args, **kwargs):
        rows = rates_as_of(*args, **kwargs)
        return [*rows, {**rows[0], "rate_date": "2023-12-01", "usd_per_unit": "1e40"}]

    with monkeypatch.context() as patched:
        patched.setattr(quarantine, "DECIMAL_INTEGER_DIGITS", 100)
        patched.setattr(fx_api, "rates_as_of", with_a_huge_rate)
        with pytest.raises(Exception, match=r"(?i)decimal"):  # DuckDB refuses it, or pyarrow before it
            ingest_fx(settings, base_url=api.base_url)

    with pytest.raises(PendingLoadFailed, match=r"do not load: .*--full-refresh` drops them"):
        ingest_fx(settings, base_url=api.base_url)
    result = ingest_fx(settings, base_url=api.base_url, full_refresh=True)
    assert result.resumed_load_ids == []
    assert warehouse_rates(settings) == source_rates(3, 0)
    ingest_fx(settings, base_url=api.base_url)  # the lag window again: merged, nothing doubled
    assert warehouse_rates(settings) == source_rates(3, 0)


def test_backoff_is_exponential_with_jitter_and_bounded_and_retry_after_wins():
    policy = RetryPolicy(max_attempts=5, backoff_factor=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)):
        delays = {policy.delay(attempt, None, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "3"
    assert policy.delay(1, response, rng) == 3.0
    response.headers["Retry-After"] = "600"
    assert policy.delay(1, response, rng) == 8.0
    response.headers["Retry-After"] = "1.5"
    assert policy.delay(1, response, rng) == 1.5
    in_five_seconds = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    response.headers["Retry-After"] = in_five_seconds  # whole seconds: 4 to 5 s from now
    assert 2.0 < policy.delay(1, response, rng) <= 5.0
    for unreadable in ("soon", "-1", "nan"):  # the backoff instead, not an error that fails the source
        response.headers["Retry-After"] = unreadable
        assert 0.5 <= policy.delay(1, response, rng) <= 1.0


def test_a_retry_warning_names_the_url_without_its_password():
    """Whatever handler shows it (not only Harbor's own, which masks too): the warning quoted the request's URL."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    http_log = logging.getLogger("harbor.ingestion.http")
    http_log.addHandler(handler)
    try:
        session = RetryingSession(RetryPolicy(max_attempts=2, backoff_factor=0.01, timeout=1.0))
        with pytest.raises(requests.ConnectionError):
            session.get("http://user:s3cret@127.0.0.1:9/v1/rates")  # nothing listens on port 9
    finally:
        http_log.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert len(messages) == 1 and messages[0].startswith("retrying http://user:***@127.0.0.1:9/v1/rates in ")
    assert "s3cret" not in messages[0]


@pytest.mark.parametrize(
    ("base_url", "endpoint_path", "said"),
    [
        ("{api}/v2", "rates", "the API answered 404 Not Found for http://127.0.0.1:{port}/v1//v2/rates;"),
        ("{api}", "ratse", "the API answered 404 Not Found for http://127.0.0.1:{port}/v1/ratse;"),
        ("not-a-url", "rates", "the API endpoint 'not-a-url/rates' (base_url='not-a-url', endpoint_path='rates') is"),
        ("http://", "rates", "the API endpoint 'http:/rates' (base_url='http://', endpoint_path='rates') is not a val"),
        (
            "http://user:s3cret@/v1/",
            "rates",
            "the API endpoint 'http://user:***@/v1/rates' (base_url='http://user:***@/v1/', endpoint_path='rates')",
        ),
    ],
    ids=["base-url-path", "endpoint-path-typo", "not-a-url", "no-host", "no-host-with-a-password"],
)
def test_a_wrong_api_url_is_a_wrong_setting_naming_it_not_a_failed_load(
    settings, api, monkeypatch, capsys, base_url, endpoint_path, said
):
    """A base URL with a wrong path, a mistyped endpoint path (404) or no URL at all exited 4, a failed load."""
    harbor_log = logging.getLogger("harbor")  # `ingest_sources` points it at this test's stderr: restored after
    monkeypatch.setattr(harbor_log, "handlers", list(harbor_log.handlers))
    monkeypatch.setattr(harbor_log, "propagate", harbor_log.propagate)
    port = api.base_url.split(":")[2].split("/")[0]
    monkeypatch.setenv("SOURCES__FX__BASE_URL", base_url.format(api=api.base_url))
    monkeypatch.setenv("SOURCES__FX__ENDPOINT_PATH", endpoint_path)
    assert ingest_sources(settings, ["fx"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert f"source 'fx' cannot run, a setting is wrong: fx: {said.format(port=port)}" in err
    assert "s3cret" not in err
    assert "check sources.fx.base_url (SOURCES__FX__BASE_URL) and sources.fx.endpoint_path" in err
    # The right URL loads.
    monkeypatch.setenv("SOURCES__FX__BASE_URL", api.base_url)
    monkeypatch.setenv("SOURCES__FX__ENDPOINT_PATH", "rates")
    assert ingest_sources(settings, ["fx"]) == 0
    assert warehouse_rates(settings) == source_rates(3, 0)


def test_a_404_after_the_first_page_is_a_failed_load_not_a_wrong_setting(settings, api, monkeypatch, capsys):
    """The settings found page 1; a page gone while paging is the API's failure (exit 4), the state unchanged."""
    harbor_log = logging.getLogger("harbor")
    monkeypatch.setattr(harbor_log, "handlers", list(harbor_log.handlers))
    monkeypatch.setattr(harbor_log, "propagate", harbor_log.propagate)
    monkeypatch.setenv("SOURCES__FX__BASE_URL", api.base_url)
    monkeypatch.setenv("SOURCES__FX__PAGE_SIZE", "10")
    api.faults.extend(["", "404"])
    assert ingest_sources(settings, ["fx"]) == EXIT_LOAD_FAILED
    err = capsys.readouterr().err
    assert "404" in err and "a setting is wrong" not in err
    assert [status for _, status in api.log[:2]] == [200, "404"]


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (b"<html><body>Down for maintenance</body></html>", "text/html", "text/html, not JSON: '<html><body>Down"),
        ({"items": [], "total_pages": 1}, "application/json", "an object with items, total_pages, not a page with"),
        ({"data": None, "total_pages": 1}, "application/json", "an object with data, total_pages, not a page with"),
    ],
)
def test_a_page_that_holds_no_rates_fails_the_load_saying_what_came(
    settings, monkeypatch, capsys, body, content_type, said
):
    """An HTML page sent with 200 failed as "Expecting value: line 1 column 1 (char 0)"; a body without the `data`
    list (the API renamed it) loaded nothing and exited 0, a quiet day to look at."""
    harbor_log = logging.getLogger("harbor")
    monkeypatch.setattr(harbor_log, "handlers", list(harbor_log.handlers))
    monkeypatch.setattr(harbor_log, "propagate", harbor_log.propagate)

    class ChangedApi(FxApi):
        def page(self, updated_since: str | None, page: int, page_size: int) -> dict | bytes:
            return body

    with ChangedApi(seed=3, tick=0) as api:
        api.content_type = content_type
        monkeypatch.setenv("SOURCES__FX__BASE_URL", api.base_url)
        assert ingest_sources(settings, ["fx"]) == EXIT_LOAD_FAILED
    err = capsys.readouterr().err
    assert said in err and f"{api.base_url.rstrip('/')}/rates" in err, err


def test_one_rate_sent_in_two_cases_in_one_load_stages_the_same_rate_in_every_build(settings):
    """`eur` and `EUR` are two keys in raw and one in staging: with the same load and `updated_at` the dedup
    picked either, so an incremental build and a full refresh could disagree. The higher rate wins the tie."""
    from ingestion.transform import run_dbt

    def rate(code: str, usd: str) -> dict:
        return {
            "currency_code": code,
            "rate_date": "2024-01-01",
            "usd_per_unit": usd,
            "updated_at": "2024-01-01T04:00:00+00:00",
        }

    # The higher rate sent first in lower case, then sent second in upper case: neither order nor case decides.
    extra = [rate("aaa", "1.3"), rate("AAA", "1.1"), rate("bbb", "1.1"), rate("BBB", "1.3")]
    with FxApiWith(extra, seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url)
    staged = "select exchange_rate_id, usd_per_unit from staging.stg_fx__exchange_rates where currency_code in ('AAA', 'BBB') order by 1"
    for build in (["--full-refresh"], []):
        run_dbt(settings, "build", *FX_STAGING, *build)
        with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
            rows = conn.execute(staged).fetchall()
        assert rows == [("AAA:2024-01-01", Decimal("1.3")), ("BBB:2024-01-01", Decimal("1.3"))], build


def test_a_rate_keeps_the_9_decimals_raw_holds_through_staging(settings):
    """Staging cast rates to 6 decimals: one rupiah (0.000063512 US dollars) became 0.000064, and every price
    converted with it 0.8% too high."""
    from ingestion.transform import run_dbt

    rate = {"currency_code": "IDR", "rate_date": "2024-01-01", "usd_per_unit": "0.000063512"}
    with FxApiWith([{**rate, "updated_at": "2024-01-01T04:00:00+00:00"}], seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url)
    run_dbt(settings, "build", *FX_STAGING)
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        staged = conn.execute(
            "select usd_per_unit from staging.stg_fx__exchange_rates where exchange_rate_id = 'IDR:2024-01-01'"
        ).fetchall()
    assert staged == [(Decimal("0.000063512"),)]


def test_a_lone_surrogate_from_the_api_is_a_dead_letter_naming_the_field(settings):
    """It failed the whole source at every run ("str is not valid UTF-8: surrogates not allowed")."""
    extra = [
        {
            "currency_code": "FFF",
            "rate_date": "2024-01-01",
            "usd_per_unit": "2.0",
            "updated_at": "2024-01-01T04:00:00+00:00",
            "note": "x\ud800",
        }
    ]
    with FxApiWith(extra, seed=3, tick=0) as api:
        counts = ingest_fx(settings, base_url=api.base_url).tables["exchange_rates"]
    assert counts.quarantined == 1 and counts.loaded > 0
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        reasons = conn.execute("select reason from raw_fx._dead_letters").fetchall()
    assert reasons == [("exchange_rates.note: text holds a lone surrogate (\\ud800), which is not UTF-8",)]


def test_a_rate_of_zero_or_below_fails_the_build_before_it_prices_an_order(settings):
    """A negative EUR rate turned EUR revenue negative in `fct_orders` and `agg_daily_revenue`, and no test failed."""
    from ingestion.transform import run_dbt

    stamp = {"rate_date": "2023-10-01", "updated_at": "2024-01-01T04:00:00+00:00"}
    extra = [
        {**stamp, "currency_code": "EUR", "usd_per_unit": "-1.09"},
        {**stamp, "currency_code": "GBP", "usd_per_unit": "0"},
    ]
    with FxApiWith(extra, seed=3, tick=0) as api:
        ingest_fx(settings, base_url=api.base_url)
    target = settings.warehouse.parent / "target_bad_rates"
    assert run_dbt(settings, "build", *FX_STAGING, "--target-path", str(target), check=False) != 0
    results = json.loads((target / "run_results.json").read_text())["results"]
    failed = [(r["unique_id"], r["failures"]) for r in results if r["status"] == "fail"]
    assert len(failed) == 1 and "expect_column_values_to_be_between" in failed[0][0], failed
    assert "usd_per_unit" in failed[0][0] and failed[0][1] == 2, failed
