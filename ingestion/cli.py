"""The `harbor` command line: a thin layer over the library the tests call directly."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from dlt.common.configuration.exceptions import ConfigurationException, ConfigValueCannotBeCoercedException

from ingestion import pipeline, runlog
from ingestion.demo import shop as demo_shop
from ingestion.pipeline import INGESTERS, IngestResult, SourceUnavailable
from ingestion.quality import coverage_summary, dbt_target_dir, quality_summary
from ingestion.settings import (
    ConfigError,
    Settings,
    checked_log_level,
    described_setting_error,
    masked_passwords,
    shown_location,
)
from ingestion.transform import (
    EXIT_INTERRUPTED,
    DbtFailed,
    check_target_exists,
    dbt_executable,
    default_target,
    run_dbt,
    target_engine,
)

SOURCES = tuple(INGESTERS)
MAX_REPORT_DAYS = 36_500
MAX_SCALE = 1_000  # 100k customers, 300k orders
REPORT_FILE = "harbor-report.html"


class ReportUnavailable(RuntimeError):
    """The warehouse cannot be read for a report: locked by a writer, unreachable, or without run history."""


class WarehouseInUse(RuntimeError):
    """Another process holds the DuckDB warehouse open for writing."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    # `harbor build` hands everything after it to dbt, options included (`--select`, `--threads`, `--vars`):
    # argparse leaves what it does not know to `parse_known_args`; any other command refuses it.
    args, dbt_args = parser.parse_known_args(argv)
    if args.command in ("build", "docs"):
        args.dbt_args = dbt_args
    elif dbt_args:
        parser.error(f"unrecognized arguments: {' '.join(dbt_args)}")
    runlog.run_id()  # one run id for this command and the dbt runs it starts (env HARBOR_RUN_ID)
    problem = runlog.log_format_problem()
    if problem:
        print(f"harbor: warning: {problem}", file=sys.stderr)
    json_logs = runlog.json_logs_requested() or getattr(args, "json_logs", False)
    if json_logs:
        runlog.configure(json_logs=True)
        os.environ.setdefault("DBT_LOG_FORMAT", "json")  # dbt's own JSON lines; its invocation_id maps to the run id

    try:
        checked_log_level()
        return args.handler(args, Settings.from_env())
    except ConfigurationException as error:  # a dlt setting of the wrong type (`RUNTIME__...=abc`), a TOML typo
        # Every line: a TOML syntax error says where (`... at line 63 col 13`) on the lines after the first.
        if isinstance(error, ConfigValueCannotBeCoercedException):
            said = described_setting_error(error)
        else:
            said = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        _say(f"harbor: error: a setting is wrong: {masked_passwords(said)}", exit_code=EXIT_BAD_CONFIG)
        return EXIT_BAD_CONFIG
    except (FileExistsError, FileNotFoundError, ValueError, DbtFailed, ReportUnavailable, WarehouseInUse) as error:
        # Masked: a location or URL quoted in a message may hold a password (the messages say where, not what).
        code = 2 if not isinstance(error, DbtFailed) else error.returncode
        _say(f"harbor: error: {masked_passwords(str(error))}", exit_code=code)
        return code
    except sa.exc.SQLAlchemyError as error:  # a demo shop URL that does not parse, or a database not there
        _say(
            f"harbor: error: cannot use the shop database: {masked_passwords(_first_line(error))}",
            exit_code=EXIT_BAD_CONFIG,
        )
        return EXIT_BAD_CONFIG
    except pipeline.WarehouseUnreachable as error:  # an outage, as a source that cannot be reached is
        _say(f"harbor: error: {masked_passwords(str(error))}", exit_code=EXIT_SOURCE_UNAVAILABLE)
        return EXIT_SOURCE_UNAVAILABLE
    except KeyboardInterrupt:
        # What was loading is rolled back or left pending, and the next run finishes it: no traceback.
        _say("harbor: interrupted; run the command again to finish", exit_code=EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


def _say(text: str, level: int = logging.ERROR, **extra: object) -> None:
    """A line on stderr for the person at the terminal, or, with JSON logs on, for the log collector: a JSON line
    like the others then, so stderr stays JSON lines to the last one, which says why the command stopped."""
    if runlog.json_logs_on():
        logging.getLogger(runlog.LOGGER).log(level, text, extra=extra)
    else:
        print(text, file=sys.stderr)


def _first_line(error: BaseException) -> str:
    """An error's message for one line: a database driver's own error rather than SQLAlchemy's wrapping of it."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Parser(argparse.ArgumentParser):
    """Options in full only (subcommands' parsers are of this class too): argparse took `--full` for
    `--full-refresh`, so a typo ran a destructive reload."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harbor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the demo shop source").add_subparsers(dest="demo_command", required=True)
    create = demo.add_parser("create", help="create the demo shop database with ~90 days of history")
    create.add_argument(
        "--scale", type=_scale, default=1.0, help=f"size factor (1 = 100 customers, 300 orders; at most {MAX_SCALE:g})"
    )
    create.add_argument("--seed", type=int, default=42, help="random seed; same seed and scale, same rows")
    existing = create.add_mutually_exclusive_group()
    existing.add_argument("--replace", action="store_true", help="drop an existing demo shop first")
    existing.add_argument("--if-missing", action="store_true", help="leave an existing demo shop as it is")
    _add_url(create)
    create.set_defaults(handler=_demo_create)

    advance = demo.add_parser("advance", help="move the demo shop forward in time, one day per tick")
    advance.add_argument(
        "--ticks", type=_at_least_one("ticks"), default=1, help="days to move forward (default: %(default)s)"
    )
    _add_url(advance)
    advance.set_defaults(handler=_demo_advance)

    dirty = demo.add_parser(
        "dirty",
        help="plant one defect of each kind in a copy of the warehouse, rebuild and test it: is each one caught?",
    )
    dirty.set_defaults(handler=_demo_dirty)

    run = demo.add_parser(
        "run",
        help="the whole chain: create or advance the shop, ingest, source freshness, dbt build, quality score, docs, "
        "report",
    )
    run.add_argument("--scale", type=_scale, default=1.0, help="size factor of a new shop (an existing one advances)")
    run.add_argument("--seed", type=int, default=42, help="random seed of a new shop (an existing one advances)")
    run.add_argument("--no-docs", action="store_true", help="skip `dbt docs generate`")
    _add_url(run)
    run.set_defaults(handler=_demo_run)

    ingest = commands.add_parser("ingest", help="load sources into the warehouse's raw datasets")
    ingest.add_argument(
        "sources", nargs="*", metavar="SOURCE", help=f"one or more of {', '.join(SOURCES)} (default: all)"
    )
    ingest.add_argument("--full-refresh", action="store_true", help="drop the raw tables and state, load all")
    ingest.add_argument(
        "--json-logs", action="store_true", help="log JSON lines (with the run id, HARBOR_RUN_ID) to stderr"
    )
    ingest.set_defaults(handler=_ingest)

    build = commands.add_parser(
        "build",
        help="dbt build against the warehouse (extra args go to dbt)",
        usage="harbor build [dbt build options, e.g. --select fct_orders+ --threads 2]",
    )
    build.set_defaults(handler=_build)

    docs = commands.add_parser(
        "docs",
        help="dbt docs as one file, target/static_index.html (extra args go to `dbt docs generate`)",
        usage="harbor docs [dbt docs generate options, e.g. --target pg]",
    )
    docs.set_defaults(handler=_docs)

    report = commands.add_parser("report", help="the observability report: one HTML file (Elementary's UI)")
    # A string, not a Path: Path drops the trailing slash that says `new-folder/` is a folder.
    report.add_argument(
        "--output", help="a file (name.html), or a folder for harbor-report.html (default: reports/harbor-report.html)"
    )
    # 0 used to mean all history; a million days reached before year 1 and failed inside the report
    report.add_argument(
        "--days-back",
        type=_at_least_one("days", most=MAX_REPORT_DAYS),
        default=7,
        help=f"history to show, in days (1 to {MAX_REPORT_DAYS}; default: %(default)s)",
    )
    report.add_argument("--warehouse", help="DuckDB file or postgresql+psycopg2:// URL (default: HARBOR_WAREHOUSE)")
    report.set_defaults(handler=_report)
    return parser


def _scale(text: str) -> float:
    """An argparse type: a demo shop's size factor, more than 0 and at most MAX_SCALE (1e9 filled memory for
    25 minutes; the benchmarks fill bigger shops with set-based SQL: bench/fill.py)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, not {text!r}") from None
    if not 0 < value <= MAX_SCALE:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"more than 0 and at most {MAX_SCALE:g}, not {text}")
    return value


def _at_least_one(what: str, most: int | None = None):
    """An argparse type: a whole number of `what`, 1 or more, and at most `most` (argparse names the type's
    function in its message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number of {what}, not {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"at least 1 {what.rstrip('s')}, not {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"at most {most} {what}, not {value}")
        return value

    return parse


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="SQLAlchemy URL of the shop database (default: sources.shop.credentials, the URL or its fields, "
        "or shop.sqlite in HARBOR_DATA_DIR); "
        "PostgreSQL as postgresql+psycopg2://user@host:5432/db",
    )


def _shop_url(args: argparse.Namespace, settings: Settings) -> str:
    url = args.url or settings.shop_url
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return url


def _demo_create(args: argparse.Namespace, settings: Settings) -> int:
    if args.if_missing and _demo_shop_exists(_shop_url(args, settings)):
        print(f"demo shop at {demo_shop.safe_url(_shop_url(args, settings))} exists: left as it is")
        return 0
    summary = demo_shop.create_shop(
        _shop_url(args, settings), seed=args.seed, scale=args.scale, replace=args.replace, events_to=settings.data_dir
    )
    print(f"created demo shop at {demo_shop.safe_url(_shop_url(args, settings))}: {_counts(summary.inserted)}")
    return 0


def _demo_advance(args: argparse.Namespace, settings: Settings) -> int:
    for summary in demo_shop.advance_shop(_shop_url(args, settings), ticks=args.ticks, events_to=settings.data_dir):
        print(
            f"tick {summary.tick} ({summary.day:%Y-%m-%d}): inserted {_counts(summary.inserted)}; "
            f"updated {_counts(summary.updated)}"
        )
    return 0


def _demo_shop_exists(url: str) -> bool:
    engine = demo_shop.engine_for(url)
    try:
        return demo_shop.read_clock(engine) is not None
    finally:
        engine.dispose()


def _refuse_a_split_warehouse(settings: Settings) -> None:
    """`demo run` loads the destination and builds the target: HARBOR_TARGET=pg without HARBOR_DESTINATION=postgres
    loaded the new day into DuckDB and built PostgreSQL from the day before's raw data, exit 0."""
    target, destination = default_target(), pipeline.destination_kind()
    check_target_exists(settings, target)
    builds = target_engine(settings, target)
    if builds is not None and builds != destination:
        raise ConfigError(
            f"HARBOR_TARGET={target} builds {builds} but ingestion loads {destination} (HARBOR_DESTINATION): "
            f"set HARBOR_DESTINATION={builds}, or unset HARBOR_TARGET (the target follows the destination)"
        )


def _demo_run(args: argparse.Namespace, settings: Settings) -> int:
    _refuse_a_split_warehouse(settings)
    pipeline.refuse_unknown_source_sections(settings)  # these two before the shop moves a day forward
    try:
        _refuse_a_warehouse_it_cannot_load(settings)
    except pipeline.WarehouseUnreachable:
        _report_what_failed(settings)  # an outage of a scheduled run is what the alert is for
        raise
    url = _shop_url(args, settings)
    if _demo_shop_exists(url):
        _demo_advance(argparse.Namespace(url=url, ticks=1), settings)
    else:
        _demo_create(
            argparse.Namespace(url=url, seed=args.seed, scale=args.scale, replace=False, if_missing=False), settings
        )
    settings = Settings(settings.project_dir, settings.warehouse, settings.data_dir, url)
    runlog.run_id()  # one run id for ingestion and dbt alike
    status = ingest_sources(settings, SOURCES)
    if status:
        _report_what_failed(settings)
        return status
    # Recorded in the run history like the build (the on-run-end hook): the report's freshness section and
    # metrics read it. A stale source is the report's to show, not a reason to stop the demo.
    if run_dbt(settings, "source", "freshness", check=False):
        print("harbor: warning: a source is stale, or its freshness cannot be checked: the report says which")
    build_started = time.time()
    build_code = _dbt_build(settings, default_target())
    _print_quality(settings, since=build_started)
    if build_code != 0:
        _report_what_failed(settings, build_exit_code=build_code)
        raise DbtFailed(["build"], build_code)
    if not args.no_docs:
        run_dbt(settings, "docs", "generate")
    print(f"warehouse: {shown_location(_history_location(settings))}")
    if not args.no_docs:
        print(
            f"docs:      {dbt_target_dir(settings.project_dir) / 'index.html'} (serve with `{_dbt_command(settings)} docs serve`)"
        )
    _report_and_alert(settings)
    return 0


def _demo_dirty(args: argparse.Namespace, settings: Settings) -> int:
    """Dirty mode on a copy of the warehouse (`<name>-dirty.duckdb`, the warehouse itself untouched): plant the
    defects, `dbt run --full-refresh` (staging re-reads the planted rows) and `dbt test` (a build would skip what
    sits downstream of a failure), then say which tests caught each defect. Exit 0 when every defect made exactly
    its own tests fail or warn (`Dirt.caught_by`) and every other test passed."""
    from ingestion.demo.dirty import apply_dirt, check_dirt, short_test_name
    from ingestion.quality import load_outcomes, summarize

    if default_target() not in ("dev", "ci"):
        raise ValueError("dirty mode plants its defects in a DuckDB warehouse: run it with HARBOR_TARGET=dev")
    if not settings.warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse}: `harbor demo run` makes one")
    copy = settings.warehouse.with_name(f"{settings.warehouse.stem}-dirty.duckdb")
    for suffix in ("", ".wal"):  # a write-ahead log holds what is not checkpointed yet: it goes with the file
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
        if Path(f"{settings.warehouse}{suffix}").exists():
            shutil.copyfile(f"{settings.warehouse}{suffix}", f"{copy}{suffix}")
    dirty = Settings(settings.project_dir, copy, settings.data_dir, settings.shop_url)
    target = dbt_target_dir(settings.project_dir) / "dirty"
    planted = apply_dirt(copy)
    print(f"planted {len(planted)} defects in {copy}")
    run_dbt(dirty, "run", "--full-refresh", "--target-path", str(target))
    run_dbt(dirty, "test", "--target-path", str(target), check=False)
    outcomes = load_outcomes(target)
    report = check_dirt(outcomes, planted)
    print(summarize(outcomes).line())
    status = {outcome.unique_id: outcome.status for outcome in outcomes}
    for dirt in planted:
        caught = report.caught.get(dirt.kind) or []
        names = ", ".join(short_test_name(test) for test in caught) if caught else "NOTHING"
        print(f"  {dirt.kind:<20} {dirt.description}: caught by {names}")
        for missed in report.missed.get(dirt.kind, []):  # one of its tests that did not end as it must
            print(f"  {'':<20} missed: {missed}")
    for test in report.unexplained:
        print(f"  did not pass, with no planted defect to explain it: {short_test_name(test)} ({status[test]})")
    print(f"dirty mode: {'every defect caught, nothing else failed' if report.exact else 'NOT an exact match'}")
    return 0 if report.exact else 1


def _build(args: argparse.Namespace, settings: Settings) -> int:
    """`dbt build` with the options given. On a DuckDB target the warehouse must exist: dbt would create an
    empty file and report every source missing (a mistyped HARBOR_WAREHOUSE looked like a broken project)."""
    options = args.dbt_args
    target = _dbt_target(options)
    _refuse_a_duckdb_warehouse_dbt_cannot_use(settings, target)
    started = time.time()
    code = _dbt_build(settings, target, *options)
    _print_quality(settings, since=started, artifacts=_dbt_artifacts(settings, options))
    if code != 0:
        raise DbtFailed(["build", *options], code)
    if _selected_nothing(options, _dbt_artifacts(settings, options), since=started):
        raise ConfigError(
            "the selection matched no node, so nothing was built (dbt's warning above names the criterion); "
            "check the names in --select / --selector"
        )
    return 0


SELECTION_OPTIONS = ("-s", "--select", "-m", "--models", "--model")
# Selection methods that may rightly select nothing: no change since production, no fresher source, no failure.
STATEFUL_METHODS = ("state:", "source_status:", "result:")


def _selected_nothing(options: list[str], artifacts: Path, since: float) -> bool:
    """A build given a selection that ran no node. dbt only warns and exits 0, so a mistyped model name in a
    scheduled job built nothing and passed. Not for stateful selections, which may rightly be empty, nor for an
    `--exclude` that matches nothing (dbt checks each criterion alone; Harbor only asks whether anything ran), nor
    for `--selector` (its methods are in selectors.yml), nor when dbt wrote no run results (`--no-write-json`)."""
    if not any(_split_option(option)[0] in SELECTION_OPTIONS for option in options):
        return False
    if any(method in option for option in options for method in STATEFUL_METHODS):
        return False
    results = artifacts / "run_results.json"
    if not results.exists() or results.stat().st_mtime < since:
        return False
    return not json.loads(results.read_text()).get("results")


def _docs(args: argparse.Namespace, settings: Settings) -> int:
    """`dbt docs generate --static`: the catalog reads the warehouse, so it must be there and free, as for a build
    (a locked one was a page of traceback from inside dbt)."""
    options = args.dbt_args
    _refuse_a_duckdb_warehouse_dbt_cannot_use(settings, _dbt_target(options))
    run_dbt(settings, "docs", "generate", "--static", *options)
    print(f"docs:      {_dbt_artifacts(settings, options) / 'static_index.html'} (one file: open it in a browser)")
    return 0


def _refuse_a_duckdb_warehouse_dbt_cannot_use(settings: Settings, target: str) -> None:
    """On the DuckDB targets of `harbor ingest`'s warehouse, dbt would create a missing file, empty, and report
    every source missing (a mistyped HARBOR_WAREHOUSE looked like a broken project), or fail deep inside on a file
    another process writes."""
    if target not in ("dev", "ci"):
        return
    if not settings.warehouse.exists():
        raise FileNotFoundError(
            f"no warehouse at {settings.warehouse}: `harbor ingest` (or `harbor demo run`) makes one; "
            "HARBOR_WAREHOUSE names another"
        )
    _refuse_a_warehouse_in_use(settings)


def _dbt_build(settings: Settings, target: str, *options: str) -> int:
    """`dbt build`'s exit code; builds of one PostgreSQL warehouse take turns (`one_build_at_a_time`)."""
    postgres = target_engine(settings, target) == "postgres"
    with pipeline.one_build_at_a_time() if postgres else contextlib.nullcontext():
        return run_dbt(settings, "build", *options, check=False)


def _refuse_a_warehouse_it_cannot_load(settings: Settings) -> None:
    """A warehouse every source would fail on is said once, before any runs: an unknown destination, a DuckDB
    file another process writes, a PostgreSQL database not created yet."""
    if pipeline.destination_kind() == "duckdb":
        _refuse_a_warehouse_in_use(settings)
    else:
        pipeline.check_postgres_warehouse()


def _refuse_a_warehouse_in_use(settings: Settings) -> None:
    """DuckDB lets one process at a time write a file: a run meeting another's lock failed in every source (ingest)
    or deep inside dbt (build, a page of traceback). Said once, up front, naming the process that holds it."""
    if settings.warehouse.is_file() and (connection := _connect_unless_in_use(settings)) is not None:
        connection.close()


def _connect_unless_in_use(settings: Settings) -> duckdb.DuckDBPyConnection | None:
    """A connection to the DuckDB warehouse (a missing file is created); WarehouseInUse when another process holds
    it; None for any other problem with the file, which is the run's own to report."""
    try:
        return duckdb.connect(str(settings.warehouse))
    except duckdb.Error as error:
        cause = _first_line(error)
        if "lock" in cause.lower():
            raise WarehouseInUse(
                f"the warehouse {settings.warehouse} is in use by another process: run again when it is done ({cause})"
            ) from None
        return None


@contextlib.contextmanager
def _warehouse_held(settings: Settings, sources: Sequence[str]) -> Iterator[None]:
    """The checks of `_refuse_a_warehouse_it_cannot_load`; into DuckDB, the warehouse then held open to the block's
    end. Opened and closed by each source's run, it was free between two: another process (a `dbt build`, another
    `harbor ingest`) could take DuckDB's single writer's lock, and the next source failed, the record of the one
    before perhaps unwritten. The sources' connections and their records open the file with the same (default)
    configuration, so DuckDB gives them this connection's database (a read-only one would be refused). Released at
    the block's end: `harbor demo run` then runs dbt, another process."""
    if pipeline.destination_kind() != "duckdb":
        pipeline.check_postgres_warehouse()
        yield
        return
    try:
        pipeline.forget_state_of_a_lost_warehouse(settings, sources)  # before this connection creates the file
    except OSError as error:  # its folder cannot be made: a file in the way, no permission
        raise ConfigError(
            f"the warehouse {settings.warehouse} cannot be created there: {error.strerror} (HARBOR_WAREHOUSE)"
        ) from None
    held = _connect_unless_in_use(settings)
    try:
        yield
    finally:
        if held is not None:
            held.close()  # the last connection: this close checkpoints


# The short options of `dbt build` that take no value: click reads `-xtpg` as `-x -t pg`.
DBT_SHORT_FLAGS = "dfqvVx"


def _split_option(option: str) -> tuple[str, str | None]:
    """The option an argument names and the value attached to it, as dbt's command line (click) reads them:
    `--name=value`; a short option with its value attached (`-sfct_orders`, `-tpg`), after any flags (`-xtpg`)."""
    if option.startswith("--"):
        name, _, value = option.partition("=")
        return name, value if "=" in option else None
    if not option.startswith("-") or len(option) <= 2:
        return option, None
    letters = option[1:].lstrip(DBT_SHORT_FLAGS)
    if not letters:  # flags only (`-xf`)
        return option, None
    return f"-{letters[0]}", letters[1:] or None


def _dbt_option(options: list[str], *names: str) -> str | None:
    """The value of a dbt option among `options` (`--name value`, `--name=value`, `-n value`, `-nvalue`, `-xnvalue`),
    the last one given, as dbt takes it; None when absent."""
    value = None
    for i, option in enumerate(options):
        name, attached = _split_option(option)
        if name not in names:
            continue
        if attached is not None:
            value = attached
        elif i + 1 < len(options):
            value = options[i + 1]
    return value


def _dbt_target(options: list[str]) -> str:
    """The dbt target `options` name (`--target`/`-t`), else the default one."""
    return _dbt_option(options, "--target", "-t") or default_target()


def _dbt_artifacts(settings: Settings, options: list[str]) -> Path:
    """The folder dbt writes its artifacts to under `options`: `--target-path`, relative to the project, else
    dbt's target folder."""
    target_path = _dbt_option(options, "--target-path")
    return settings.project_dir / target_path if target_path else dbt_target_dir(settings.project_dir)


def _dbt_command(settings: Settings) -> str:
    """How to type dbt from the project folder: `.venv/bin/dbt`, as the README writes it, when it is there."""
    executable = Path(dbt_executable())
    try:
        return str(executable.relative_to(settings.project_dir.resolve()))
    except ValueError:
        return str(executable)


def _report_what_failed(settings: Settings, build_exit_code: int | None = None) -> None:
    """A failed demo run still writes the report and sends the alert, which say what failed; the run's own
    failure stays its exit status, so a report that cannot be written is only a warning here."""
    try:
        _report_and_alert(settings, build_exit_code=build_exit_code)
    except (ReportUnavailable, FileNotFoundError) as error:
        _say(f"harbor: no report: {error}", level=logging.WARNING)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    unknown = sorted(set(args.sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    return ingest_sources(settings, tuple(dict.fromkeys(args.sources or SOURCES)), args.full_refresh, args.json_logs)


EXIT_BAD_CONFIG = 2
EXIT_SOURCE_UNAVAILABLE = 3
EXIT_LOAD_FAILED = 4


def ingest_sources(
    settings: Settings, sources: Sequence[str], full_refresh: bool = False, json_logs: bool = False
) -> int:
    """Ingest each source in turn (a failing one does not stop the others); print a closing summary."""
    json_logs = json_logs or runlog.json_logs_requested()
    # Configured first: the warehouse check's retry warnings are log lines too, JSON when asked for.
    log = runlog.configure(json_logs=json_logs, progress_after=pipeline.PROGRESS["period"])
    pipeline.refuse_unknown_source_sections(settings)
    results: list[IngestResult] = []
    failures: list[tuple[str, str, int]] = []
    with _warehouse_held(settings, sources):
        pipeline.PROGRESS["enabled"] = True
        for source in sources:
            started = datetime.now(UTC)
            result, failure = _ingest_one(settings, source, full_refresh, log, json_logs)
            if result is not None:
                results.append(result)
            if failure is not None:
                failures.append(failure)
            # Outside the load's `try`: a load that committed stays a success if only its record cannot be written
            # (and a failed one keeps its exit code if the warehouse, or its setting, is what failed).
            try:
                if result is not None:
                    _record(settings, result)
                else:
                    _record_failure(settings, source, failures[-1][1], started)
            except Exception as error:
                log.warning(
                    f"the run of {source!r} is not recorded in the warehouse: {error}", extra={"source": source}
                )
    _print_summary(results, [source for source, *_ in failures])
    if full_refresh and results:
        # Staging and the incremental marts only ever add and replace keys: rows the new raw tables no longer
        # have (another source database, say) stay there until they are rebuilt too.
        print(
            f"raw data of {', '.join(r.source for r in results)} replaced: rebuild with `harbor build --full-refresh`, "
            "or staging and the marts keep rows the new load no longer has"
        )
    for source, message, code in failures:
        closing = (
            f"harbor: error: {masked_passwords(message)} "
            "(state unchanged: the next run starts where the last good one ended)"
        )
        _say(closing, source=source, exit_code=code)
    return max((code for *_, code in failures), default=0)


def _ingest_one(
    settings: Settings, source: str, full_refresh: bool, log: logging.Logger, json_logs: bool
) -> tuple[IngestResult | None, tuple[str, str, int] | None]:
    """One source's run: its result, or why it failed (the message and the exit code it gives the command)."""
    try:
        with _source_options(source, settings) as options:
            return INGESTERS[source](settings, full_refresh=full_refresh, **options), None
    except SourceUnavailable as error:
        return None, (source, str(error), EXIT_SOURCE_UNAVAILABLE)
    except pipeline.ClockBehindTheWarehouse as error:
        # Not a failed load: nothing was read, and the fix is this machine's clock or a full refresh.
        log.error(str(error), extra={"source": source}, exc_info=json_logs)
        return None, (source, f"source {source!r} cannot run: {error}", EXIT_BAD_CONFIG)
    except pipeline.PendingLoadFailed as error:
        log.error(str(error), extra={"source": source}, exc_info=json_logs)
        return None, (source, f"source {source!r} failed: {error}", EXIT_LOAD_FAILED)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # a Rust panic in a reader (connectorx's PanicException) is no Exception
        if any(isinstance(e, KeyboardInterrupt) for e in pipeline.error_chain(error)):
            # Ctrl-C inside dlt, which wraps it: the run was stopped, not failed, and the next sources wait
            raise KeyboardInterrupt from error
        misconfigured = [e for e in pipeline.error_chain(error) if isinstance(e, ConfigError | ConfigurationException)]
        if misconfigured:
            message = f"source {source!r} cannot run, a setting is wrong: {described_setting_error(misconfigured[0])}"
            code = EXIT_BAD_CONFIG
        else:
            message = f"source {source!r} failed: {_explained(pipeline.root_cause(error), source)}"
            code = EXIT_LOAD_FAILED
        log.error(message, extra={"source": source}, exc_info=json_logs)
        return None, (source, message, code)


@contextlib.contextmanager
def _source_options(source: str, settings: Settings) -> Iterator[dict]:
    """Per-source arguments; for fx without a configured API this serves the demo API meanwhile."""
    if source != "fx" or pipeline.configured("sources.fx.base_url"):
        yield {}
        return
    from ingestion.demo.fx_api import FxApi

    clock = None
    if not demo_shop.missing_sqlite_file(settings.shop_url):
        with contextlib.suppress(Exception):
            engine = demo_shop.engine_for(settings.shop_url)
            clock = demo_shop.read_clock(engine)
            engine.dispose()
    with FxApi(seed=clock.seed if clock else 42, tick=clock.tick if clock else 0) as api:
        yield {"base_url": api.base_url}


def _explained(cause: str, source: str) -> str:
    """The cause, with what to do when it has a known reason a newcomer would not guess."""
    if "offset-naive and offset-aware" in cause:
        # dlt compares the cursor kept in state with the source's: SQLite gives naive timestamps, PostgreSQL aware.
        return (
            f"{cause}: the stored cursor and the source's differ in time zone awareness — did the source's database "
            f"change (SQLite to PostgreSQL, or back)? Load it again with `harbor ingest {source} --full-refresh`, "
            "or into another warehouse (HARBOR_WAREHOUSE)"
        )
    return cause


def _print_summary(results: list[IngestResult], failed: Sequence[str] = ()) -> None:
    if not results and not failed:
        return
    print(f"ingest run {runlog.run_id()}")
    print(f"  {'source.table':<28} {'extracted':>9} {'loaded':>9} {'quarantined':>11} {'seconds':>8}")
    for result in results:
        for table, counts in result.tables.items():
            name = f"{result.source}.{table}"
            print(
                f"  {name:<28} {counts.extracted:>9} {counts.loaded:>9} {counts.quarantined:>11} {result.seconds:>8.1f}"
            )
        if result.resumed_load_ids:
            print(f"  ({result.source}: first finished {len(result.resumed_load_ids)} interrupted load package(s))")
    for source in failed:
        print(f"  {source + '.*':<28} failed: nothing loaded, state unchanged (error on stderr)")


def _print_quality(settings: Settings, since: float, artifacts: Path | None = None) -> None:
    """The quality score of the build started at `since`, from its artifacts (dbt's target folder unless given).
    Printed even when the build failed: that is when the score matters most; but not from an older build's
    results, when dbt stopped before running a node."""
    target = artifacts or dbt_target_dir(settings.project_dir)
    results = target / "run_results.json"
    if not results.exists() or results.stat().st_mtime < since:
        print("quality:   no score (dbt stopped before running any node; its log says why)")
        return
    print(quality_summary(target).line())
    print(coverage_summary(json.loads((target / "manifest.json").read_text())).line())


def _history_location(settings: Settings) -> str | Path:
    """Where `observability.ingestion_runs` lives: beside the raw data and dbt's history, in the destination
    in use (the DuckDB file, or the PostgreSQL warehouse with HARBOR_DESTINATION=postgres), so the report and
    the alert of that warehouse join ingestion and dbt by run id."""
    if pipeline.destination_kind() == "postgres":
        return pipeline.postgres_warehouse_sqlalchemy_url()
    return settings.warehouse


def _record_failure(settings: Settings, source: str, message: str, started: datetime) -> None:
    """A source that failed leaves a row too (status `error` and why), which the alert and the report show."""
    from ingestion.observability.history import IngestionRun, record_ingestion_run

    run = IngestionRun(
        source_name=source,
        started_at=started,
        completed_at=datetime.now(UTC),
        pipeline_name=pipeline.pipeline_name(source),
        status="error",
        error=message,
    )
    record_ingestion_run(_history_location(settings), run)


def _record(settings: Settings, result: IngestResult) -> None:
    """Appends the run to observability.ingestion_runs, under the run id dbt will carry too."""
    from ingestion.observability.history import record_ingest_result

    record_ingest_result(
        _history_location(settings),
        result,
        loaded={table: counts.loaded for table, counts in result.tables.items()},
        quarantined={table: counts.quarantined for table, counts in result.tables.items()},
    )


def _report(args: argparse.Namespace, settings: Settings) -> int:
    _report_and_alert(settings, output=args.output, days_back=args.days_back, warehouse=args.warehouse)
    return 0


def _report_and_alert(
    settings: Settings,
    *,
    output: str | None = None,
    days_back: int = 7,
    warehouse: str | None = None,
    build_exit_code: int | None = None,
) -> None:
    """The report, the metrics beside it and the alert. `output`: a file, or a folder (`reports`, `new-folder/`, `new-folder`).
    `build_exit_code`: `demo run`'s build failed with it, perhaps before dbt recorded anything."""
    from ingestion.observability.alerts import FailedBuild, alert_for_latest_run, send_alert, unrecorded_build_message
    from ingestion.observability.metrics import write_metrics
    from ingestion.observability.report import ReportError, write_report  # elementary is a heavy import
    from ingestion.observability.warehouse import connected

    path = Path(output) if output else settings.project_dir / "reports" / REPORT_FILE
    # A new name without an extension (`--output out`) is a folder to create: written as a file, it held an
    # HTML page with no `.html` that no browser opened as one, and the metrics landed beside it.
    if path.is_dir() or (output or "").endswith(("/", os.sep)) or not (path.exists() or path.suffix):
        path = path / REPORT_FILE
    if path.suffix.lower() not in (".html", ".htm"):  # `--output report.json` held an HTML page
        raise ValueError(f"--output {output}: the report is one HTML file: name it `<name>.html`, or give a folder")
    location = warehouse or _history_location(settings)
    if "://" not in str(location) and not Path(location).exists():
        raise FileNotFoundError(
            f"no warehouse at {shown_location(location)}: `harbor ingest` (or `harbor demo run`) makes one, and `harbor build` "
            "records the history the report reads"
        )
    failed_build = FailedBuild(runlog.run_id(), build_exit_code) if build_exit_code else None
    report = prom = dashboard = None
    unavailable: ReportUnavailable | None = None
    try:
        with connected(location, read_only=True) as history:
            try:
                report = write_report(history, path.resolve(), days_back=days_back)
                prom, dashboard = write_metrics(history, path.resolve().parent)
            except OSError as error:  # the report or metrics cannot be written where asked
                unavailable = ReportUnavailable(f"cannot write the report: {error}")
                unavailable.__cause__ = error
            except (duckdb.Error, sa.exc.SQLAlchemyError, ReportError) as error:
                unavailable = _unreadable(location, error)
            # Whether or not there is a report: a first run whose ingestion failed has no dbt history to report on,
            # and is just what the alert is for.
            alert = alert_for_latest_run(
                history, report_url=report.path.as_uri() if report else None, failed_build=failed_build
            )
    except (duckdb.Error, sa.exc.SQLAlchemyError) as error:
        raise unavailable or _unreadable(location, error) from error
    if report is not None:
        # Elementary's report lists data tests only; a failing unit test is said here, as the alert says it.
        failing_units = sum(p.kind == "unit_test" for p in alert.problems) if alert is not None else 0
        units = f", {failing_units} failing unit test(s), not in the report: see the alert" if failing_units else ""
        print(f"report:    {report.path} ({report.seconds:.1f}s, {len(report.failed_tests)} failing test(s){units})")
    if prom is not None:
        print(f"metrics:   {prom} (Grafana dashboard: {dashboard})")
    if failed_build is not None and alert is not None and alert.invocation_id is None:
        _say(f"harbor: {unrecorded_build_message(failed_build.exit_code)}", level=logging.WARNING)
    if alert is not None and send_alert(alert):
        print(f"alert:     {alert.severity} sent")
    if unavailable is not None:
        raise unavailable


def _unreadable(location: str | Path, error: Exception) -> ReportUnavailable:
    """The warehouse's history cannot be read: its database's error (Elementary's API wraps it in ReportError),
    with a hint where the error's text says why."""
    from ingestion.observability.report import ReportError

    first_line = _first_line(error.__cause__ if isinstance(error, ReportError) and error.__cause__ else error)
    text = first_line.lower()
    if "lock" in text:
        hint = " (another process is writing it: report when it is done)"
    elif "table with name" in text or ("relation" in text and "does not exist" in text):
        hint = " (no `harbor build` has run on it yet, so it has no history to read)"
    else:
        hint = ""
    unreadable = ReportUnavailable(f"cannot report on {shown_location(location)}: {first_line}{hint}")
    unreadable.__cause__ = error
    return unreadable


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {n}" for table, n in counts.items())


if __name__ == "__main__":
    sys.exit(main())
