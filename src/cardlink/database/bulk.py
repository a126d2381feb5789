"""Bulk INSERT of rows already in the driver's form: one ``executemany``, or ``COPY`` on PostgreSQL.

SQLAlchemy's ``connection.execute(table.insert(), rows)`` runs every value of every
row through the column types' bind processors and builds a parameter dict per row;
for log batches and imports of millions of rows that costs several times the
database's own work. ``cardlink.database.codec`` checks and converts whole columns
once; this module hands the driver the resulting records, on the caller's
connection and in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from .driver import wrapped_error


def write_records(
    connection: Connection,
    driver: str,
    table: Table,
    names: Sequence[str],
    records: list[tuple[Any, ...]],
) -> None:
    """INSERT ``records`` (values in ``names`` order, in the driver's form) into ``table``.

    ``driver`` is ``"postgresql"`` (psycopg COPY), ``"sqlite"`` or ``"mysql"``.
    """
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    if driver == "postgresql":
        copy_rows(connection, f"COPY {quote(table.name)} ({columns}) FROM STDIN", records)
        return
    mark = "?" if driver == "sqlite" else "%s"
    marks = ", ".join([mark] * len(names))
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})", records
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


__all__ = ["copy_rows", "write_records"]
