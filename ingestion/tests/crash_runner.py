"""Runs one ingestion in this process and SIGKILLs it at a chosen point (used by test_crashes.py).

python crash_runner.py SOURCE POINT, with POINT one of:
  extract         while rows are being written to the extract files
  normalize       after normalize wrote its first load file, before the others
  load-before     when the first data load job starts, nothing committed in the warehouse yet
  load-after      right after the first data table's load job committed in the warehouse, before dlt records it
"""

from __future__ import annotations

import os
import signal
import sys

import dlt
from dlt.common.data_writers.buffered import BufferedDataWriter
from dlt.common.destination.client import RunnableLoadJob
from dlt.normalize.items_normalizers.arrow import ArrowItemsNormalizer
from dlt.normalize.items_normalizers.jsonl import JsonLItemsNormalizer

from ingestion.pipeline import INGESTERS
from ingestion.settings import Settings

phase = {"name": "extract", "writes": 0}


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    write = BufferedDataWriter.write_data_item
    normalize = dlt.Pipeline.normalize
    run_managed = RunnableLoadJob.run_managed

    def counting_write(self, item, columns):
        result = write(self, item, columns)
        phase["writes"] += 1
        if point == "extract" == phase["name"] and phase["writes"] >= 2:
            die()
        return result

    def counting_normalizer(original):
        def call(self, *args, **kwargs):
            phase["files"] = phase.get("files", 0) + 1
            if point == "normalize" and phase["files"] >= 2:
                die()
            return original(self, *args, **kwargs)

        return call

    def tracking_normalize(self, *args, **kwargs):
        phase["name"], phase["writes"] = "normalize", 0
        try:
            return normalize(self, *args, **kwargs)
        finally:
            phase["name"] = "load"

    def crashing_run(self, *args, **kwargs):
        data_table = not self.job_file_info().table_name.startswith("_dlt")
        if point == "load-before" and data_table:
            die()
        result = run_managed(self, *args, **kwargs)
        if point == "load-after" and data_table and self.state() == "completed":
            die()
        return result

    for normalizer in (ArrowItemsNormalizer, JsonLItemsNormalizer):
        normalizer.__call__ = counting_normalizer(normalizer.__call__)

    BufferedDataWriter.write_data_item = counting_write
    dlt.Pipeline.normalize = tracking_normalize
    RunnableLoadJob.run_managed = crashing_run


if __name__ == "__main__":
    source, point = sys.argv[1], sys.argv[2]
    arm(point)
    INGESTERS[source](Settings.from_env())
    print("finished without crashing")
