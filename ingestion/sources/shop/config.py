"""The shop source's settings: their defaults, the checks of the table options (which need no database: a
mistyped key would otherwise be ignored), and `SourceConfigError`, which every part of the source raises for a
setting that does not fit the database it points at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ingestion.settings import ConfigError

DEFAULT_CURSOR = "updated_at"
DEFAULT_LAG_SECONDS = 3600
ALL_TABLES = "*"
TABLE_OPTION_KEYS = ("primary_key", "cursor_column", "lag_seconds")


class SourceConfigError(ConfigError):
    """The source's configuration does not match the database it points at."""


def _table_options(table_options: Any) -> dict[str, dict]:
    """`table_options` checked: a mapping of table to a mapping of TABLE_OPTION_KEYS. A mistyped key
    (`primary_keys`, `cursor_colum`) would otherwise be ignored, and the table loaded as if it were not there."""
    setting = "sources.shop.table_options (SOURCES__SHOP__TABLE_OPTIONS)"
    allowed = ", ".join(TABLE_OPTION_KEYS)
    if table_options is None:
        return {}
    if not isinstance(table_options, Mapping):
        raise SourceConfigError(f"shop: {setting} must map table names to options ({allowed}), not {table_options!r}")
    options: dict[str, dict] = {}
    for table, value in table_options.items():
        name = f"sources.shop.table_options.{table}"
        if not isinstance(value, Mapping):
            raise SourceConfigError(f"shop: {name} must be a mapping of {allowed}, not {value!r}")
        unknown = sorted(str(key) for key in set(value) - set(TABLE_OPTION_KEYS))
        if unknown:
            raise SourceConfigError(f"shop: {name} has unknown key(s) {', '.join(unknown)}; the keys are {allowed}")
        key = value.get("primary_key")
        if key is not None and not (
            isinstance(key, str) or (isinstance(key, Sequence) and all(isinstance(c, str) for c in key))
        ):
            raise SourceConfigError(f"shop: {name}.primary_key must be a column name or a list of them, not {key!r}")
        cursor = value.get("cursor_column")
        if cursor is not None and not isinstance(cursor, str):
            raise SourceConfigError(f"shop: {name}.cursor_column must be a column name or '', not {cursor!r}")
        options[str(table)] = dict(value)
    return options
