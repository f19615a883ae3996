"""Runs dlt pipelines into the warehouse and reports what each table received.

One pipeline per source (`harbor_<source>`), each into its own raw dataset. Exactly-once rests on three dlt
properties: a source's incremental state is saved inside the same load package as its rows; a package that
was extracted or normalized before a crash is finished (normalized and loaded) before anything new is
extracted; and every raw table is merged on a key, so a job replayed after a crash overwrites instead of
duplicating.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from ingestion.parquet_writer import use_plain_parquet
from ingestion.settings import ConfigError, Settings
from ingestion.sources.quarantine import COLUMN_NAMING, DEAD_LETTERS, Tally

if TYPE_CHECKING:
    from ingestion.sources.http import RetryPolicy

# Arrow backends skip dlt's `_dlt_load_id` unless asked; every raw row must carry it.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

RAW_DATASETS = {"shop": "raw_shop", "events": "raw_events", "fx": "raw_fx"}
# A table in a raw dataset saying its staging must be rebuilt in full (`_forget_loads`, macros/restage.sql).
RESTAGE_MARKER = "_harbor_restage_needed"

log = logging.getLogger("harbor.ingestion")
# Progress lines every few seconds while a load runs: on for the CLI, or with HARBOR_PROGRESS=1.
PROGRESS = {"enabled": bool(os.environ.get("HARBOR_PROGRESS")), "period": 5.0}


@dataclass
class TableCounts:
    extracted: int = 0
    loaded: int = 0
    quarantined: int = 0


@dataclass
class IngestResult:
    source: str
    load_id: str | None
    tables: dict[str, TableCounts] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_load_ids: list[str] = field(default_factory=list)  # packages a crashed run left, finished first
    step_seconds: dict[str, float] = field(default_factory=dict)  # extract / normalize / load
    pipeline_name: str = ""

    @property
    def rows_extracted(self) -> dict[str, int]:
        return {table: counts.extracted for table, counts in self.tables.items()}

    @property
    def total_rows(self) -> int:
        return sum(self.rows_extracted.values())

    @property
    def quarantined(self) -> int:
        return sum(c.quarantined for c in self.tables.values())


class SourceUnavailable(RuntimeError):
    """A source could not be read after the configured retries; nothing was loaded and state is unchanged."""


class PendingLoadFailed(RuntimeError):
    """What an earlier run extracted but did not load fails to load again: every run finishes it first, so the
    source is stuck until it loads or a full refresh drops it."""


class ClockBehindTheWarehouse(RuntimeError):
    """This machine's clock reads earlier than a load the warehouse already holds: nothing was loaded."""


def dlt_step_seconds(pipeline: dlt.Pipeline) -> dict[str, float]:
    """Seconds per dlt step (extract, normalize, load) of the pipeline's last run, from its trace."""
    trace = pipeline.last_trace
    return {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in (trace.steps if trace else [])
        if step.finished_at and step.step in ("extract", "normalize", "load")
    }


def pipeline_name(source: str) -> str:
    """The source's dlt pipeline in the warehouse in use. Into PostgreSQL it has its own name, so its own local
    state: the same source loaded into another warehouse starts from its own cursor."""
    return f"harbor_{source}_postgres" if destination_kind() == "postgres" else f"harbor_{source}"


def state_dir(settings: Settings) -> Path:
    """dlt's local pipeline state, one folder per warehouse: per DuckDB file, and per PostgreSQL server and
    database. dlt trusts a newer local state over the destination's, so two warehouses sharing a folder would
    each skip the rows the other's runs loaded."""
    if destination_kind() == "postgres":
        host, port, database = _postgres_warehouse_address()
        name, identity = f"postgres-{database}", f"{host}:{port}/{database}"
    else:
        name, identity = settings.warehouse.stem, str(settings.warehouse.resolve())
    return settings.data_dir / "pipelines" / f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def make_pipeline(source: str, settings: Settings, connection: duckdb.DuckDBPyConnection | None = None) -> dlt.Pipeline:
    """The source's pipeline; into `connection` when given (DuckDB, see `held_pipeline`)."""
    use_plain_parquet()
    if destination_kind() == "duckdb" and connection is None:  # a connection's caller did, before connecting
        forget_state_of_a_lost_warehouse(settings, [source])
    destination = warehouse_destination(settings, connection)
    return dlt.pipeline(
        pipeline_name=pipeline_name(source),
        pipelines_dir=str(state_dir(settings)),
        destination=destination,
        dataset_name=RAW_DATASETS[source],
        progress=_progress(),
    )


