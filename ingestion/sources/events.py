"""The events source: clickstream events as JSON-lines files landing in a folder, through dlt's filesystem source.

Each run reads the files it has not read before in the state they are in now: dlt state (committed with the
load) remembers every listed file's modification time and size, so a new file is read whatever its modification
time (one moved in from elsewhere keeps an old one), and a file rewritten under the same name is read again and
replaces its earlier lines (merge key `_file_name`: lines it no longer has are deleted from raw, provided the
new version has a valid line for the delete to ride on). Files no longer listed are forgotten, so the state
stays the size of the folder. Every line becomes one raw row carrying `_file_name` and `_line_number`; the raw
table is keyed on those two, so a replayed load package never duplicates a line, while the same `event_id`
sent twice by the tracker (in two files) stays twice in raw: deduplication by `event_id` is staging's job,
where late events are also handled.
A line that is not UTF-8 or not JSON (NaN and Infinity are not JSON), a line with a NUL character in a string
(warehouses drop it), or an event that fails `EVENT_SPEC`, goes to `raw_events._dead_letters`. A file that vanishes
between listing and reading (deleted, a broken symlink) is skipped with a warning and read when it comes back.
A file name that is not UTF-8 is kept with its stray bytes escaped (`caf\\xe9.jsonl`).
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import dlt
from dlt.common.storages.configuration import FilesystemConfiguration
from dlt.sources import DltResource
from dlt.sources.filesystem import filesystem
from fsspec.implementations.local import LocalFileSystem

from ingestion.demo.events import EVENT_TYPES
from ingestion.settings import ConfigError
from ingestion.sources.quarantine import Field, NotJson, RecordSpec, Tally, dead_letter

log = logging.getLogger("harbor.ingestion.events")

TABLE = "events"

EVENT_SPEC = RecordSpec(
    TABLE,
    {
        "event_id": Field("text"),
        "event_time": Field("timestamp"),
        "event_type": Field("text", allowed=EVENT_TYPES),
        "customer_id": Field("bigint", required=False),
        "anonymous_id": Field("text", required=False),
        "page_url": Field("text", required=False),
    },
)

# Files per page of dlt's listing: the whole listing in one page (see `events_source`).
WHOLE_LISTING = 2**31

FILE_COLUMNS = {
    "_file_name": {"data_type": "text", "nullable": False},
    "_line_number": {"data_type": "bigint", "nullable": False},
    "_extracted_at": {"data_type": "timestamp", "nullable": False},
    "_source": {"data_type": "text", "nullable": False},
}


@dlt.source(name="events", max_table_nesting=0)
def events_source(
    bucket_url: str = dlt.config.value,
    file_glob: str = "*.jsonl",
    extracted_at: datetime | None = None,
    tally: Tally | None = None,
) -> Iterator[DltResource]:
    """`bucket_url` is a folder (`file:///abs/path` or a plain path) or any fsspec URL dlt supports."""
    if "://" not in bucket_url:
        folder = Path(bucket_url).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        bucket_url = folder.as_uri()
    local = urlparse(bucket_url).scheme == "file"
    if local:
        _check_folder(bucket_url)
    folder_on_disk = Path(FilesystemConfiguration.make_local_path(bucket_url)) if local else None
    if folder_on_disk is not None:
        _warn_about_files_in_subfolders(folder_on_disk, file_glob)
    stamp = extracted_at or datetime.now(UTC)
    counts = tally if tally is not None else Tally()
    # One page holding the whole listing (fsspec lists a bucket whole anyway): only then are the files no
    # longer listed known, to be forgotten.
    files = filesystem(
        bucket_url=bucket_url,
        file_glob=file_glob,
        files_per_page=WHOLE_LISTING,
        **({"credentials": ListingLocalFileSystem()} if local else {}),
    )

    # Column hints go on a table variant, not the resource: the dead-letter variant would inherit them.
    @dlt.transformer(name=TABLE, write_disposition="merge", primary_key=("_file_name", "_line_number"))
    def read_events(listing: list) -> Iterator:
        read: dict[str, str] = dlt.current.resource_state().setdefault("files", {})
        listed = {}
        for file_item in listing:
            name = _shown_name(file_item["relative_path"])
            # Some filesystems (plain http) list no size; such a file is told apart by its modification time.
            version = f"{file_item['modification_date'].isoformat()} {file_item.get('size_in_bytes')}"
            if read.get(name) != version:
                handle = _open(file_item, folder_on_disk)
                if handle is None:  # vanished since the listing: not remembered, so read when it comes back
                    continue
                with handle:
                    yield from _read_file(handle, name, stamp, counts)
            listed[name] = version
        read.clear()
        read.update(listed)

    yield files | read_events


def _check_folder(bucket_url: str) -> None:
    """A `file://` URL naming no folder is a wrong setting, as a plain path is (`ingestion.pipeline`): listed, it
    would load nothing and look like a quiet day."""
    folder = Path(FilesystemConfiguration.make_local_path(bucket_url))
    if not folder.is_dir():
        raise ConfigError(f"events: no folder {folder} (sources.events.bucket_url, SOURCES__EVENTS__BUCKET_URL)")


def _warn_about_files_in_subfolders(folder: Path, file_glob: str) -> None:
    """A glob without a folder part (the default `*.jsonl`) reads the folder's own files only: files landed in
    subfolders (one per day, say) were left unread without a word."""
    if "/" in file_glob:
        return
    unread = sum(1 for path in folder.glob(f"*/**/{file_glob}") if path.is_file())
    if unread:
        log.warning(
            "events: %d file(s) matching %r in subfolders of %s are not read: file_glob = '**/%s' "
            "(sources.events.file_glob, SOURCES__EVENTS__FILE_GLOB) reads them too",
            unread,
            file_glob,
            folder,
            file_glob,
            extra={"source": "events", "unread_files": unread},
        )


class ListingLocalFileSystem(LocalFileSystem):
    """The local filesystem for the events listing. dlt asks `info` of every path the glob matched; a path gone
    since (a file deleted meanwhile, a broken symlink) raised FileNotFoundError and failed the whole source. Here
    it is an entry of type "missing", which the listing leaves out, with a warning naming it.
    Only for the listing: `exists` of this filesystem would say True of a missing path."""

    def info(self, path, **kwargs):
        try:
            return super().info(path, **kwargs)
        except FileNotFoundError as error:
            log.warning("events: skipped %s: it vanished or is a broken link (%s); read when it is back", path, error)
            return {"name": self._strip_protocol(path), "type": "missing", "size": None}


def _shown_name(name: str) -> str:
    """A file's name as text the warehouse can hold. Linux lists a name that is not UTF-8 with its stray bytes as
    lone surrogates, which no UTF-8 column or JSON state takes: those bytes are written as escapes (\\xe9)."""
    return name.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")


def _open(file_item, folder_on_disk: Path | None) -> IO[bytes] | None:
    """The file opened, or None (with a warning) when it vanished since it was listed."""
    name = file_item["relative_path"]
    try:
        if folder_on_disk is not None and _shown_name(name) != name:
            # dlt's URL for the file decodes its name as UTF-8, replacing the stray bytes: it named no file.
            return (folder_on_disk / name).open(mode="rb")
        return file_item.open(mode="rb")
    except FileNotFoundError as error:
        log.warning("events: skipped %s: it vanished since it was listed (%s); read when it is back", name, error)
        return None


def _read_file(handle: IO[bytes], name: str, extracted_at: datetime, tally: Tally) -> Iterator:
    batch = []
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):  # a byte order mark some editors write, not data
            raw = raw[len(codecs.BOM_UTF8) :]
        if not raw.strip():
            continue
        tally.extracted[TABLE] += 1
        origin = f"{name}:{number}"
        try:
            line = raw.decode("utf-8").strip()
            record = EVENT_SPEC.validate(json.loads(line, parse_constant=NotJson))
        # Unicode and JSON decoding errors and InvalidRecord are ValueErrors; JSON nested thousands deep is a
        # RecursionError. Any of them escaping would fail the source on this line at every run.
        except (ValueError, RecursionError) as error:
            tally.quarantined[TABLE] += 1
            yield dead_letter(
                TABLE, origin, _reason(error), _printable(raw), source="events", extracted_at=extracted_at
            )
            continue
        record.update(_file_name=name, _line_number=number, _extracted_at=extracted_at, _source="events")
        batch.append(record)
        if len(batch) >= 10_000:
            yield _with_columns(batch)
            batch = []
    if batch:
        yield _with_columns(batch)


def _reason(error: ValueError | RecursionError) -> str:
    if isinstance(error, RecursionError):
        return "unparsable JSON line: nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return f"line is not UTF-8: {error}"
    if isinstance(error, json.JSONDecodeError):
        return f"unparsable JSON line: {error}"
    return str(error)


def _printable(raw: bytes) -> str:
    """The line as text, bytes that are not UTF-8 written as escapes (\\xff), NUL as \\x00 (warehouses drop it):
    the payload keeps every byte."""
    return raw.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00").strip()


def _with_columns(batch: list[dict]):
    return dlt.mark.with_hints(
        batch,
        dlt.mark.make_hints(table_name=TABLE, merge_key="_file_name", columns={**EVENT_SPEC.columns(), **FILE_COLUMNS}),
        create_table_variant=True,
    )
