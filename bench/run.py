"""Harbor's benchmark suite (`make bench`): ingestion, transformation, incremental cost and memory, each
measured side by side with a reference on the same data in the same run.

Per scale (order items): fill a fresh PostgreSQL database with the demo shop (bench/fill.py), then
1. ingest: `harbor ingest shop` (default backend: DuckDB's scanner) into a fresh DuckDB file, DuckDB's own
   PostgreSQL scanner copying the same tables into another (the reference; ratio = Harbor's rows/s over the
   reference's), and the connectorx backend into a third (raw tables checked equal to the default's);
2. transform: `dbt run --full-refresh` of the models the plain DuckDB SQL script computes
   (bench/reference_marts.sql: staging, fct_orders, dim_customers) against that script, the marts checked
   equal; and the whole project's `dbt build` for scale;
3. incremental: change 1% of the source rows, then incremental ingest + `dbt build`, as a fraction of the full run;
   then a second 1% change built with the changed test scope (`--vars {test_scope: changed}`);
4. memory: every step runs in a child process that reports its own peak resident memory.
The two like-for-like comparisons (ingest against the scan, `dbt run` against the SQL) run `--repeat` times each,
taking turns at going first, and compare medians.
A table goes to stdout, everything to bench/results/<time>.json with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from ingestion.settings import PROJECT_DIR, Settings, shown_location

# A step's clock starts here, in its own process: only the standard library is loaded yet, so each side pays the
# import of what it needs itself (dlt and Harbor for the ingest, dbt for `dbt run`, DuckDB for both references),
# as a user's `harbor ingest shop` or `duckdb` command does. Heavier modules are imported where they are used.
STARTED = time.monotonic()

# The PostgreSQL server the bench creates its databases on (and drops them after): any database there to log in to.
ADMIN_URL = os.environ.get("HARBOR_BENCH_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RESULTS_DIR = PROJECT_DIR / "bench" / "results"
REFERENCE_SQL = Path(__file__).with_name("reference_marts.sql")
MARTS = {"fct_orders": "order_id", "dim_customers": "customer_id"}
# The marts' columns that say when dbt (re)computed a row, which no other computation can reproduce.
BOOKKEEPING_COLUMNS = {"_loaded_at"}
# Set by `--profile`: the folder where every step's py-spy profile goes.
PROFILE_ENV = "HARBOR_BENCH_PROFILE_DIR"


# ---------------------------------------------------------------------------------------------------------------
# Steps: each runs in a child process (`python -m bench.run --step NAME`) so its peak memory is its own.


def step_harbor_ingest(settings: Settings, started: float) -> dict:
    """`harbor ingest shop` as a user runs it, up to the command's return (the run's record in the warehouse
    included). Reading dlt's trace back afterwards is the bench's bookkeeping, not timed."""
    from ingestion.cli import main as harbor

    if harbor(["ingest", "shop"]) != 0:
        raise RuntimeError("`harbor ingest shop` failed (its message is above)")
    seconds = time.monotonic() - started
    from ingestion.demo.shop import SHOP_TABLES
    from ingestion.pipeline import dlt_step_seconds, make_pipeline

    pipeline = make_pipeline("shop", settings)
    loaded = pipeline.last_trace.last_normalize_info.row_counts
    rows = {table: loaded.get(table, 0) for table in SHOP_TABLES}
    return {
        "rows": sum(rows.values()),
        "rows_per_table": rows,
        "dlt_steps": {step: round(value, 2) for step, value in dlt_step_seconds(pipeline).items()},
        "seconds": seconds,
    }


def step_connectorx_ingest(settings: Settings, started: float) -> dict:
    """The same ingest through dlt's `sql_database` with the connectorx backend (Harbor's default until the
    DuckDB scanner): shows what the backend is worth, and its raw tables are checked equal to the default's."""
    os.environ["SOURCES__SHOP__BACKEND"] = "connectorx"
    return step_harbor_ingest(settings, started)


# What the reference scan reads, from the runner: the libpq URL and the tables (the step imports neither
# SQLAlchemy nor the demo shop to learn them, which DuckDB's own command would not need either).
SCAN_ENV = "HARBOR_BENCH_SCAN"