@contextmanager
def held_pipeline(source: str, settings: Settings) -> Iterator[dlt.Pipeline]:
    """The source's pipeline for one run. Into DuckDB it holds one connection to the warehouse from start to
    end: left to itself, dlt opens and closes the database around every load job and each close checkpoints
    it, which at 10M order items was 3 s of an incremental load's 3.3 s (README "Performance"). That connection
    also keeps a second run out (DuckDB has one writer); into PostgreSQL a lock does (`one_run_at_a_time`).
    `harbor ingest` holds the warehouse open across all its sources (`cli._warehouse_held`): this connection then
    shares that one's database, and closing it does not checkpoint; the last close does."""
    if destination_kind() != "duckdb":
        with one_run_at_a_time(pipeline_name(source)):
            yield make_pipeline(source, settings)
        return
    forget_state_of_a_lost_warehouse(settings, [source])  # before connecting creates the file
    connection = duckdb.connect(str(settings.warehouse))
    try:
        yield make_pipeline(source, settings, connection)
    finally:
        connection.close()


@contextmanager
def one_run_at_a_time(pipeline: str) -> Iterator[None]:
    """Hold the PostgreSQL warehouse's advisory lock for `pipeline` until the run ends; a run that finds it taken
    waits, saying so. Two runs of one source at once shared dlt's local working folder (one could load the other's
    half-written package) and committed their loads in either order, so an older cursor could win."""
    with _advisory_lock(
        f"harbor ingest {pipeline}",
        f"another run of {pipeline} is loading into this warehouse: waiting for it to finish",
        pipeline=pipeline,
    ):
        yield


@contextmanager
def one_build_at_a_time() -> Iterator[None]:
    """The same for `harbor build` on the PostgreSQL warehouse: two at once created the same relations, and the
    second failed ("relation ... already exists") with forty models skipped. (DuckDB refuses a second writer.)"""
    import psycopg2

    waiting = "another harbor build is building this warehouse: waiting for it to finish"
    with ExitStack() as held:
        # No server, no database: dbt, run unlocked, says which in its own words.
        with suppress(psycopg2.OperationalError):
            held.enter_context(_advisory_lock("harbor build", waiting))
        yield


@contextmanager
def _advisory_lock(name: str, waiting: str, **extra: str) -> Iterator[None]:
    """A session lock on the PostgreSQL warehouse: the server frees it when the connection ends, also when the
    process is killed."""
    import psycopg2

    from ingestion.sources.http import RetryPolicy

    # The staging post-hook computes the same key in SQL (`postgres__ingest_kept_out`, macros/staging.sql).
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    # Bounded: a server that accepts the connection and never answers held the command for ever.
    connection = psycopg2.connect(postgres_warehouse_url(), connect_timeout=RetryPolicy.libpq_connect_timeout())
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("select pg_try_advisory_lock(%s)", (key,))
            if not cursor.fetchone()[0]:
                log.warning(waiting, extra=extra)
                cursor.execute("select pg_advisory_lock(%s)", (key,))
        yield
    finally:
        connection.close()


def forget_state_of_a_lost_warehouse(settings: Settings, sources: Iterable[str]) -> None:
    """To be called before anything connects to the DuckDB warehouse, which creates the file: for a run of several
    sources, with all of them first (after the first connection the file is there, lost or not)."""
    if not settings.warehouse.exists():
        # dlt trusts its local state over an empty destination: with the warehouse gone, that state (or a load
        # package an interrupted run left, which carries it) would make the incremental cursor skip every row
        # already loaded once. Start from scratch instead.
        for source in sources:
            shutil.rmtree(state_dir(settings) / pipeline_name(source), ignore_errors=True)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)


