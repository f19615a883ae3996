"""Metadata columns that every raw row carries, whatever the source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

EXTRACTED_AT = "_extracted_at"
SOURCE = "_source"


def metadata_adder(source_name: str, extracted_at: datetime) -> Callable[[Any], Any]:
    """A dlt map step adding `_extracted_at` and `_source` to arrow tables and to dict rows alike."""

    def add_metadata(item: Any) -> Any:
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        if isinstance(item, pa.Table):
            rows = item.num_rows
            # pa.repeat builds the column without a Python object per row
            item = _replace_column(
                item, EXTRACTED_AT, pa.repeat(pa.scalar(extracted_at, pa.timestamp("us", "UTC")), rows)
            )
            return _replace_column(item, SOURCE, pa.repeat(pa.scalar(source_name, pa.string()), rows))
        if isinstance(item, dict):
            return {**item, EXTRACTED_AT: extracted_at, SOURCE: source_name}
        return item

    return add_metadata


def _replace_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        table = table.drop_columns([name])
    return table.append_column(name, values)
