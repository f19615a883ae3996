"""Ingestion runs in the warehouse, beside dbt's history: one row per run and table in
`observability.ingestion_runs`, keyed by the run id that dbt's invocations carry as `job_run_id`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from ingestion.observability.warehouse import SCHEMA, Warehouse, connected
from ingestion.runlog import run_id as current_run_id
from ingestion.settings import masked_passwords

log = logging.getLogger("harbor.observability")

# Same columns as macros/observability/history.sql (harbor_observability_ingestion_columns).
INGESTION_COLUMNS: dict[str, str] = {
    "run_id": "text",
    "source_name": "text",
    "table_name": "text",
    "load_id": "text",
    "pipeline_name": "text",
    "status": "text",
    "rows_extracted": "bigint",
    "rows_loaded": "bigint",
    "rows_quarantined": "bigint",
    "started_at": "timestamp",
    "completed_at": "timestamp",
    "duration_seconds": "double precision",
    "error": "text",
    "created_at": "timestamp",
}


@dataclass(frozen=True)
class TableLoad:
    table_name: str
    rows_extracted: int
    rows_loaded: int | None = None  # None: same as extracted
    rows_quarantined: int = 0


@dataclass
class IngestionRun:
    source_name: str
    started_at: datetime
    completed_at: datetime
    tables: list[TableLoad] = field(default_factory=list)
    load_id: str | None = None
    pipeline_name: str | None = None
    status: str = "success"  # success | error
    error: str | None = None
    run_id: str = field(default_factory=current_run_id)

    @property
    def duration_seconds(self) -> float:
        return (self.completed_at - self.started_at).total_seconds()

    def rows(self) -> list[dict[str, object]]:
        # A run that failed before any table was known still leaves one row behind.
        tables = self.tables or [TableLoad(table_name="*", rows_extracted=0, rows_loaded=0)]
        created = _naive_utc(datetime.now(UTC))
        return [
            {
                "run_id": self.run_id,
                "source_name": self.source_name,
                "table_name": t.table_name,
                "load_id": self.load_id,
                "pipeline_name": self.pipeline_name,
                "status": self.status,
                "rows_extracted": t.rows_extracted,
                "rows_loaded": t.rows_extracted - t.rows_quarantined if t.rows_loaded is None else t.rows_loaded,
                "rows_quarantined": t.rows_quarantined,
                "started_at": _naive_utc(self.started_at),
                "completed_at": _naive_utc(self.completed_at),
                "duration_seconds": self.duration_seconds,
                # The alert and the report show it: a URL quoted in it keeps no password.
                "error": None if self.error is None else masked_passwords(self.error),
                "created_at": created,
            }
            for t in tables
        ]


def ensure_tables(warehouse: Warehouse) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in INGESTION_COLUMNS.items())
    warehouse.execute(f"create schema if not exists {SCHEMA}")
    warehouse.execute(f"create table if not exists {SCHEMA}.ingestion_runs ({columns})")


def record_ingestion_run(warehouse: Warehouse | str | Path, run: IngestionRun) -> int:
    """Append one row per table of `run`; returns the number of rows written. Accepts an open warehouse,
    a DuckDB path or a PostgreSQL URL (run it after the load: DuckDB allows one writer at a time)."""
    if not hasattr(warehouse, "execute"):
        with connected(warehouse) as opened:  # type: ignore[arg-type]
            return record_ingestion_run(opened, run)
    ensure_tables(warehouse)  # type: ignore[arg-type]
    rows = run.rows()
    names = list(INGESTION_COLUMNS)
    warehouse.execute(  # type: ignore[union-attr]
        f"insert into {SCHEMA}.ingestion_runs ({', '.join(names)}) values ({', '.join(':' + n for n in names)})",
        rows,
    )
    log.info(
        "ingestion run recorded",
        extra={
            "source": run.source_name,
            "load_id": run.load_id,
            "status": run.status,
            "rows_extracted": sum(int(r["rows_extracted"] or 0) for r in rows),  # type: ignore[call-overload]
            "duration_seconds": run.duration_seconds,
        },
    )
    return len(rows)


class IngestResultLike(Protocol):
    source: str
    load_id: str | None
    rows_extracted: Mapping[str, int]
    seconds: float


def record_ingest_result(
    warehouse: Warehouse | str | Path,
    result: IngestResultLike,
    *,
    quarantined: Mapping[str, int] | None = None,
    loaded: Mapping[str, int] | None = None,
) -> int:
    """Record what `ingestion.pipeline` returned (any object with source, load_id, rows_extracted, seconds)."""
    completed = datetime.now(UTC)
    quarantined = quarantined or getattr(result, "rows_quarantined", None) or {}
    loaded = loaded or getattr(result, "rows_loaded", None) or {}
    run = IngestionRun(
        source_name=result.source,
        started_at=completed - timedelta(seconds=result.seconds),
        completed_at=completed,
        load_id=result.load_id,
        pipeline_name=getattr(result, "pipeline_name", None) or f"harbor_{result.source}",
        tables=[
            TableLoad(table, rows, loaded.get(table), quarantined.get(table, 0))
            for table, rows in result.rows_extracted.items()
        ],
    )
    return record_ingestion_run(warehouse, run)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