def _pg_setting(name: str, default: str) -> str:
    """A HARBOR_PG_* setting; set but empty is the default, as in `profiles.yml`: an empty database name made
    dlt load into the server's default database (PGDATABASE, else `postgres`) while dbt built another."""
    return os.environ.get(name) or default


def _postgres_warehouse_address() -> tuple[str, str, str]:
    """Host, port and database of the PostgreSQL warehouse (HARBOR_PG_*, as dbt's `pg` target reads them)."""
    port = _pg_setting("HARBOR_PG_PORT", "5432")
    if not port.isdigit():
        raise ConfigError(f"HARBOR_PG_PORT must be a port number, not {port!r}")
    return _pg_setting("HARBOR_PG_HOST", "127.0.0.1"), port, _pg_setting("HARBOR_PG_DATABASE", "harbor")


def postgres_warehouse_url() -> str:
    """The PostgreSQL warehouse from the same HARBOR_PG_* variables dbt's `pg` target reads."""
    host, port, database = _postgres_warehouse_address()
    return f"postgresql://{_warehouse_auth()}@{_url_host(host)}:{port}/{database}"


def postgres_warehouse_sqlalchemy_url() -> str:
    """The same warehouse as a `postgresql+psycopg2://` URL for SQLAlchemy, which, unlike dlt and libpq, does not
    decode a percent-encoded host: a socket directory goes in the query."""
    host, port, database = _postgres_warehouse_address()
    if host.startswith("/"):
        return f"postgresql+psycopg2://{_warehouse_auth()}@/{database}?host={quote(host, safe='')}&port={port}"
    return postgres_warehouse_url().replace("postgresql://", "postgresql+psycopg2://", 1)


def _warehouse_auth() -> str:
    # Always user:password: dlt requires a password even for trust auth, where an empty one is fine.
    user, password = _pg_setting("HARBOR_PG_USER", "postgres"), os.environ.get("HARBOR_PG_PASSWORD", "")
    return f"{quote(user, safe='')}:{quote(password, safe='')}"


def _url_host(host: str) -> str:
    """HARBOR_PG_HOST as a URL's host: a socket directory (as libpq and dbt take it) percent-encoded, which dlt and
    libpq both read back (dlt refuses a URL with no host, so `?host=` will not do); an IPv6 address in brackets,
    its zone (`fe80::1%eth0`) escaped."""
    if host.startswith("/"):
        return quote(host, safe="")
    if ":" in host:
        return f"[{quote(host.removeprefix('[').removesuffix(']'), safe=':')}]"
    return host


class WarehouseUnreachable(RuntimeError):
    """The PostgreSQL warehouse could not be reached after the configured retries: an outage (exit 3)."""


def check_postgres_warehouse(policy: RetryPolicy | None = None) -> None:
    """The PostgreSQL warehouse, checked once before any source runs; every source failed on a bad one in turn,
    each with a page of SQLAlchemy's text, and the run exited as if a load had failed (4). A database that is not
    there, or a role or password the server refuses: ConfigError naming the setting (exit 2). A server that cannot
    be reached, after the retries of `[runtime]`: WarehouseUnreachable (exit 3)."""
    import psycopg2

    from ingestion.sources.http import RetryPolicy, connect_with_retries

    policy = policy or RetryPolicy.from_dlt_config()
    host, port, database = _postgres_warehouse_address()

    def refused(refusal: str) -> ConfigError:
        if f'database "{database}" does not exist' in refusal:
            return ConfigError(
                f"the PostgreSQL warehouse database {database!r} does not exist on {host}:{port}: create it "
                f"(`createdb -h {host} -p {port} {database}`), or set HARBOR_PG_DATABASE to one that does"
            )
        return ConfigError(
            f"the PostgreSQL warehouse on {host}:{port} refused the connection: {refusal} "
            "(HARBOR_PG_USER, HARBOR_PG_PASSWORD)"
        )

    try:
        connect_with_retries(
            lambda: psycopg2.connect(postgres_warehouse_url(), connect_timeout=policy.connect_timeout).close(),
            errors=psycopg2.OperationalError,
            what=f"the PostgreSQL warehouse on {host}:{port}",
            refused=refused,
            logger=log,
            policy=policy,
        )
    except psycopg2.OperationalError as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise WarehouseUnreachable(
            f"the PostgreSQL warehouse on {host}:{port} is unreachable after {policy.max_attempts} attempt(s): {reason}"
        ) from None


