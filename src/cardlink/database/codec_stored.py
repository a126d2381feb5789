"""Checked values in the form the driver stores, and the multi-row INSERT that writes them.

One converter per column (UUIDs as hex, timestamps as naive UTC text, enums as
their values), compiled once per table; rows then go through the driver's own
executemany, or ``COPY`` on PostgreSQL (``bulk.write_records``), which all read
these text forms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

from sqlalchemy import JSON, Column, Enum, Table
from sqlalchemy.engine import Connection

from .bulk import OpenCopy, write_records
from .types import GUID, UTCDateTime, naive_utc_text

ColumnConvert = Callable[[list[Any]], list[Any]]


def _by_runs(convert: Callable[[Any], Any]) -> ColumnConvert:
    """A column converter that converts each value but ``None``, and a run of one object
    (a session's rows share their UUID, a batch its ``created_at``) only once."""

    def converted(values: list[Any]) -> list[Any]:
        stored: list[Any] = []
        append = stored.append
        seen: Any = None
        found: Any = None
        for value in values:
            if value is not seen:
                seen, found = value, None if value is None else convert(value)
            append(found)
        return stored

    return converted


#: UUIDs as their 32 hex digits, the text every driver path writes (PostgreSQL's COPY too).
_uuid_hexes = _by_runs(attrgetter("hex"))
#: UTC timestamps as naive text (``naive_utc_text``), which SQLite stores, MySQL's
#: DATETIME(6) and PostgreSQL's COPY read.
_naive_utc_texts = _by_runs(naive_utc_text)


def _enum_values(column_type: Enum) -> ColumnConvert:
    """Enum members as their values' text; looked up in one pass when every value is a member."""
    members = column_type.enum_class or ()
    stored: dict[Any, Any] = {None: None}
    stored.update((member, str(member.value)) for member in members)

    def convert(values: list[Any]) -> list[Any]:
        try:
            return list(map(stored.__getitem__, values))
        except (KeyError, TypeError):
            return [None if value is None else str(value.value) for value in values]

    return convert


def _driver_kind(dialect_name: str, driver: str) -> str | None:
    """'sqlite', 'mysql' or 'postgresql' when the driver's own executemany/COPY is known."""
    if dialect_name == "sqlite" and driver == "pysqlite":
        return "sqlite"
    if dialect_name in ("mysql", "mariadb") and driver == "pymysql":
        return "mysql"
    if dialect_name == "postgresql" and driver == "psycopg":
        return "postgresql"
    return None


class StoredForm:
    """Checked values -> the values the driver stores, one converter per column, for one dialect.

    ``driver`` is None when the bulk path does not know the driver, or when a JSON
    column is written (SQLAlchemy's own JSON serialiser does it): the rows then go
    through ``connection.execute(table.insert(), rows)``.
    """

    def __init__(self, table: Table, driver: str | None) -> None:
        self.table = table
        self.driver = driver
        self.converters: dict[str, ColumnConvert | None] = {}
        for column in table.columns:
            try:
                self.converters[str(column.name)] = _converter(column)
            except LookupError:
                self.converters[str(column.name)] = None
                self.driver = None

    def convert(self, name: str, values: list[Any]) -> list[Any]:
        convert = self.converters[name]
        if convert is None or self.driver is None:
            return values
        return convert(values)


def _converter(column: Column[Any]) -> ColumnConvert | None:
    """The conversion of one column's values: a function, or None (values as they are).
    Raises LookupError for a column the driver path does not write (JSON: SQLAlchemy's
    serialiser does)."""
    column_type = column.type
    if isinstance(column_type, GUID):
        return _uuid_hexes
    if isinstance(column_type, UTCDateTime):
        return _naive_utc_texts
    if isinstance(column_type, Enum):
        return _enum_values(column_type)
    if isinstance(column_type, JSON):
        raise LookupError(column.name)
    return None


@functools.cache
def stored_form(table: Table, dialect_name: str, driver: str) -> StoredForm:
    """The stored form of ``table`` for one dialect and driver, compiled on first use."""
    return StoredForm(table, _driver_kind(dialect_name, driver))


def insert_columns(
    connection: Connection,
    table: Table,
    columns: dict[str, list[Any]],
    *,
    leave_open: bool = False,
) -> OpenCopy | None:
    """INSERT rows given as checked columns (equal lengths) in one executemany or COPY.

    With ``leave_open``, a PostgreSQL COPY is returned before it ends, for the caller
    to close before its next statement (``bulk.OpenCopy``); otherwise None, rows stored.
    """
    names = list(columns)
    if not names or not columns[names[0]]:
        return None
    form = stored_form(table, connection.dialect.name, connection.dialect.driver)
    if form.driver is None:
        count = len(columns[names[0]])
        rows = [{name: columns[name][index] for name in names} for index in range(count)]
        connection.execute(table.insert(), rows)
        return None
    stored = [form.convert(name, columns[name]) for name in names]
    records = list(zip(*stored, strict=True))
    return write_records(connection, form.driver, table, names, records, leave_open=leave_open)


def insert_rows(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    leave_open: bool = False,
) -> OpenCopy | None:
    """INSERT ``rows`` (dicts of checked values, all with the same keys) into ``table``;
    ``leave_open`` as for ``insert_columns``."""
    if not rows:
        return None
    names = list(rows[0])
    columns = {name: [row[name] for row in rows] for name in names}
    return insert_columns(connection, table, columns, leave_open=leave_open)


def default_value(column: Column[Any]) -> Any:
    """The value the column's Python-side default gives (``uuid4()``, ``utcnow()``, a constant)."""
    default = column.default
    if default is None:
        return None
    if getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[attr-defined]
    return getattr(default, "arg", None)


def columns_of(rows: Sequence[dict[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    """Rows given as dicts, as one list per column name (absent keys are None)."""
    return {name: [row.get(name) for row in rows] for name in names}


__all__ = [
    "StoredForm",
    "columns_of",
    "default_value",
    "insert_columns",
    "insert_rows",
    "stored_form",
]
