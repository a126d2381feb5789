"""Bulk INSERT of rows already in the driver's form: one ``executemany``, or ``COPY`` on PostgreSQL.

SQLAlchemy's ``connection.execute(table.insert(), rows)`` runs every value of every
row through the column types' bind processors and builds a parameter dict per row;
for log batches and imports of millions of rows that costs several times the
database's own work. ``cardlink.database.codec`` checks and converts whole columns
once; this module hands the driver the resulting records, on the caller's
connection and in its transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
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
    *,
    leave_open: bool = False,
) -> OpenCopy | None:
    """INSERT ``records`` (values in ``names`` order, in the driver's form) into ``table``.

    ``driver`` is ``"postgresql"`` (psycopg COPY), ``"sqlite"`` or ``"mysql"``. With
    ``leave_open`` the PostgreSQL COPY is returned while it ends in the background
    (see ``OpenCopy``; the caller closes it); otherwise, and on the other drivers, the
    rows are stored on return.
    """
    quote = connection.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    if driver == "postgresql":
        copy = OpenCopy(connection, f"COPY {quote(table.name)} ({columns}) FROM STDIN", records)
        if leave_open:
            copy.end_in_background()
            return copy
        copy.close()
        return None
    mark = "?" if driver == "sqlite" else "%s"
    marks = ", ".join([mark] * len(names))
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})", records
    )
    return None


def copy_rows(connection: Connection, sql: str, records: Iterable[Sequence[Any]]) -> None:
    """Run ``COPY ... FROM STDIN`` with ``records`` through psycopg, in the connection's
    current transaction."""
    OpenCopy(connection, sql, records).close()


class OpenCopy:
    """A psycopg ``COPY ... FROM STDIN`` with every record written, ending in the background.

    The server stores the rows as they arrive and checks their foreign keys once the
    COPY ends; ``end_in_background`` ends it from a helper thread, so a caller with
    more batches to come prepares the next one meanwhile. ``close`` waits for the end
    and raises what the server refused. psycopg holds the connection until the COPY
    has ended: any other statement on it waits for that.
    """

    def __init__(self, connection: Connection, sql: str, records: Iterable[Sequence[Any]]):
        self._connection = connection
        self._sql = sql
        self._ending = ExitStack()
        self._ender: threading.Thread | None = None
        self._failure: BaseException | None = None
        driver = connection.connection.driver_connection
        try:
            cursor = self._ending.enter_context(driver.cursor())  # type: ignore[union-attr]
            copy = self._ending.enter_context(cursor.copy(sql))
            write_row = copy.write_row
            for record in records:
                write_row(record)
        except self._connection.dialect.loaded_dbapi.Error as error:
            self._ending.__exit__(type(error), error, error.__traceback__)
            raise self._translated(error) from error
        except BaseException as error:
            self._ending.__exit__(type(error), error, error.__traceback__)
            raise

    def end_in_background(self) -> None:
        """Start ending the COPY (its last rows, then the server's checks) in a helper thread."""
        self._ender = threading.Thread(target=self._end, name="cardlink-copy-end", daemon=True)
        self._ender.start()

    def _end(self) -> None:
        try:
            self._ending.close()
        except BaseException as error:  # raised by close(), in the caller's thread
            self._failure = error

    def close(self) -> None:
        """End the COPY, or wait for its end, until the server has stored every row; the
        server's refusal of a row raises here."""
        if self._ender is None:
            self._end()
        else:
            self._ender.join()
        failure, self._failure = self._failure, None
        if failure is None:
            return
        if isinstance(failure, self._connection.dialect.loaded_dbapi.Error):
            raise self._translated(failure) from failure
        raise failure

    def _translated(self, error: BaseException) -> BaseException:
        """The exception class an execute() would raise, for translated_errors()."""
        return wrapped_error(self._connection, self._sql, None, error)


__all__ = ["OpenCopy", "copy_rows", "write_records"]