def warehouse_destination(settings: Settings, connection: duckdb.DuckDBPyConnection | None = None) -> Destination:
    """DuckDB (the file in settings, or an open connection to it) unless HARBOR_DESTINATION=postgres."""
    if destination_kind() == "postgres":
        return dlt.destinations.postgres(postgres_warehouse_url())
    return dlt.destinations.duckdb(connection if connection is not None else str(settings.warehouse))


def destination_kind() -> str:
    kind = os.environ.get("HARBOR_DESTINATION", "duckdb").lower()
    if kind not in ("duckdb", "postgres"):
        raise ConfigError(f"HARBOR_DESTINATION must be duckdb or postgres, not {kind!r}")
    return kind


def _progress():
    if not PROGRESS["enabled"]:
        return None
    return dlt.progress.log(
        log_period=PROGRESS["period"], logger=logging.getLogger("harbor.progress"), dump_system_stats=False
    )


def finish_pending(pipeline: dlt.Pipeline, source_name: str) -> list[str]:
    """Normalize and load what a crashed run left behind; returns the load ids it completed. PendingLoadFailed
    when that fails."""
    finished: list[str] = []
    pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    try:
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        if pipeline.list_normalized_load_packages():
            info = pipeline.load()
            info.raise_on_failed_jobs()
            finished = list(info.loads_ids)
    except Exception as error:
        raise PendingLoadFailed(
            f"load package(s) {', '.join(pending)} that an earlier run extracted do not load: "
            f"{root_cause(error)}. Every run loads them first; if this is not passing, "
            f"`harbor ingest {source_name} --full-refresh` drops them and loads the source again"
        ) from error
    return finished


def _forget_state_the_warehouse_lacks(pipeline: dlt.Pipeline, source_name: str) -> dlt.Pipeline:
    """The warehouse says what was loaded. dlt trusts a local state newer than the warehouse's (a warehouse
    restored from a backup, a load that failed after its extract advanced the cursors), and its cursors then skip
    what the warehouse lacks: the rows of the runs after the backup never came back. With no package waiting to
    load (those carry their own state: `finish_pending` ran first), such a local state is dropped, and
    `sync_destination` restores the warehouse's."""
    local = int(pipeline.state.get("_state_version") or 0)
    if not local or pipeline.has_pending_data:
        return pipeline
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("_dlt_pipeline_state")
            rows = client.execute_sql(
                f"select max(version) from {table} where pipeline_name = %s", pipeline.pipeline_name
            )
        stored = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    except DatabaseUndefinedRelation:  # no state table (a new or emptied warehouse): it holds no state at all
        stored = 0
    if local <= stored:
        return pipeline
    log.warning(
        "the warehouse holds an older state of %s than this machine (version %d against %d: restored from a "
        "backup, or a load failed): starting from the warehouse's, so nothing it lacks is skipped",
        source_name,
        stored,
        local,
        extra={"source": source_name},
    )
    pipeline.drop()
    pipeline.activate()
    return pipeline