def step_duckdb_scan(settings: Settings, started: float) -> dict:
    """The reference: DuckDB's own PostgreSQL scanner copies every shop table, create-table-as."""
    import duckdb

    from ingestion.duckdb_extensions import load_postgres_scanner, sql_string

    scan = json.loads(os.environ[SCAN_ENV])
    with duckdb.connect(str(settings.warehouse)) as conn:
        load_postgres_scanner(conn, settings.data_dir / "duckdb_extensions")
        conn.execute(f"attach '{sql_string(scan['url'])}' as pg (type postgres, read_only)")
        conn.execute("create schema if not exists raw_ref")
        for table in scan["tables"]:
            conn.execute(f"create or replace table raw_ref.{table} as select * from pg.public.{table}")
    seconds = time.monotonic() - started
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = {t: conn.execute(f"select count(*) from raw_ref.{t}").fetchone()[0] for t in scan["tables"]}
    return {"rows": sum(rows.values()), "rows_per_table": rows, "seconds": seconds}


def step_dbt(settings: Settings, started: float, *args: str) -> dict:
    from ingestion.transform import run_dbt

    run_dbt(settings, *args)
    seconds = time.monotonic() - started
    if args[0] == "parse":  # writes no run results
        return {"seconds": seconds}
    return {"node_seconds": node_seconds(Path(os.environ["DBT_TARGET_PATH"]) / "run_results.json"), "seconds": seconds}


def node_seconds(run_results: Path) -> dict:
    """Where a dbt invocation spent its time: dbt's own wall time, the sum of node execution times per kind
    (model, test, seed, snapshot; nodes run two at a time) and the five slowest nodes."""
    results = json.loads(run_results.read_text())
    by_kind: dict[str, float] = {}
    for node in results["results"]:
        kind = node["unique_id"].split(".")[0]
        by_kind[kind] = round(by_kind.get(kind, 0.0) + node["execution_time"], 2)
    slowest = sorted(results["results"], key=lambda node: node["execution_time"], reverse=True)[:5]
    return {
        "dbt_elapsed": round(results["elapsed_time"], 2),
        "by_kind": by_kind,
        "slowest": {node["unique_id"]: round(node["execution_time"], 2) for node in slowest},
    }


def step_reference_sql(settings: Settings, started: float) -> dict:
    import duckdb

    with duckdb.connect(str(settings.warehouse)) as conn:
        conn.execute(REFERENCE_SQL.read_text())
    seconds = time.monotonic() - started
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        rows = {m: conn.execute(f"select count(*) from bench_ref.{m}").fetchone()[0] for m in MARTS}
    return {"rows_per_table": rows, "seconds": seconds}


STEPS = {
    "harbor_ingest": step_harbor_ingest,
    "duckdb_scan": step_duckdb_scan,
    "connectorx_ingest": step_connectorx_ingest,
    "dbt_build": lambda s, t: step_dbt(s, t, "build"),
    "dbt_build_full_refresh": lambda s, t: step_dbt(s, t, "build", "--full-refresh"),
    "dbt_build_changed_scope": lambda s, t: step_dbt(s, t, "build", "--vars", "{test_scope: changed}"),
    "dbt_parse_changed_scope": lambda s, t: step_dbt(s, t, "parse", "--vars", "{test_scope: changed}"),
    "dbt_seed": lambda s, t: step_dbt(s, t, "seed"),
    # The reference's models only (staging, intermediate, the two marts), all rebuilt: the like-for-like
    # comparison. (Right after `dbt build` a plain `dbt run` would merge the staging tables instead.)
    "dbt_run": lambda s, t: step_dbt(s, t, "run", "--full-refresh", "--select", *(f"+{mart}" for mart in MARTS)),
    "reference_sql": step_reference_sql,
}


# Settings of the caller's environment that would change what is measured or where it is written (the
# PostgreSQL warehouse instead of the bench's DuckDB files, another dbt target or profile, other shop tables or
# another backend): the steps run without them, and with the project's own dbt profile. Tuning settings (dlt's LOAD__WORKERS, DATA_WRITER__...) pass.
IGNORED_SETTINGS = ("HARBOR_DESTINATION", "HARBOR_TARGET", "HARBOR_PROJECT_DIR", "HARBOR_RUN_ID")
# dbt's own variables too (DBT_FULL_REFRESH=true made every incremental build a full one), but the bench's.
IGNORED_PREFIXES = ("SOURCES__SHOP__", "DESTINATION__", "DBT_")
BENCH_OWN_SETTINGS = ("DBT_TARGET_PATH", "DBT_LOG_PATH", "DBT_PROFILES_DIR", "DBT_SEND_ANONYMOUS_USAGE_STATS")


