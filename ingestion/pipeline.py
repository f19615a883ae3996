"""Runs dlt pipelines into the warehouse and reports what each table received."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import dlt
from dlt.common.destination import Destination

from ingestion.settings import Settings
from ingestion.sources.shop import shop_source

# Arrow backends skip dlt's `_dlt_load_id` unless asked; every raw row must carry it.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

RAW_DATASETS = {"shop": "raw_shop"}


@dataclass
class IngestResult:
    source: str
    load_id: str | None
    rows_extracted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows_extracted.values())


def make_pipeline(source: str, settings: Settings) -> dlt.Pipeline:
    name = f"harbor_{source}"
    if not settings.warehouse.exists():
        # dlt trusts its local state over an empty destination: with the warehouse gone, that state would
        # make the incremental cursor skip every row already loaded once. Start from scratch instead.
        shutil.rmtree(settings.pipelines_dir / name, ignore_errors=True)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    destination = warehouse_destination(settings)
    if destination.destination_name == "postgres":
        # Separate local state: the same source loaded into another warehouse starts from its own cursor.
        name = f"{name}_postgres"
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(settings.pipelines_dir),
        destination=destination,
        dataset_name=RAW_DATASETS[source],
        progress="log" if os.environ.get("HARBOR_PROGRESS") else None,
    )


def postgres_warehouse_url() -> str:
    """The PostgreSQL warehouse from the same HARBOR_PG_* variables dbt's `pg` target reads."""
    env = os.environ.get
    user, password = env("HARBOR_PG_USER", "postgres"), env("HARBOR_PG_PASSWORD", "")
    # Always user:password: dlt requires a password even for trust auth, where an empty one is fine.
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return (
        f"postgresql://{auth}@{env('HARBOR_PG_HOST', '127.0.0.1')}:{env('HARBOR_PG_PORT', '5432')}"
        f"/{env('HARBOR_PG_DATABASE', 'harbor')}"
    )


def warehouse_destination(settings: Settings) -> Destination:
    """DuckDB (the file in settings) unless HARBOR_DESTINATION=postgres."""
    kind = os.environ.get("HARBOR_DESTINATION", "duckdb").lower()
    if kind == "postgres":
        return dlt.destinations.postgres(postgres_warehouse_url())
    if kind != "duckdb":
        raise ValueError(f"HARBOR_DESTINATION must be duckdb or postgres, not {kind!r}")
    return dlt.destinations.duckdb(str(settings.warehouse))


def ingest_shop(settings: Settings, *, full_refresh: bool = False) -> IngestResult:
    pipeline = make_pipeline("shop", settings)
    started = time.monotonic()
    source = shop_source(credentials=settings.shop_url, extracted_at=datetime.now(UTC))
    info = pipeline.run(source, refresh="drop_sources" if full_refresh else None)
    info.raise_on_failed_jobs()
    normalize = pipeline.last_trace.last_normalize_info
    counts = {t: n for t, n in (normalize.row_counts if normalize else {}).items() if not t.startswith("_dlt")}
    return IngestResult(
        source="shop",
        load_id=info.loads_ids[-1] if info.loads_ids else None,
        rows_extracted={t: counts.get(t, 0) for t in source.resources},
        seconds=time.monotonic() - started,
    )