def _refuse_a_clock_behind_the_newest_load(
    pipeline: dlt.Pipeline, source_name: str, *, full_refresh: bool
) -> list[str]:
    """dlt names a load by the loading machine's clock (`load_id`, seconds since the epoch) and restores the state
    of the highest one; staging keeps the version of the highest `_dlt_load_id` and reads the loads after the
    newest `_extracted_at` it staged, on the same clock. A load named before one the warehouse holds (this
    machine's clock stepped back, or another's ran ahead) would lose to older versions, or never be staged: it
    is refused before anything is read. A full refresh, which replaces every raw row of the source, goes on:
    it returns the load ids dated ahead, for `_forget_loads` once the reload has committed."""
    now = time.time()
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(f"select load_id from {table} where status = 0")
    except DatabaseUndefinedRelation:  # nothing loaded into this dataset yet
        return []
    ahead = sorted((row[0] for row in rows if float(row[0]) >= now), key=float)
    if ahead and not full_refresh:
        newest = datetime.fromtimestamp(float(ahead[-1]), UTC).isoformat(timespec="seconds")
        clock = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        raise ClockBehindTheWarehouse(
            f"this machine's clock ({clock}) is behind the newest load of {source_name} in the warehouse "
            f"({newest}, load {ahead[-1]}): its load would sort before that one, and staging would keep older "
            "versions or skip it. Set the clock right and run again; if that load's time is the wrong one (a clock "
            f"that ran ahead), `harbor ingest {source_name} --full-refresh` then `harbor build --full-refresh` "
            "reload without it"
        )
    return ahead


def _forget_loads(pipeline: dlt.Pipeline, source_name: str, load_ids: list[str]) -> None:
    """Forget the loads a full refresh found dated ahead of this machine's clock, now that the reload replaced
    their rows: the next run is no longer refused on their account. Not before: a reload that failed leaves their
    rows in raw, and forgetting them would let the next run's load sort before those rows."""
    if not load_ids:
        return
    placeholders = ", ".join(["%s"] * len(load_ids))
    with pipeline.sql_client() as client, client.begin_transaction():
        # Staging still holds their load ids: dbt refuses a plain build until a full refresh drops this table
        # (macros/restage.sql), which would otherwise keep their rows over every later load's.
        marker = client.make_qualified_table_name(RESTAGE_MARKER)
        loads = client.make_qualified_table_name("_dlt_loads")
        client.execute_sql(
            f"create table if not exists {marker} (forgotten_load_id varchar(64) not null, forgotten_at timestamp)"
        )
        client.execute_sql(
            f"insert into {marker} select load_id, current_timestamp from {loads} where load_id in ({placeholders})",
            *load_ids,
        )
        client.execute_sql(f"delete from {loads} where load_id in ({placeholders})", *load_ids)
    log.warning(
        "forgot %d load(s) of %s dated after this machine's clock, the newest %s: the full refresh replaced their "
        "rows; builds stop until `harbor build --full-refresh` restages without them",
        len(load_ids),
        source_name,
        datetime.fromtimestamp(float(load_ids[-1]), UTC).isoformat(timespec="seconds"),
        extra={"source": source_name, "forgotten_load_ids": load_ids},
    )


def abort_pending(pipeline: dlt.Pipeline) -> list[str]:
    """Drop what earlier runs extracted but did not load (a full refresh loads those rows again); returns the
    load ids dropped."""
    pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    if pending:
        pipeline.abort_packages()
    return pending


