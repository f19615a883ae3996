"""The events source: JSON-lines files from a folder, only new files, duplicates kept in raw, bad lines quarantined."""

from __future__ import annotations

import codecs
import json
import logging
import os
from datetime import UTC, datetime

import duckdb
import pytest
from dlt.common.storages.fsspec_filesystem import FileItemDict

from ingestion.cli import EXIT_BAD_CONFIG, ingest_sources
from ingestion.demo.events import event_file_name, events_dir, write_events
from ingestion.pipeline import ingest_events
from ingestion.settings import ConfigError, Settings
from ingestion.sources.events import EVENT_SPEC
from ingestion.sources.fx import RATE_SPEC
from ingestion.sources.quarantine import InvalidRecord


def query(settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_only_new_files_are_read_and_duplicates_stay_in_raw(settings):
    first_file = write_events(settings.data_dir, seed=5, tick=0, scale=0.3)
    first = ingest_events(settings)
    counts = first.tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (first_file.events + 2, first_file.events, 2)

    second_file = write_events(settings.data_dir, seed=5, tick=1, scale=0.3)
    second = ingest_events(settings)
    # Only the new file is read.
    assert second.tables["events"].loaded == second_file.events
    assert second.tables["events"].extracted == second.tables["events"].loaded + second.tables["events"].quarantined
    assert ingest_events(settings).tables["events"].extracted == 0

    ((rows, distinct, files),) = query(
        settings, "select count(*), count(distinct event_id), count(distinct _file_name) from raw_events.events"
    )
    assert rows == first_file.events + second_file.events
    assert distinct == rows - second_file.duplicates  # the tracker's re-sends are kept for staging to dedup
    assert files == 2
    ((late,),) = query(
        settings,
        "select count(*) from raw_events.events "
        "where _file_name = 'events_00001.jsonl' and event_time < timestamptz '2024-01-01 00:00:00+00'",
    )
    assert late >= second_file.late > 0
    missing = query(
        settings,
        "select count(*) from raw_events.events where _extracted_at is null or _source <> 'events' "
        "or _dlt_load_id is null or _line_number is null",
    )
    assert missing == [(0,)]


def test_bad_lines_go_to_the_dead_letter_table_with_reason_and_origin(settings):
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    good = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "event_id": "e2", "customer_id": "seven"}),  # wrong type
        json.dumps({"event_id": "e3", "event_type": "purchase"}),  # event_time missing
        json.dumps({**good, "event_id": "e4", "event_type": "teleport"}),  # not an allowed value
        json.dumps({**good, "event_id": "e5", "customer_id": 7, "referrer": "newsletter"}),  # a new column
    ]
    (folder / "batch.jsonl").write_text("\n".join(lines) + "\n")
    result = ingest_events(settings)
    counts = result.tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (6, 2, 4)
    dead = query(settings, "select origin, reason, payload from raw_events._dead_letters order by origin")
    assert [d[0] for d in dead] == ["batch.jsonl:2", "batch.jsonl:3", "batch.jsonl:4", "batch.jsonl:5"]
    assert "unparsable JSON" in dead[0][1] and dead[0][2] == "{not json"
    assert "events.customer_id" in dead[1][1] and "integer" in dead[1][1]
    assert "events.event_time" in dead[2][1] and "missing" in dead[2][1]
    assert "teleport" in dead[3][1]
    # Schema drift: the new column simply appears in raw.
    assert query(settings, "select event_id, referrer from raw_events.events order by 1") == [
        ("e1", None),
        ("e5", "newsletter"),
    ]


