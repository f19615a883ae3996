"""Rows per second of the shop (SQL) source into DuckDB, per backend, on TPC-H data in PostgreSQL.

    .venv/bin/python -m bench.backends --scale 0.1 --backends pyarrow connectorx

Creates a throw-away PostgreSQL database (TPC-H tables from DuckDB's tpch extension), loads `lineitem`
and `orders` through `shop_source` with each backend into a temporary warehouse, prints rows/s, drops it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.run import ADMIN_URL, check_server, scratch_database
from ingestion.settings import shown_location


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="TPC-H scale factor (0.1 = 600k lineitem rows)")
    parser.add_argument("--backends", nargs="+", default=["duckdb", "connectorx", "pyarrow"])
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL server (env HARBOR_BENCH_ADMIN_URL)")
    args = parser.parse_args(argv)

    import sqlalchemy as sa

    from ingestion.demo.tpch import make_tpch
    from ingestion.pipeline import ingest_shop
    from ingestion.settings import PROJECT_DIR, Settings

    try:
        check_server(args.admin_url)
    except (ValueError, sa.exc.SQLAlchemyError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        print(f"bench: cannot use PostgreSQL at {shown_location(args.admin_url)}: {reason}", file=sys.stderr)
        return 2
    with scratch_database(args.admin_url) as url:
        started = time.monotonic()
        counts = make_tpch(url, "tpch", scale=args.scale)
        print(f"generated TPC-H sf={args.scale} in PostgreSQL in {time.monotonic() - started:.1f}s: {counts}")
        os.environ["SOURCES__SHOP__SCHEMA"] = "tpch"
        os.environ["SOURCES__SHOP__TABLE_NAMES"] = '["lineitem", "orders"]'
        os.environ["SOURCES__SHOP__TABLE_OPTIONS"] = '{"lineitem": {"primary_key": ["l_orderkey", "l_linenumber"]}}'
        for backend in args.backends:
            os.environ["SOURCES__SHOP__BACKEND"] = backend
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(PROJECT_DIR, Path(tmp) / "bench.duckdb", Path(tmp) / "data", url)
                result = ingest_shop(settings)
                rows = sum(c.loaded for c in result.tables.values())
                steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.step_seconds.items())
                print(
                    f"{backend:<11} {rows:>9} rows in {result.seconds:6.1f}s = {rows / result.seconds:>9,.0f} rows/s"
                    f" ({steps})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
