"""Harbor's observability: run history in the warehouse, the Elementary report, alerts, metrics and logs.

One run id (env `HARBOR_RUN_ID`) ties an ingestion run, the dbt invocations it triggers and the report together.
"""

from ingestion.observability.history import (
    IngestionRun,
    TableLoad,
    current_run_id,
    record_ingest_result,
    record_ingestion_run,
)
from ingestion.observability.warehouse import Warehouse, open_warehouse

__all__ = [
    "IngestionRun",
    "TableLoad",
    "Warehouse",
    "current_run_id",
    "open_warehouse",
    "record_ingest_result",
    "record_ingestion_run",
]