def test_values_no_warehouse_column_can_hold_are_quarantined_not_loaded(settings):
    """An integer beyond 64 bits (declared or in a new field) or a decimal beyond DECIMAL(38, 9) passed validation
    and then failed the load, and every retry of it, so one record stopped the source for good."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    good = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": "e2", "customer_id": 2**70}),
        json.dumps({**good, "event_id": "e3", "attributes": {"sequence": [1, 2**64]}}),
        json.dumps({**good, "event_id": "e4", "customer_id": 2**63 - 1}),
    ]
    (folder / "batch.jsonl").write_text("\n".join(lines) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (4, 2, 2)
    dead = query(settings, "select origin, reason from raw_events._dead_letters order by origin")
    assert dead == [
        ("batch.jsonl:2", "events.customer_id: integer 1180591620717411303424 is outside the 64-bit range"),
        ("batch.jsonl:3", "events.attributes.sequence.1: integer 18446744073709551616 is outside the 64-bit range"),
    ]
    assert query(settings, "select event_id from raw_events.events order by 1") == [("e1",), ("e4",)]

    rate = {"currency_code": "EUR", "rate_date": "2024-01-01", "updated_at": "2024-01-02T06:00:00Z"}
    assert RATE_SPEC.validate({**rate, "usd_per_unit": "1" + "0" * 28})["usd_per_unit"] == 10**28
    with pytest.raises(InvalidRecord, match="more than 29 digits before the point"):
        RATE_SPEC.validate({**rate, "usd_per_unit": "1e40"})


def test_lines_that_broke_the_reader_are_quarantined_and_the_next_file_loads(settings):
    """A timestamp at the edge of the calendar (OverflowError), JSON nested past Python's recursion limit
    (RecursionError) and two fields loading into one column used to fail the whole source, on every run, so no
    later file loaded; a field named like a declared one in another case replaced the validated value."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    good = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": "e2", "event_time": "9999-12-31T23:00:00-05:00"}),
        '{"event_id": "e3", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({**good, "event_id": "e4", "eventId": "OTHER"}),
        json.dumps({**good, "event_id": "e5", "eventTime": "not a time"}),
        json.dumps({"eventId": "e6", "eventTime": "2024-01-01T11:00:00Z", "eventType": "page_view"}),
    ]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (6, 2, 4)
    dead = query(settings, "select origin, reason from raw_events._dead_letters order by origin")
    assert [origin for origin, _ in dead] == ["a.jsonl:2", "a.jsonl:3", "a.jsonl:4", "a.jsonl:5"]
    assert "outside the range" in dead[0][1] and "nested too deeply" in dead[1][1]
    assert "'event_id' and 'eventId' would both load into column 'event_id'" in dead[2][1]
    assert "'event_time' and 'eventTime'" in dead[3][1]
    # Fields in another case load into the declared columns, validated.
    assert query(settings, "select event_id, event_type from raw_events.events order by 1") == [
        ("e1", "page_view"),
        ("e6", "page_view"),
    ]
    (folder / "b.jsonl").write_text(json.dumps({**good, "event_id": "e7"}) + "\n")
    assert ingest_events(settings).tables["events"].loaded == 1