def error_chain(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from, outermost first: dlt wraps the useful one several times."""
    chain = [error]
    while True:
        last = chain[-1]
        # The cause it was raised from, else the error being handled when it was raised, unless suppressed
        # (`from None`); not a generator's StopIteration, which is how iteration ends, not why it failed.
        following = last.__cause__ or (None if last.__suppress_context__ else last.__context__)
        if following is None or following in chain or isinstance(following, StopIteration | GeneratorExit):
            return chain
        chain.append(following)


def root_cause(error: BaseException) -> str:
    """The innermost error's message (table and column names are there), its first line."""
    seen = error_chain(error)[-1]
    text = str(seen).strip() or type(seen).__name__
    return text.splitlines()[0] if len(text) < 2000 else text[:2000]


def run_source(
    source_name: str,
    settings: Settings,
    build: Callable[[datetime, Tally], object],
    *,
    full_refresh: bool = False,
) -> IngestResult:
    """Extract, normalize and load one source; `build(extracted_at, tally)` returns the dlt source."""
    with held_pipeline(source_name, settings) as pipeline:
        started = time.monotonic()
        log.info("ingest %s started", source_name, extra={"source": source_name, "full_refresh": full_refresh})
        # Before anything loads, a package an interrupted run left included.
        loads_ahead = _refuse_a_clock_behind_the_newest_load(pipeline, source_name, full_refresh=full_refresh)
        resumed = _settle_pending_loads(pipeline, source_name, full_refresh=full_refresh)
        tally = Tally()
        try:
            pipeline = _forget_state_the_warehouse_lacks(pipeline, source_name)
            # Before the source is built: it reads the state (cursors, first loads), which must be the warehouse's.
            pipeline.sync_destination()
            source = build(datetime.now(UTC), tally)
            info: LoadInfo = pipeline.run(
                source,
                refresh="drop_sources" if full_refresh else None,
                # Rows the sources yield as dicts (events, fx, dead letters) reach DuckDB as parquet, as the shop's
                # Arrow batches do: dlt's default for DuckDB, INSERT statements, loaded 100k events in 12.7 s,
                # parquet in 0.5 s, into identical tables (README "Performance"). PostgreSQL takes dlt's default.
                loader_file_format="parquet" if destination_kind() == "duckdb" else None,
            )
        except Exception as error:
            unavailable = _unavailable_cause(error)
            if unavailable is not None:
                log.error("source %s unavailable", source_name, extra={"source": source_name, "cause": unavailable})
                raise SourceUnavailable(f"source {source_name!r} is unavailable: {unavailable}") from error
            raise
        info.raise_on_failed_jobs()
        _forget_loads(pipeline, source_name, loads_ahead)
        normalize = pipeline.last_trace.last_normalize_info
        tables = _table_counts(
            source.resources.selected,  # type: ignore[attr-defined]
            dict(normalize.row_counts) if normalize else {},
            tally,
        )
        step_seconds = dlt_step_seconds(pipeline)
    result = IngestResult(
        source=source_name,
        load_id=info.loads_ids[-1] if info.loads_ids else None,
        tables=tables,
        # Up to the close, and its checkpoint when no other connection stays (`harbor ingest` holds one to its end).
        seconds=time.monotonic() - started,
        resumed_load_ids=resumed,
        step_seconds=step_seconds,
        pipeline_name=pipeline.pipeline_name,
    )
    _log_counts(result)
    return result


def _settle_pending_loads(pipeline: dlt.Pipeline, source_name: str, *, full_refresh: bool) -> list[str]:
    """Load packages an interrupted run left: finished before this run (their rows are extracted already), or
    dropped by a full refresh, which reads those rows again. Returns the load ids finished."""
    if full_refresh:
        if dropped := abort_pending(pipeline):
            log.warning(
                "dropped load packages an earlier run left unloaded (the full refresh loads their rows again): %s",
                ", ".join(dropped),
                extra={"source": source_name, "dropped_load_ids": dropped},
            )
        return []
    resumed = finish_pending(pipeline, source_name)
    if resumed:
        log.warning(
            "finished load packages a previous, interrupted run left: %s",
            ", ".join(resumed),
            extra={"source": source_name, "resumed_load_ids": resumed},
        )
    return resumed


def _table_counts(selected: Iterable[str], row_counts: dict[str, int], tally: Tally) -> dict[str, TableCounts]:
    """Rows extracted, loaded and quarantined per table: the source's tables, those that only quarantined rows,
    and the dead-letter table when it loaded rows no table's tally counted."""
    tables: dict[str, TableCounts] = {}
    for table in selected:
        # dlt counts rows under raw's name for the table (`MixedCase` loads as `mixed_case`)
        loaded = row_counts.get(table, row_counts.get(COLUMN_NAMING.normalize_table_identifier(table), 0))
        quarantined = tally.quarantined.get(table, 0)
        extracted = tally.extracted.get(table, loaded + quarantined)
        tables[table] = TableCounts(extracted=extracted, loaded=loaded, quarantined=quarantined)
    for table, quarantined in tally.quarantined.items():
        tables.setdefault(table, TableCounts(extracted=tally.extracted[table], quarantined=quarantined))
    if DEAD_LETTERS in row_counts and not tally.quarantined:
        tables[DEAD_LETTERS] = TableCounts(loaded=row_counts[DEAD_LETTERS])
    return tables


def _log_counts(result: IngestResult) -> None:
    for table, counts in result.tables.items():
        log.info(
            "ingested %s.%s: extracted %d, loaded %d, quarantined %d",
            result.source,
            table,
            counts.extracted,
            counts.loaded,
            counts.quarantined,
            extra={
                "source": result.source,
                "table": table,
                "extracted": counts.extracted,
                "loaded": counts.loaded,
                "quarantined": counts.quarantined,
                "load_id": result.load_id,
                "seconds": round(result.seconds, 3),
            },
        )


def _unavailable_cause(error: BaseException) -> str | None:
    """The root cause when an error chain says the source could not be reached, else None."""
    import requests
    import sqlalchemy as sa

    seen = error
    while seen is not None:
        if isinstance(seen, ConfigError):  # a refusal that names a wrong setting, whatever it was raised from
            return None
        if isinstance(
            seen,
            sa.exc.OperationalError
            | ConnectionError
            | requests.ConnectionError
            | requests.Timeout
            | requests.exceptions.ChunkedEncodingError,  # a body cut short: the connection dropped mid-page
        ):
            return str(seen).strip().splitlines()[0]
        if isinstance(seen, requests.HTTPError) and seen.response is not None and seen.response.status_code >= 500:
            return f"HTTP {seen.response.status_code} from {seen.response.url}"
        seen = seen.__cause__ or seen.__context__
    return None


def configured(key: str) -> str | None:
    """A value from dlt's config providers (environment, .dlt/config.toml), or None."""
    value = dlt.config.get(key)
    return str(value) if value else None


# Arguments Harbor passes itself; every other argument of a source function is a setting.
PASSED_BY_HARBOR = frozenset({"extracted_at", "tally", "full_refresh"})


def _dlt_sources_tables(settings: Settings) -> Iterator[tuple[Path, dict]]:
    """The `[sources]` table of each of the project's `.dlt/config.toml` and `.dlt/secrets.toml` that can be read
    (a missing file is skipped; so is a syntax error, which dlt reports saying where)."""
    for name in ("config.toml", "secrets.toml"):
        path = settings.project_dir / ".dlt" / name
        try:
            sources = tomllib.loads(path.read_text()).get("sources", {})
        except (OSError, tomllib.TOMLDecodeError):
            continue
        yield path, sources if isinstance(sources, dict) else {}


def refuse_unknown_settings(source_name: str, source_function: Callable, settings: Settings) -> None:
    """A mistyped key (`lag_secnds`, `SOURCES__SHOP__CHUNKSIZE`) was ignored without a word and the default
    used, because dlt reads only the names a source asks for. ConfigError naming it and the keys the source has.
    Read: `SOURCES__<SOURCE>__<KEY>` variables, and `[sources.<source>]` in the project's `.dlt/*.toml`."""
    known = set(inspect.signature(source_function).parameters) - PASSED_BY_HARBOR
    prefix = f"SOURCES__{source_name.upper()}__"
    found: dict[str, str] = {}
    for variable in os.environ:
        if variable.upper().startswith(prefix):
            found.setdefault(variable[len(prefix) :].split("__")[0].lower(), variable)
    for path, sections in _dlt_sources_tables(settings):
        section = sections.get(source_name, {})
        for key in section if isinstance(section, dict) else ():
            found.setdefault(key.lower(), f"{key} in [sources.{source_name}] of {path}")
    unknown = sorted(key for key in found if key not in known)
    if unknown:
        raise ConfigError(
            f"{source_name}: unknown setting(s) {', '.join(found[key] for key in unknown)}; "
            f"the {source_name} source's settings are {', '.join(sorted(known))}"
        )


def refuse_unknown_source_sections(settings: Settings) -> None:
    """Settings for a source Harbor does not have were ignored without a word, since dlt looks up only the sections
    a source asks for: a mistyped `SOURCES__SHOPP__TABLE_NAMES` or `[sources.shopp]`, a single underscore
    (`SOURCES__SHOP_TABLE_NAMES`), and a variable in lower case (`sources__shop__table_names`: dlt reads
    environment variables in upper case). ConfigError naming each, and the sources there are."""
    unknown = []
    for variable in os.environ:
        if not variable.upper().startswith("SOURCES__"):
            continue
        if variable != variable.upper():
            unknown.append(f"{variable} (dlt reads environment variables in upper case: {variable.upper()})")
        elif variable.split("__")[1].lower() not in INGESTERS:
            unknown.append(variable)
    for path, sections in _dlt_sources_tables(settings):
        unknown += [
            f"[sources.{name}] in {path}" if isinstance(value, dict) else f"{name} in [sources] of {path}"
            for name, value in sections.items()
            if name not in INGESTERS
        ]
    if unknown:
        raise ConfigError(
            f"settings for no source Harbor has: {', '.join(sorted(unknown))}; its sources are "
            f"{', '.join(sorted(INGESTERS))} (SOURCES__<SOURCE>__<KEY>, or [sources.<source>] in .dlt/*.toml)"
        )


def ingest_shop(settings: Settings, *, full_refresh: bool = False) -> IngestResult:
    from ingestion.sources.shop import shop_source

    refuse_unknown_settings("shop", shop_source, settings)
    return run_source(
        "shop",
        settings,
        lambda extracted_at, tally: shop_source(
            credentials=settings.shop_url, extracted_at=extracted_at, tally=tally, full_refresh=full_refresh
        ),
        full_refresh=full_refresh,
    )


def ingest_events(settings: Settings, *, full_refresh: bool = False, **config) -> IngestResult:
    from ingestion.demo.events import events_dir
    from ingestion.sources.events import events_source

    refuse_unknown_settings("events", events_source, settings)

    bucket_url = config.pop("bucket_url", None) or configured("sources.events.bucket_url")
    if bucket_url and "://" not in bucket_url:
        folder = Path(bucket_url) if Path(bucket_url).is_absolute() else settings.project_dir / bucket_url
        if not folder.is_dir():  # a mistyped folder would load nothing and look like a quiet day
            raise ConfigError(f"events: no folder {folder} (sources.events.bucket_url, SOURCES__EVENTS__BUCKET_URL)")
        bucket_url = str(folder)
    elif not bucket_url and not events_dir(settings.data_dir).is_dir():
        log.warning(
            "events: no folder %s, so no events to load: `harbor demo create` writes the demo's there; "
            "HARBOR_DATA_DIR moves it, sources.events.bucket_url names your own",
            events_dir(settings.data_dir),
            extra={"source": "events"},
        )
    return run_source(
        "events",
        settings,
        lambda extracted_at, tally: events_source(
            bucket_url=bucket_url or str(events_dir(settings.data_dir)),
            extracted_at=extracted_at,
            tally=tally,
            **config,
        ),
        full_refresh=full_refresh,
    )


INGESTERS: dict[str, Callable[..., IngestResult]] = {"shop": ingest_shop, "events": ingest_events}


def ingest_fx(settings: Settings, *, full_refresh: bool = False, **config) -> IngestResult:
    """Needs the API's base URL: `base_url=` or SOURCES__FX__BASE_URL (the CLI starts the demo API otherwise)."""
    from ingestion.sources.fx import fx_source

    refuse_unknown_settings("fx", fx_source, settings)
    base_url = config.pop("base_url", None) or configured("sources.fx.base_url")
    if not base_url:
        raise ConfigError("fx: no API base URL; set SOURCES__FX__BASE_URL (or [sources.fx] base_url)")
    return run_source(
        "fx",
        settings,
        lambda extracted_at, tally: fx_source(
            base_url=base_url, extracted_at=extracted_at, tally=tally, full_refresh=full_refresh, **config
        ),
        full_refresh=full_refresh,
    )


INGESTERS["fx"] = ingest_fx
