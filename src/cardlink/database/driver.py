"""Statements run on the DBAPI cursor of a SQLAlchemy connection, for the hot paths.

SQLAlchemy builds an execution context and a result object for every statement.
For the few statements this layer runs on every unit of work or read (SQLite's
``BEGIN IMMEDIATE``, a session's logs) that costs more than the database does.
These helpers run them on the connection's DBAPI cursor - SQLAlchemy's documented
way to reach the driver - inside the connection's transaction, and keep what an
execute would do: a driver error is raised wrapped in SQLAlchemy's exception
class for it, and a connection found lost is invalidated so the pool replaces it.

Whenever something watches statements on the engine (cursor or error event
listeners, SQL logging through ``echo`` or the ``sqlalchemy.engine`` logger) they
go through ``exec_driver_sql`` instead, so every listener and log line sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from ._sa_internals import connection_may_have_listeners

Description = Sequence[Sequence[Any]]


def execute(connection: Connection, sql: str) -> None:
    """Run a statement without parameters or result rows (``BEGIN IMMEDIATE``)."""
    if statements_observed(connection):
        connection.exec_driver_sql(sql)
        return
    _run(connection, sql, (), fetch=False)


def fetch_all(
    connection: Connection, sql: str, parameters: Any
) -> tuple[Description, Sequence[Any]]:
    """Run a SELECT in dialect form: (the cursor's description, all rows as driver values)."""
    if statements_observed(connection):
        result = connection.exec_driver_sql(sql, parameters)
        description = result.cursor.description
        return description, result.all()
    return _run(connection, sql, parameters, fetch=True)


def statements_observed(connection: Connection) -> bool:
    """Whether a listener or a logger expects to see each statement run on ``connection``."""
    engine = connection.engine
    dialect_events = connection.dialect.dispatch  # where engine-level error hooks live
    engine_events = engine.dispatch
    if (
        dialect_events.handle_error
        or dialect_events.do_execute
        or engine_events.before_cursor_execute
        or engine_events.after_cursor_execute
        or engine.logger.isEnabledFor(logging.INFO)
    ):
        return True
    # Listeners on this one connection (or the Connection class) set the flag SQLAlchemy
    # itself checks, so its own listeners are looked into only when there may be some.
    if connection_may_have_listeners(connection):
        events = connection.dispatch
        return bool(events.before_cursor_execute or events.after_cursor_execute)
    return False


def _run(
    connection: Connection, sql: str, parameters: Any, *, fetch: bool
) -> tuple[Description, Sequence[Any]]:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, parameters)
        found = (cursor.description, cursor.fetchall()) if fetch else ((), [])
    except connection.dialect.loaded_dbapi.Error as error:
        with suppress(Exception):  # a dead connection may refuse even this; report the first
            cursor.close()
        raise wrapped_error(connection, sql, parameters, error) from error
    cursor.close()
    return found


def wrapped_error(
    connection: Connection, sql: str, parameters: Any, error: Any
) -> sa_exc.StatementError:
    """The driver's ``error`` (a DBAPI ``Error``) as SQLAlchemy raises it.

    A lost connection is invalidated, so the pool replaces it.
    """
    dialect = connection.dialect
    lost = dialect.is_disconnect(error, connection.connection.driver_connection, None)
    if lost:
        connection.invalidate(error)
    return sa_exc.DBAPIError.instance(
        sql,
        parameters,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
    )