def test_lines_dlt_could_not_write_are_quarantined_naming_the_field(settings):
    """Each of these failed dlt's extract or normalize, naming no file or line, and the package holding it failed
    every later run, fixed file or not: a timestamp no UTC timestamp holds in a field dlt types as a timestamp,
    values nested deeper than dlt's JSON writer goes, and a blank field name (a dead letter without a reason). A
    number too large for a float loaded as null, without a word."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    good = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    nested: dict = {"leaf": 1}
    for _ in range(300):
        nested = {"a": nested}
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": "e2", "seen_at": "9999-12-31T23:00:00-05:00"}),
        json.dumps({**good, "event_id": "e3", "props": nested}),
        json.dumps({**good, "event_id": "e4", "": "x"}),
        json.dumps({**good, "event_id": "e5"})[:-1] + ', "n": 1e400}',
        json.dumps({**good, "event_id": "e6"})[:-1] + ', "m": {"k": -1e400}}',
        json.dumps({**good, "event_id": "e7", "seen_at": "2024-01-01T00:00:00-05:00", "shallow": {"a": {"b": 1}}}),
        # Text in a declared text field and in a nested value (JSON) is not read as a timestamp: it loads.
        json.dumps(
            {
                **good,
                "event_id": "e8",
                "anonymous_id": "9999-12-31T23:00:00-05:00",
                "props": {"valid_from": "0001-01-01T00:00:00+01:00"},
            }
        ),
    ]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.loaded, counts.quarantined) == (3, 5)
    assert query(settings, "select origin, reason from raw_events._dead_letters order by origin") == [
        (
            "a.jsonl:2",
            "events.seen_at: timestamp '9999-12-31T23:00:00-05:00' is outside the range a warehouse can hold",
        ),
        (
            "a.jsonl:3",
            "events.props" + ".a" * 199 + ": values nested more than 200 levels deep, which dlt cannot write",
        ),
        ("a.jsonl:4", "events: field name '' is empty or blank, which no column can be"),
        ("a.jsonl:5", "events.n: a number too large for a float (read as inf), which a warehouse column cannot keep"),
        (
            "a.jsonl:6",
            "events.m.k: a number too large for a float (read as -inf), which a warehouse column cannot keep",
        ),
    ]
    assert query(settings, "select event_id from raw_events.events order by 1") == [("e1",), ("e7",), ("e8",)]
    (folder / "b.jsonl").write_text(json.dumps({**good, "event_id": "e9"}) + "\n")
    assert ingest_events(settings).tables["events"].loaded == 1


@pytest.mark.parametrize(
    "sent", ["2024-01-01T10:00:00Z", "2024-01-01t10:00:00z", "2024-01-01 10:00:00+00:00", "2024-01-01T12:00:00+02:00"]
)
def test_an_rfc_3339_event_time_in_either_case_is_valid(sent):
    """RFC 3339 allows a lower-case `t` and `z`: such events went to the dead letters."""
    event = {"event_id": "e1", "event_time": sent, "event_type": "page_view"}
    assert EVENT_SPEC.validate(event)["event_time"] == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_files_in_subfolders_the_glob_leaves_out_are_said_and_a_recursive_glob_reads_them(settings, caplog):
    folder = events_dir(settings.data_dir)
    (folder / "2024-01-01").mkdir(parents=True)
    event = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    (folder / "2024-01-01" / "a.jsonl").write_text(json.dumps(event) + "\n")
    (folder / "b.jsonl").write_text(json.dumps({**event, "event_id": "e2"}) + "\n")
    assert ingest_events(settings).tables["events"].loaded == 1
    assert "1 file(s) matching '*.jsonl' in subfolders of" in caplog.text
    assert "file_glob = '**/*.jsonl'" in caplog.text
    caplog.clear()
    assert ingest_events(settings, file_glob="**/*.jsonl").tables["events"].loaded == 1
    assert "in subfolders" not in caplog.text
    assert query(settings, "select event_id, _file_name from raw_events.events order by 1") == [
        ("e1", "2024-01-01/a.jsonl"),
        ("e2", "b.jsonl"),
    ]


def test_folder_and_glob_are_configuration(settings, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    write_events(landing, seed=1, tick=0, scale=0.2, dirty=False)
    (landing / "events" / event_file_name(0)).rename(landing / "events" / "clicks.json")
    result = ingest_events(settings, bucket_url=str(landing / "events"), file_glob="*.json")
    assert result.tables["events"].loaded > 0 and result.quarantined == 0
    # A relative folder is the project's, whatever the working directory; a missing one is a wrong setting, not
    # a quiet day with no events.
    write_events(landing, seed=1, tick=1, scale=0.2, dirty=False)
    (landing / "events" / event_file_name(1)).rename(landing / "events" / "clicks-2.json")
    relative = Settings(landing, settings.warehouse, settings.data_dir, settings.shop_url)
    monkeypatch.chdir(tmp_path)
    assert ingest_events(relative, bucket_url="events", file_glob="*.json").tables["events"].loaded > 0
    with pytest.raises(ConfigError, match=f"events: no folder {landing / 'evnets'}"):
        ingest_events(relative, bucket_url="evnets")
    assert not (landing / "evnets").exists() and not (tmp_path / "evnets").exists()


def test_full_refresh_reloads_every_file_once(settings):
    write_events(settings.data_dir, seed=2, tick=0, scale=0.2)
    write_events(settings.data_dir, seed=2, tick=1, scale=0.2)
    first = ingest_events(settings)
    again = ingest_events(settings, full_refresh=True)
    assert again.tables["events"].loaded == first.tables["events"].loaded > 0
    ((rows,),) = query(settings, "select count(*) from raw_events.events")
    assert rows == first.tables["events"].loaded


def test_a_file_with_an_older_modification_time_than_those_read_is_still_read(settings):
    """A file moved in from elsewhere keeps its modification time: a cursor on it would skip the file for good."""
    write_events(settings.data_dir, seed=3, tick=0, scale=0.2, dirty=False)
    ingest_events(settings)
    moved_in = write_events(settings.data_dir, seed=3, tick=1, scale=0.2, dirty=False)
    path = events_dir(settings.data_dir) / event_file_name(1)
    os.utime(path, (0, 0))  # 1970, older than every file read so far
    assert ingest_events(settings).tables["events"].loaded == moved_in.events
    assert ingest_events(settings).tables["events"].extracted == 0
    assert query(settings, f"select count(*) from raw_events.events where _file_name = '{path.name}'") == [
        (moved_in.events,)
    ]


def test_a_file_rewritten_under_its_name_replaces_its_lines_and_a_file_listed_again_is_not_duplicated(settings):
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    event = {"event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
    path = folder / "batch.jsonl"
    path.write_text("".join(json.dumps({**event, "event_id": f"e{n}"}) + "\n" for n in range(3)))
    ingest_events(settings)
    path.write_text(json.dumps({**event, "event_id": "e9"}) + "\n")
    os.utime(path, (1e9, 1e9))  # same size or older time: still another version of the file
    assert ingest_events(settings).tables["events"].loaded == 1
    assert query(settings, "select _line_number, event_id from raw_events.events") == [(1, "e9")]

    parked = folder.parent / "batch.jsonl.parked"
    path.rename(parked)
    (folder / "other.jsonl").write_text(json.dumps({**event, "event_id": "o1"}) + "\n")
    assert ingest_events(settings).tables["events"].loaded == 1  # other.jsonl; batch.jsonl is forgotten
    parked.rename(path)  # listed again: read again, merged over its own lines
    assert ingest_events(settings).tables["events"].loaded == 1
    assert query(settings, "select _file_name, count(*) from raw_events.events group by 1 order by 1") == [
        ("batch.jsonl", 1),
        ("other.jsonl", 1),
    ]


def test_a_line_that_is_not_utf8_is_quarantined_with_its_bytes_escaped(settings):
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    good = json.dumps({"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"})
    bad = good.replace("e1", "e2").replace("page_view", "page_view").encode().replace(b'"e2"', b'"e\xff2"')
    (folder / "batch.jsonl").write_bytes(good.encode() + b"\n" + bad + b"\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (2, 1, 1)
    ((origin, reason, payload),) = query(settings, "select origin, reason, payload from raw_events._dead_letters")
    assert origin == "batch.jsonl:2" and reason.startswith("line is not UTF-8")
    assert '"e\\xff2"' in payload
    assert query(settings, "select event_id from raw_events.events") == [("e1",)]


GOOD_EVENT = {"event_id": "e1", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}


@pytest.fixture
def harbor_logging_restored(monkeypatch):
    """`ingest_sources` points the `harbor` logger at this test's stderr and stops it propagating: restored after."""
    logger = logging.getLogger("harbor")
    for attribute in ("handlers", "propagate", "level"):
        value = getattr(logger, attribute)
        monkeypatch.setattr(logger, attribute, list(value) if isinstance(value, list) else value)