def ignored_settings(environ: dict[str, str]) -> list[str]:
    return sorted(
        k for k in environ if (k in IGNORED_SETTINGS or k.startswith(IGNORED_PREFIXES)) and k not in BENCH_OWN_SETTINGS
    )


def run_step(name: str, settings: Settings) -> dict:
    """Run one step in a child process; returns its seconds, peak RSS and what the step reported."""
    ignored = set(ignored_settings(dict(os.environ)))
    env = {
        **{key: value for key, value in os.environ.items() if key not in ignored},
        "HARBOR_WAREHOUSE": str(settings.warehouse),
        "HARBOR_DATA_DIR": str(settings.data_dir),
        "SOURCES__SHOP__CREDENTIALS": settings.shop_url,
        "DBT_PROFILES_DIR": str(PROJECT_DIR),
        SCAN_ENV: json.dumps({"url": libpq_url(settings.shop_url), "tables": list(shop_tables())}),
    }
    command = [sys.executable, "-m", "bench.run", "--step", name]
    profile_dir = os.environ.get(PROFILE_ENV)
    if profile_dir:
        command = profiled(command, Path(profile_dir) / f"{settings.warehouse.parent.name}-{name}")
    started = time.monotonic()
    completed = subprocess.run(
        command,
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"bench step {name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return {**step_report(completed.stdout), "wall_seconds": round(seconds, 2)}


def step_report(stdout: str) -> dict:
    """A step's report: its last JSON line (py-spy, when profiling, writes lines of its own after it)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def profiled(command: list[str], stem: Path) -> list[str]:
    """`command` under py-spy, sampling it and its subprocesses (dbt runs in one) into `<stem>-<n>.speedscope.json`
    (open in speedscope.app): where a step's time goes. Sampling slows the step, so its figures are not comparable."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    taken = len(list(stem.parent.glob(f"{stem.name}-*.speedscope.json")))
    output = stem.parent / f"{stem.name}-{taken + 1}.speedscope.json"
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    return [
        py_spy,
        "record",
        "--idle",
        "--subprocesses",
        "--format",
        "speedscope",
        "--output",
        str(output),
        "--",
        *command,
    ]


def _child(name: str) -> None:
    settings = Settings.from_env()
    # dbt's own log lines would break the one-line JSON contract on stdout: send them to stderr.
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        # Each step times itself from STARTED (this process's imports included) to the end of its work, leaving
        # out the bookkeeping after it (counting rows, reading dlt's trace or dbt's run results).
        report = STEPS[name](settings, STARTED)
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
    seconds = report.pop("seconds")
    peak_kib = max(_own_peak_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({**report, "seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}))


def _own_peak_kib() -> int:
    """This process's peak resident memory since it started: VmHWM of its own address space. Not ru_maxrss,
    which Linux carries over from the process that spawned it (the bench runner, itself large after comparing
    marts), so a small step would report the runner's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------------------------------------------------------
# One scale


def bench_scale(
    order_items: int, work_dir: Path, change: float = 0.01, admin_url: str = ADMIN_URL, repeat: int = 3
) -> dict:
    from bench.fill import Scale, change_fraction, fill_shop

    scale_dir = work_dir / f"scale_{order_items}"
    shutil.rmtree(scale_dir, ignore_errors=True)
    os.environ["DBT_TARGET_PATH"] = str(scale_dir / "target")
    os.environ["DBT_LOG_PATH"] = str(scale_dir / "logs")
    result: dict = {"order_items": order_items}
    with scratch_database(admin_url) as url:
        harbor = Settings(PROJECT_DIR, scale_dir / "harbor.duckdb", scale_dir / "data", url)
        reference = Settings(PROJECT_DIR, scale_dir / "reference.duckdb", scale_dir / "data", url)
        connectorx = Settings(PROJECT_DIR, scale_dir / "connectorx.duckdb", scale_dir / "connectorx_data", url)
        started = time.monotonic()
        result["source_rows"] = fill_shop(url, Scale(order_items))
        result["fill_seconds"] = round(time.monotonic() - started, 2)
        total = sum(result["source_rows"].values())
        log(f"[{order_items:,}] filled PostgreSQL: {total:,} rows in {result['fill_seconds']}s")

        ingest, scan = alternated(
            repeat, lambda: run_step("harbor_ingest", fresh(harbor)), lambda: run_step("duckdb_scan", fresh(reference))
        )
        cx_ingest = run_step("connectorx_ingest", connectorx)
        assert ingest["rows"] == scan["rows"] == cx_ingest["rows"] == total, (ingest, scan, cx_ingest, total)
        result["ingest"] = {
            "harbor": ingest,
            "duckdb_scan": scan,
            "connectorx": cx_ingest,
            "ratio": round(scan["seconds"] / ingest["seconds"], 3),
            "ratio_connectorx": round(scan["seconds"] / cx_ingest["seconds"], 3),
        }
        log(
            f"[{order_items:,}] ingest: harbor {ingest['seconds']}s, connectorx {cx_ingest['seconds']}s, "
            f"duckdb scan {scan['seconds']}s"
        )

        # The like-for-like run first: run after the full build, it re-stamped the staging rows (`_staged_at`) under
        # marts it does not rebuild (fct_order_items, fct_payments), and the first incremental build then
        # recomputed those in full. The full build after it rebuilds everything (--full-refresh). The marts read
        # seeds, which `dbt run` does not load: seeded first, untimed (the SQL script reads the same seed tables).
        run_step("dbt_seed", harbor)
        run, ref_sql = alternated(
            repeat, lambda: run_step("dbt_run", harbor), lambda: run_step("reference_sql", harbor)
        )
        result["marts_equal"] = marts_equal(harbor.warehouse)
        build = run_step("dbt_build_full_refresh", harbor)
        result["transform"] = {
            "dbt_build": build,
            "dbt_run": run,
            "reference_sql": ref_sql,
            "ratio_build": round(build["seconds"] / ref_sql["seconds"], 2),
            "ratio_run": round(run["seconds"] / ref_sql["seconds"], 2),
        }
        log(
            f"[{order_items:,}] transform: dbt build {build['seconds']}s, run {run['seconds']}s, SQL {ref_sql['seconds']}s"
        )

        result["changed_rows"] = change_fraction(url, change)
        inc_ingest = run_step("harbor_ingest", harbor)
        read_every_change(inc_ingest, result["changed_rows"])
        inc_build = run_step("dbt_build", harbor)
        inc_cx = run_step("connectorx_ingest", connectorx)
        full = ingest["seconds"] + build["seconds"]
        incremental = inc_ingest["seconds"] + inc_build["seconds"]
        result["incremental"] = {
            "change_fraction": change,
            "ingest": inc_ingest,
            "dbt_build": inc_build,
            "fraction_of_full": round(incremental / full, 3),
            "ingest_fraction_of_full": round(inc_ingest["seconds"] / ingest["seconds"], 3),
            "build_fraction_of_full": round(inc_build["seconds"] / build["seconds"], 3),
            "connectorx_ingest": inc_cx,
        }
        log(f"[{order_items:,}] incremental: ingest {inc_ingest['seconds']}s, build {inc_build['seconds']}s")
        result["marts_equal_after_change"] = marts_equal_after_rebuild(harbor)
        result["connectorx_raw_equal"] = raw_equal(harbor.warehouse, connectorx.warehouse)

        # A second change of the same size, built with the changed test scope (README "Test scope").
        result["changed_rows_second"] = change_fraction(url, change, tick=2)
        # Untimed: other vars than the last invocation's make dbt parse the whole project again (about 5 s), which
        # a team always building with the same scope does not pay.
        run_step("dbt_parse_changed_scope", harbor)
        scoped_ingest = run_step("harbor_ingest", harbor)
        read_every_change(scoped_ingest, result["changed_rows_second"])
        scoped_build = run_step("dbt_build_changed_scope", harbor)
        result["incremental_changed_scope"] = {
            "ingest": scoped_ingest,
            "dbt_build": scoped_build,
            "fraction_of_full": round((scoped_ingest["seconds"] + scoped_build["seconds"]) / full, 3),
            "build_fraction_of_full": round(scoped_build["seconds"] / build["seconds"], 3),
        }
        log(
            f"[{order_items:,}] incremental, changed test scope: ingest {scoped_ingest['seconds']}s, "
            f"build {scoped_build['seconds']}s"
        )
        result["marts_equal_after_second_change"] = marts_equal_after_rebuild(harbor)
    return result


def read_every_change(ingest: dict, changed_rows: dict[str, int]) -> None:
    """An incremental ingest reads at least every row the change touched (the lag window adds re-reads): the marts
    are compared with SQL over the same raw tables, so an ingest that missed changes would pass that check."""
    missed = {t: (ingest["rows_per_table"].get(t, 0), n) for t, n in changed_rows.items()}
    missed = {t: counts for t, counts in missed.items() if counts[0] < counts[1]}
    if missed:
        raise AssertionError(
            "the incremental ingest read fewer rows than were changed: "
            + ", ".join(f"{t} {read} of {changed}" for t, (read, changed) in sorted(missed.items()))
        )


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the admin URL's server (its URL, password included), dropped after whatever
    happened; a drop that fails is a warning naming the database, not an error hiding the one before it."""
    import sqlalchemy as sa

    from ingestion.demo.shop import engine_for

    database = f"harbor_bench_{uuid.uuid4().hex[:8]}"
    admin = engine_for(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{database}"'))
        yield sa.make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{database}" with (force)'))
        except sa.exc.SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            log(f"bench: could not drop the database {database} ({reason}): drop it by hand")
        admin.dispose()


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (and DuckDB's scanner) takes it, password included."""
    import sqlalchemy as sa

    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def shop_tables() -> tuple[str, ...]:
    from ingestion.demo.shop import SHOP_TABLES

    return tuple(SHOP_TABLES)


def alternated(repeat: int, harbor: Callable[[], dict], reference: Callable[[], dict]) -> tuple[dict, dict]:
    """Measures Harbor's step and its reference `repeat` times each, taking turns at going first (Harbor in the
    first round, the reference in the second, ...): whichever runs first after another step finds the caches
    colder (PostgreSQL's buffers, the page cache, DuckDB's first query in a process), and one run of each
    varied by 10-20% at 1M. Returns each side's median run (`median_run`)."""
    harbor_runs: list[dict] = []
    reference_runs: list[dict] = []
    for round_number in range(repeat):
        pair = ((harbor, harbor_runs), (reference, reference_runs))
        for step, runs in pair if round_number % 2 == 0 else reversed(pair):
            runs.append(step())
    return median_run(harbor_runs), median_run(reference_runs)


def median_run(runs: list[dict]) -> dict:
    """The report of the run with the median time (the faster of the middle two when there is an even number),
    with every run's seconds in `runs_seconds` and the highest peak memory of them all: a figure of memory is
    a bound, so it is the worst run's."""
    by_time = sorted(runs, key=lambda run: run["seconds"])
    report = dict(by_time[(len(by_time) - 1) // 2])
    report["runs_seconds"] = [run["seconds"] for run in runs]
    report["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    return report


def fresh(settings: Settings) -> Settings:
    """`settings` with its warehouse file deleted, so the next `harbor ingest` is a first load again (Harbor then
    drops the pipeline's local state itself, README "How the data flows")."""
    for path in (settings.warehouse, settings.warehouse.with_name(settings.warehouse.name + ".wal")):
        path.unlink(missing_ok=True)
    return settings


def marts_equal(warehouse: Path) -> bool:
    """dbt's marts and the plain-SQL ones hold the same rows (symmetric difference empty) on every column of
    dbt's but its bookkeeping ones (BOOKKEEPING_COLUMNS): a column the reference does not compute is an error,
    not a column left unchecked."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for mart in MARTS:
            names = [row[0] for row in conn.execute(f"describe marts.{mart}").fetchall()]
            computed = {row[0] for row in conn.execute(f"describe bench_ref.{mart}").fetchall()}
            unchecked = set(names) - computed - BOOKKEEPING_COLUMNS
            if unchecked:
                raise ValueError(f"bench/reference_marts.sql does not compute {mart}'s {', '.join(sorted(unchecked))}")
            columns = ", ".join(f'"{name}"' for name in names if name not in BOOKKEEPING_COLUMNS)
            (diff,) = conn.execute(
                f"select count(*) from ((select {columns} from marts.{mart} except all "
                f"select {columns} from bench_ref.{mart}) union all (select {columns} from bench_ref.{mart} "
                f"except all select {columns} from marts.{mart}))"
            ).fetchone()
            if diff:
                return False
    return True


def raw_equal(warehouse: Path, other: Path) -> bool:
    """Both extracts left the same source rows in raw_shop (the columns of the shop's own tables)."""
    import duckdb

    from ingestion.demo.shop import SHOP_TABLES
    from ingestion.demo.shop import metadata as shop_metadata

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        conn.execute(f"attach '{other}' as other (read_only)")
        for table in SHOP_TABLES:
            columns = ", ".join(c.name for c in shop_metadata.tables[table].columns)
            (diff,) = conn.execute(
                f"select count(*) from ((select {columns} from raw_shop.{table} except all "
                f"select {columns} from other.raw_shop.{table}) union all (select {columns} from "
                f"other.raw_shop.{table} except all select {columns} from raw_shop.{table}))"
            ).fetchone()
            if diff:
                return False
    return True


def marts_equal_after_rebuild(settings: Settings) -> bool:
    run_step("reference_sql", settings)
    return marts_equal(settings.warehouse)


# ---------------------------------------------------------------------------------------------------------------
# The suite


def machine(postgres: str) -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": postgres,
        "versions": {
            p: metadata.version(p) for p in ("dlt", "duckdb", "dbt-core", "dbt-duckdb", "pyarrow", "sqlalchemy")
        },
    }


def commit() -> str | None:
    """The commit measured (`-dirty` with uncommitted changes), for `bench.trend`; None outside a git checkout."""
    completed = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=PROJECT_DIR, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or None


def check_server(admin_url: str) -> str:
    """The server's version, once it is known the bench may create its databases there; ValueError otherwise."""
    import sqlalchemy as sa

    from ingestion.demo.shop import engine_for

    engine = engine_for(admin_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("show server_version")).scalar_one()
            may_create = conn.execute(
                sa.text("select rolcreatedb or rolsuper from pg_roles where rolname = current_user")
            ).scalar_one()
    finally:
        engine.dispose()
    if not may_create:
        raise ValueError("its role may not create databases (CREATEDB), which the bench does at every scale")
    return version


def table(results: list[dict]) -> str:
    columns = (
        ("order items", 12),
        ("src rows", 10),
        ("harbor s", 9),
        ("h rows/s", 9),
        ("scan s", 7),
        ("scan r/s", 9),
        ("ratio", 6),
        ("cx s", 7),
        ("cx", 5),
        ("dbt s", 6),
        ("SQL s", 6),
        ("x SQL", 6),
        ("build s", 8),
        ("inc %", 6),
        ("scoped", 7),
        ("RSS MiB", 8),
        ("inc RSS", 8),
        ("equal", 5),
    )
    head = " ".join(f"{name:>{width}}" for name, width in columns)
    lines = [head, "-" * len(head)]
    for r in results:
        rows = sum(r["source_rows"].values())
        h, cx, s = r["ingest"]["harbor"], r["ingest"]["connectorx"], r["ingest"]["duckdb_scan"]
        t, inc = r["transform"], r["incremental"]
        equal = all(
            r[check]
            for check in (
                "marts_equal",
                "marts_equal_after_change",
                "marts_equal_after_second_change",
                "connectorx_raw_equal",
            )
        )
        values = (
            f"{r['order_items']:,}",
            f"{rows:,}",
            f"{h['seconds']:.1f}",
            f"{rows / h['seconds']:,.0f}",
            f"{s['seconds']:.1f}",
            f"{rows / s['seconds']:,.0f}",
            f"{r['ingest']['ratio']:.2f}",
            f"{cx['seconds']:.1f}",
            f"{r['ingest']['ratio_connectorx']:.2f}",
            f"{t['dbt_run']['seconds']:.1f}",
            f"{t['reference_sql']['seconds']:.1f}",
            f"{t['ratio_run']:.2f}",
            f"{t['dbt_build']['seconds']:.1f}",
            f"{100 * inc['fraction_of_full']:.1f}%",
            f"{100 * r['incremental_changed_scope']['fraction_of_full']:.1f}%",
            f"{h['peak_rss_mib']:.0f}",
            f"{max(inc['ingest']['peak_rss_mib'], r['incremental_changed_scope']['ingest']['peak_rss_mib']):.0f}",
            "yes" if equal else "NO",
        )
        lines.append(" ".join(f"{v:>{width}}" for v, (_, width) in zip(values, columns, strict=True)))
    return "\n".join(lines)


def _scale(text: str) -> int:
    # The smallest scale measured to run through; at 0 the demo shop is all but empty and `dbt run` fails.
    value = int(text)
    if value < 100:
        raise argparse.ArgumentTypeError(f"a scale is at least 100 order items, not {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"the change is a fraction in (0, 1], not {value}")
    return value


def _repeat(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--repeat is at least 1, not {value}")
    return value


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--scales", type=_scale, nargs="+", default=[100_000, 1_000_000], help="order items (at least 100)"
    )
    parser.add_argument(
        "--change", type=_fraction, default=0.01, help="fraction of rows changed before the incremental run"
    )
    parser.add_argument(
        "--repeat",
        type=_repeat,
        default=3,
        help="runs of Harbor's ingest and of the DuckDB scan, and of `dbt run` and the plain SQL, taking turns at "
        "going first; the medians are compared (default: %(default)s)",
    )
    parser.add_argument("--work-dir", type=Path, default=RESULTS_DIR / "work", help="warehouses (deleted after)")
    parser.add_argument(
        "--admin-url",
        default=ADMIN_URL,
        help="PostgreSQL server to create the bench databases on (env HARBOR_BENCH_ADMIN_URL; default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the warehouses")
    parser.add_argument(
        "--profile", action="store_true", help="sample every step with py-spy (slower: figures not comparable)"
    )
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        _child(args.step)
        return 0

    if args.profile:
        os.environ[PROFILE_ENV] = str(RESULTS_DIR / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        log(f"profiles of every step go to {os.environ[PROFILE_ENV]}")
    # Before minutes of work: a server the bench cannot reach or log in to is one clear line, not a traceback.
    import sqlalchemy as sa

    try:
        server = check_server(args.admin_url)
    except (ValueError, sa.exc.SQLAlchemyError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        log(f"bench: cannot use PostgreSQL at {shown_location(args.admin_url)}: {reason}")
        return 2
    log(f"PostgreSQL {server} at {shown_location(args.admin_url)}")
    if ignored := ignored_settings(dict(os.environ)):
        log(f"bench: the steps run without {', '.join(ignored)} (they would change what is measured)")
    work_dir = args.work_dir.resolve()  # the steps run in the project directory
    output = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "profiled": args.profile,
        "repeat": args.repeat,
        "machine": machine(server),
        "results": [],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    try:
        for scale in args.scales:
            try:
                output["results"].append(bench_scale(scale, work_dir, args.change, args.admin_url, args.repeat))
            except BaseException as error:  # interrupted too: what the finished scales measured is kept
                output["failed"] = {"order_items": scale, "error": f"{type(error).__name__}: {error}"[:4000]}
                raise
            finally:
                # Saved after every scale: a failure at 10M keeps the figures of the scales before it.
                path.write_text(json.dumps(output, indent=2, default=str) + "\n")
                if not args.keep:
                    shutil.rmtree(work_dir / f"scale_{scale}", ignore_errors=True)
    finally:
        if output["results"]:  # the scales that finished are printed when a later one fails too
            print(table(output["results"]))
            print(LEGEND.format(repeat=args.repeat, change=args.change))
        print(f"details: {path}")
    return 0


LEGEND = (
    "ratio = Harbor's ingest (`harbor ingest shop`, default backend) over DuckDB's own PostgreSQL scan, in rows/s, "
    "each timed from its process's start (imports included); medians of {repeat} runs each, taking turns, as are "
    "dbt s and SQL s; cx = one run of the connectorx backend (after those, on warm caches) over the scan's median; "
    "dbt s = `dbt run --full-refresh` of the reference's models, x SQL = that over the plain SQL script; build s = "
    "the whole project's `dbt build` (models, seeds, snapshots, tests); inc % = incremental ingest + dbt build after "
    "a {change:.0%} change, of the full run (the median first ingest + one full-refresh build); scoped = the same "
    "after a second change, built with --vars '{{test_scope: changed}}'; RSS = Harbor ingest's peak, inc RSS = the "
    "same for the incremental ingests; equal = marts equal to the SQL's, raw tables equal across backends"
)


if __name__ == "__main__":
    sys.exit(main())
