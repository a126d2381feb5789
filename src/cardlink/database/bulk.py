"""Bulk INSERT of many rows with values converted once, straight to the driver's form.

SQLAlchemy's ``connection.execute(table.insert(), rows)`` runs every value of every
row through the column types' bind processors and builds a parameter dict per row;
for imports of millions of rows that work outweighs the database's own.
``insert_rows`` converts each column with one small function chosen per column
type, then hands the driver a single ``executemany`` (a ``COPY`` on PostgreSQL),
on the caller's connection and in its transaction. Values are stored exactly as
the column types store them (UUID hex or native, naive UTC timestamps with
microseconds, enum values). Tables with JSON columns, or an unknown driver, take
SQLAlchemy's path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, Float, Integer, String, Table
from sqlalchemy.engine import Connection

from .driver import wrapped_error
from .types import GUID, UTCDateTime, naive_utc, to_uuid

Convert = Callable[[Any], Any]
_UTC = timezone.utc
_combine = datetime.combine


def _text_time(value: datetime | None) -> str | None:
    """Naive UTC text with microseconds: what SQLite stores (SQLAlchemy's DATETIME writes
    this), and what MySQL's DATETIME(6) reads without PyMySQL escaping a datetime."""
    if value is None:
        return None
    if value.__class__ is datetime and value.tzinfo is _UTC:  # already UTC: drop the zone
        return _combine(value, value.time()).isoformat(" ", "microseconds")
    return naive_utc(value).isoformat(" ", "microseconds")


def _server_time(value: datetime | None) -> datetime | None:
    return None if value is None else naive_utc(value)


def _remembering_last(convert: Convert) -> Convert:
    """``convert`` that reuses its last result for the same object (rows share UUIDs, times)."""
    last: tuple[Any, Any] = (None, None)

    def convert_value(value: Any) -> Any:
        nonlocal last
        seen, found = last
        if value is seen and value is not None:
            return found
        found = convert(value)
        last = (value, found)
        return found

    return convert_value


def _converter(column_type: Any, dialect_name: str) -> Convert | bool | None:
    """The conversion for one column: a function, None (value as is), or False (unsupported)."""
    if isinstance(column_type, GUID):
        if dialect_name == "postgresql":
            return lambda value: None if value is None else to_uuid(value)
        return _remembering_last(lambda value: None if value is None else to_uuid(value).hex)
    if isinstance(column_type, UTCDateTime):
        text_time = dialect_name in ("sqlite", "mysql")
        return _remembering_last(_text_time if text_time else _server_time)
    if isinstance(column_type, JSON):
        return False
    if isinstance(column_type, Enum):
        return lambda value: (
            None if value is None else str(value.value) if isinstance(value, enum.Enum) else value
        )
    if isinstance(column_type, String | Integer | Float | Boolean):
        return None
    return False


def _driver(connection: Connection) -> str | None:
    """'sqlite', 'mysql' or 'postgresql' when the fast path knows the driver, else None."""
    dialect = connection.dialect
    if dialect.name == "sqlite" and dialect.driver == "pysqlite":
        return "sqlite"
    if dialect.name in ("mysql", "mariadb") and dialect.driver == "pymysql":
        return "mysql"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "postgresql"
    return None


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts of model values, all with the same keys) into ``table``."""
    if not rows:
        return
    names = list(rows[0])
    driver = _driver(connection)
    converters = [_converter(table.c[name].type, driver or "") for name in names]
    if driver is None or any(convert is False for convert in converters):
        connection.execute(table.insert(), rows)
        return
    steps = [(index, convert) for index, convert in enumerate(converters) if convert]
    pick = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    values = []
    for row in rows:
        record = list(pick(row))
        for index, convert in steps:
            record[index] = convert(record[index])  # type: ignore[operator]
        values.append(record)
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    if driver == "postgresql":
        copy_rows(connection, f"COPY {quote(table.name)} ({columns}) FROM STDIN", values)
        return
    mark = "?" if driver == "sqlite" else "%s"
    marks = ", ".join([mark] * len(names))
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})",
        [tuple(record) for record in values],
    )


def copy_rows(connection: Connection, sql: str, records: Iterable[Sequence[Any]]) -> None:
    """Run ``COPY ... FROM STDIN`` with ``records`` through psycopg, in the connection's
    current transaction."""
    driver = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            write_row = copy.write_row
            for record in records:
                write_row(record)
    except connection.dialect.loaded_dbapi.Error as error:
        # The exception classes an execute() would raise, for translated_errors().
        raise wrapped_error(connection, sql, None, error) from error


__all__ = ["copy_rows", "insert_rows"]
