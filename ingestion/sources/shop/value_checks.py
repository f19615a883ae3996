"""Values checked against their column's type as SQLAlchemy reads them: a `sql_table` query adapter, used on
SQLite alone, which keeps any value in any column. A value that does not fit is read as None and its row marked
INVALID with the reason, for `invalid_rows` to send to the dead letters instead of failing the whole source.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from ingestion.sources.postgres_scan import INVALID


class _BadSourceValues:
    """The values of one row that its column's type could not read (SQLite keeps any value in any column:
    `'abc'` in a NUMERIC, `'2026-13-45'` in a DATETIME). Each column's reader records the failure here and
    gives None; the row's INVALID column, read last, hands the reasons over, so the row goes to the dead letters
    instead of failing every table of the run with a message naming none."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.reasons: list[str] = []

    def checked(self, column: sa.ColumnElement) -> sa.ColumnElement:
        bad = self

        class Checked(sa.types.TypeDecorator):
            impl = sa.types.NullType
            cache_ok = False

            def load_dialect_impl(self, dialect):
                return dialect.type_descriptor(column.type)

            def result_processor(self, dialect, coltype):
                read = dialect.type_descriptor(column.type).result_processor(dialect, coltype)
                if read is None and not _range_checked(column.type):
                    return None

                def process(value):
                    try:
                        result = read(value) if read is not None else value
                        _check_fits(result, column.type)
                        return result
                    except (ValueError, TypeError, ArithmeticError) as error:
                        bad.reasons.append(
                            f"{bad.table}.{column.name}: {value!r} is not a valid {column.type} ({error}): a bad "
                            "value in the source"
                        )
                        return None

                return process

        return sa.type_coerce(column, Checked()).label(column.name)

    def invalid(self) -> sa.ColumnElement:
        bad = self

        class Reasons(sa.types.TypeDecorator):
            impl = sa.types.String
            cache_ok = False

            def process_result_value(self, value, dialect):
                reasons, bad.reasons = bad.reasons, []
                return "; ".join(reasons) or None

        return sa.type_coerce(sa.null(), Reasons()).label(INVALID)


def _range_checked(column_type: sa.types.TypeEngine) -> bool:
    """Types whose values `_check_fits` checks: SQLite reads them with no converter of SQLAlchemy's, so text or a
    fraction in an INTEGER column, or too many digits for a NUMERIC, reached pyarrow, which failed the whole
    source naming no column (or cut 3.7 to 3)."""
    return isinstance(column_type, sa.Integer) or (
        isinstance(column_type, sa.Numeric) and getattr(column_type, "precision", None) is not None
    )


def _check_fits(value: object, column_type: sa.types.TypeEngine) -> None:
    """ValueError when `value` is not one `column_type` holds: an INTEGER that is not a whole number, a NUMERIC
    with more digits before the point than its precision less its scale allows."""
    if value is None:
        return
    if isinstance(column_type, sa.Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not a whole number")
    elif isinstance(column_type, sa.Numeric) and column_type.precision is not None:
        whole_digits = column_type.precision - (column_type.scale or 0)
        if abs(Decimal(str(value))) >= Decimal(10) ** whole_digits:
            raise ValueError(f"more than {whole_digits} digits before the point")


def _checking_values(table: str):
    """A `sql_table` query adapter: each column read through `_BadSourceValues`, which routes a row holding a
    value its column's type cannot read to the dead letters. The row's INVALID column comes last: SQLAlchemy reads
    a row's values in order, so it sees what the others recorded."""

    def adapt(query, table_object, incremental=None, engine=None):
        bad = _BadSourceValues(table)
        return query.with_only_columns(*(bad.checked(c) for c in query.selected_columns), bad.invalid())

    return adapt