@pytest.mark.parametrize("as_url", [False, True], ids=["plain-path", "file-url"])
def test_a_missing_folder_is_a_wrong_setting_as_a_path_or_a_file_url_and_an_empty_glob_is_not(
    settings, tmp_path, monkeypatch, capsys, harbor_logging_restored, as_url
):
    """A `file://` URL to a missing folder loaded 0 rows with exit 0 (a plain path was refused): a mistyped folder
    looked like a quiet day."""
    missing = tmp_path / "evnets"
    monkeypatch.setenv("SOURCES__EVENTS__BUCKET_URL", missing.as_uri() if as_url else str(missing))
    assert ingest_sources(settings, ["events"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert f"source 'events' cannot run, a setting is wrong: events: no folder {missing} " in err
    assert "SOURCES__EVENTS__BUCKET_URL" in err and not missing.exists()
    # An existing folder with no file matching the glob is a quiet day.
    missing.mkdir()
    (missing / "notes.txt").write_text("not an event file\n")
    assert ingest_sources(settings, ["events"]) == 0
    assert ingest_events(settings, bucket_url=missing.as_uri()).tables["events"].extracted == 0


def test_a_file_that_vanished_after_listing_or_is_a_broken_link_is_skipped_and_read_when_it_is_back(
    settings, caplog, monkeypatch
):
    """A broken symlink, or a file deleted between listing and reading, failed the whole source ([Errno 2], exit 4)."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    parked = folder.parent / "parked"
    parked.mkdir()
    (folder / "a.jsonl").write_text(json.dumps(GOOD_EVENT) + "\n")
    (parked / "b.jsonl").write_text(json.dumps({**GOOD_EVENT, "event_id": "b1"}) + "\n")
    (folder / "b.jsonl").symlink_to(parked / "gone.jsonl")  # broken
    (folder / "c.jsonl").write_text(json.dumps({**GOOD_EVENT, "event_id": "c1"}) + "\n")

    opened = FileItemDict.open

    def deleted_before_reading(file_item, *args, **kwargs):  # c.jsonl is listed, then deleted before it is read
        if file_item["file_name"] == "c.jsonl":
            (folder / "c.jsonl").rename(parked / "c.jsonl")
        return opened(file_item, *args, **kwargs)

    events_log = logging.getLogger("harbor.ingestion.events")
    # Captured once, whatever an earlier test made of the `harbor` logger's handlers.
    monkeypatch.setattr(events_log, "handlers", [caplog.handler])
    monkeypatch.setattr(events_log, "propagate", False)
    with monkeypatch.context() as patched:
        patched.setattr(FileItemDict, "open", deleted_before_reading)
        result = ingest_events(settings)
    assert result.tables["events"].loaded == 1
    assert query(settings, "select event_id from raw_events.events") == [("e1",)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "harbor.ingestion.events"]
    assert len(warnings) == 2, warnings
    assert f"skipped {folder / 'b.jsonl'}: it vanished or is a broken link" in warnings[0]
    assert "skipped c.jsonl: it vanished since it was listed" in warnings[1]

    # Neither was remembered as read: both load once they are back.
    (folder / "b.jsonl").unlink()
    (folder / "b.jsonl").symlink_to(parked / "b.jsonl")
    (parked / "c.jsonl").rename(folder / "c.jsonl")
    assert ingest_events(settings).tables["events"].loaded == 2
    assert query(settings, "select event_id from raw_events.events order by 1") == [("b1",), ("c1",), ("e1",)]
    assert ingest_events(settings).tables["events"].extracted == 0


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_data(settings):
    """The first event of a file written with a UTF-8 BOM went to the dead letters ("Unexpected UTF-8 BOM")."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    lines = [json.dumps(GOOD_EVENT), json.dumps({**GOOD_EVENT, "event_id": "e2"})]
    (folder / "bom.jsonl").write_bytes(codecs.BOM_UTF8 + "\n".join(lines).encode() + b"\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (2, 2, 0)
    assert query(settings, "select _line_number, event_id from raw_events.events order by 1") == [(1, "e1"), (2, "e2")]


def test_nul_characters_and_nan_or_infinity_are_quarantined_not_changed_silently(settings):
    """`/a\\u0000b` loaded as `/ab` (warehouses drop NUL) and a new field holding NaN or Infinity loaded as no column
    at all: values changed without a dead letter."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    lines = [
        json.dumps(GOOD_EVENT),
        json.dumps({**GOOD_EVENT, "event_id": "e2", "page_url": "/a\u0000b"}),
        json.dumps({**GOOD_EVENT, "event_id": "e3", "attributes": {"tags": ["ok", "x\u0000"]}}),
        json.dumps({**GOOD_EVENT, "event_id": "e4", "score": float("nan")}),
        json.dumps({**GOOD_EVENT, "event_id": "e5", "attributes": {"ratio": float("inf")}}),
        json.dumps({**GOOD_EVENT, "event_id": "e6", "customer_id": float("-inf")}),
        json.dumps({**GOOD_EVENT, "event_id": "e7", "page_url": "/NaN/Infinity\\u0000", "score": 1.5}),
    ]
    (folder / "batch.jsonl").write_text("\n".join(lines) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (7, 2, 5)
    dead = query(settings, "select origin, reason, payload from raw_events._dead_letters order by origin")
    assert [(origin, reason) for origin, reason, _ in dead] == [
        (
            "batch.jsonl:2",
            "events.page_url: text holds a NUL character (\\u0000), which a warehouse column cannot keep",
        ),
        (
            "batch.jsonl:3",
            "events.attributes.tags.1: text holds a NUL character (\\u0000), which a warehouse column cannot keep",
        ),
        ("batch.jsonl:4", "events.score: NaN is not a JSON value (JSON has no NaN or Infinity)"),
        ("batch.jsonl:5", "events.attributes.ratio: Infinity is not a JSON value (JSON has no NaN or Infinity)"),
        ("batch.jsonl:6", "events.customer_id: -Infinity is not a JSON value (JSON has no NaN or Infinity)"),
    ]
    assert dead[0][2] == lines[1]  # the payload keeps the line as written
    # A string that merely spells them (an escaped backslash before u0000) loads as sent.
    assert query(settings, "select event_id, page_url, score from raw_events.events order by 1") == [
        ("e1", None, None),
        ("e7", "/NaN/Infinity\\u0000", 1.5),
    ]


def test_a_nul_byte_outside_a_string_is_kept_visible_in_the_dead_letter_payload(settings):
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    (folder / "batch.jsonl").write_bytes(json.dumps(GOOD_EVENT).encode() + b"\x00\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (1, 0, 1)
    ((reason, payload),) = query(settings, "select reason, payload from raw_events._dead_letters")
    assert reason.startswith("unparsable JSON line") and payload == json.dumps(GOOD_EVENT) + "\\x00"


def test_a_file_whose_name_is_not_utf8_is_read_under_its_name_with_the_bytes_escaped(settings):
    """Such a file was skipped at every run as "vanished since it was listed": dlt's URL for it replaced the
    stray byte, so it named no file."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.jsonl"), "wb") as file:
        file.write(json.dumps(GOOD_EVENT).encode() + b"\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (1, 1, 0)
    assert query(settings, "select _file_name, event_id from raw_events.events") == [("caf\\xe9.jsonl", "e1")]
    assert ingest_events(settings).tables["events"].extracted == 0  # remembered as read


def test_a_lone_surrogate_is_a_dead_letter_and_the_rest_of_the_file_loads(settings):
    """JSON may spell one (`"\\ud800"`), but it is not UTF-8: it failed the whole source at every run ("str is not
    valid UTF-8: surrogates not allowed"), naming no file or line."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    lines = [json.dumps(GOOD_EVENT), json.dumps({**GOOD_EVENT, "event_id": "e2", "page_url": "/x\ud800y"})]
    (folder / "batch.jsonl").write_text("\n".join(lines) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (2, 1, 1)
    assert query(settings, "select origin, reason from raw_events._dead_letters") == [
        ("batch.jsonl:2", "events.page_url: text holds a lone surrogate (\\ud800), which is not UTF-8")
    ]


def test_a_raw_key_held_twice_warns_and_a_source_not_loaded_is_skipped(settings):
    """The optional sources' raw keys are tested as the shop's are, each of the two; fx not loaded yet is skipped,
    not an error."""
    from ingestion.quality import load_outcomes
    from ingestion.transform import run_dbt

    write_events(settings.data_dir, seed=5, tick=0, scale=0.1)
    ingest_events(settings)
    target = settings.warehouse.parent / "target_raw_keys"
    test = ["test", "--select", "assert_optional_raw_keys_are_unique", "--target-path", str(target)]
    run_dbt(settings, *test)
    assert [o.status for o in load_outcomes(target)] == ["pass"]
    with duckdb.connect(str(settings.warehouse)) as conn:  # a rate held twice for one currency and day
        conn.execute("create schema raw_fx")
        conn.execute(
            "create table raw_fx.exchange_rates as "
            "select * from (values ('EUR', date '2024-01-01'), ('EUR', date '2024-01-02')) as t(currency_code, rate_date)"
        )
    run_dbt(settings, *test)
    assert [o.status for o in load_outcomes(target)] == ["pass"]
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("insert into raw_fx.exchange_rates values ('EUR', date '2024-01-02')")
    run_dbt(settings, *test)
    assert [o.status for o in load_outcomes(target)] == ["warn"]
    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute("delete from raw_fx.exchange_rates where rate_date = date '2024-01-02'")
        conn.execute("insert into raw_events.events select * from raw_events.events limit 1")
    run_dbt(settings, *test)
    assert [o.status for o in load_outcomes(target)] == ["warn"]


def test_a_file_longer_than_a_batch_loads_every_line_once(settings):
    """Lines are handed to dlt 10,000 at a time: a file of more lines crosses a batch boundary, and a batch dropped
    or handed twice there would lose or double events with every test on the demo's small files passing."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    lines = 25_001
    with (folder / "long.jsonl").open("w") as handle:
        for number in range(1, lines + 1):
            event = {"event_id": f"e{number}", "event_time": "2024-01-01T10:00:00+00:00", "event_type": "page_view"}
            handle.write(json.dumps(event) + "\n")
    counts = ingest_events(settings).tables["events"]
    assert (counts.extracted, counts.loaded, counts.quarantined) == (lines, lines, 0)
    loaded = (
        "select count(*), count(distinct _line_number), min(_line_number), max(_line_number) from raw_events.events"
    )
    assert query(settings, loaded) == [(lines, lines, 1, lines)]


def test_the_same_bad_line_in_two_files_is_two_dead_letters(settings):
    """A dead letter's key is its payload and where it came from: the same bad line in two files, or twice in one,
    is a dead letter each, as the quarantined count says; keyed on the payload alone they were one."""
    folder = events_dir(settings.data_dir)
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("{not json\n{not json\n")
    (folder / "b.jsonl").write_text("{not json\n")
    assert ingest_events(settings).tables["events"].quarantined == 3
    dead = query(settings, "select origin, payload from raw_events._dead_letters order by origin")
    assert dead == [("a.jsonl:1", "{not json"), ("a.jsonl:2", "{not json"), ("b.jsonl:1", "{not json")]
