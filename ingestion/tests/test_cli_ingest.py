"""`harbor ingest`: all sources, closing summary, JSON logs carrying one run id, exit codes on failure."""

from __future__ import annotations

import json

import pytest

from ingestion.cli import EXIT_SOURCE_UNAVAILABLE, main
from ingestion.demo import shop


@pytest.fixture
def harbor_env(settings, monkeypatch):
    monkeypatch.setenv("HARBOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    monkeypatch.delenv("SOURCES__SHOP__CREDENTIALS", raising=False)
    monkeypatch.delenv("SOURCES__FX__BASE_URL", raising=False)
    monkeypatch.delenv("HARBOR_RUN_ID", raising=False)
    assert main(["demo", "create", "--scale", "0.2"]) == 0
    return settings


def test_ingest_all_sources_prints_a_summary_and_json_logs_with_one_run_id(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("HARBOR_RUN_ID", "run-test-1")
    assert main(["ingest", "--json-logs"]) == 0
    out, err = capsys.readouterr()
    assert "ingest run run-test-1" in out
    for table in ("shop.orders", "events.events", "fx.exchange_rates"):
        assert table in out
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and {line["run_id"] for line in lines} == {"run-test-1"}
    finished = {(line["source"], line["table"]): line for line in lines if "table" in line}
    events = finished[("events", "events")]
    assert events["quarantined"] == 2 and events["extracted"] == events["loaded"] + events["quarantined"]
    assert finished[("shop", "orders")]["loaded"] == 60


def test_an_unreachable_source_exits_non_zero_naming_it_and_others_still_load(harbor_env, capsys, monkeypatch):
    monkeypatch.setenv("SOURCES__FX__BASE_URL", "http://127.0.0.1:9/v1/")  # nothing listens on port 9
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    assert main(["ingest", "events", "fx"]) == EXIT_SOURCE_UNAVAILABLE
    out, err = capsys.readouterr()
    assert "events.events" in out
    assert "source 'fx' is unavailable" in err


def test_unknown_sources_are_refused(harbor_env, capsys):
    assert main(["ingest", "nope"]) == 2
    assert "unknown source(s) nope" in capsys.readouterr().err


def test_demo_advance_writes_an_event_file_per_tick(harbor_env):
    assert main(["demo", "advance", "--ticks", "2"]) == 0
    names = sorted(p.name for p in (harbor_env.data_dir / "events").iterdir())
    assert names == ["events_00000.jsonl", "events_00001.jsonl", "events_00002.jsonl"]
    assert shop.read_clock(shop.engine_for(harbor_env.shop_url)).tick == 2
