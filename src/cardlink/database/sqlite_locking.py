"""SQLite transactions in which readers never block writers.

A unit of work begins a plain (deferred) transaction: reading takes no write lock,
so in WAL mode a read - an export, a dashboard, a REPL left open - never delays a
writer. Before its first write the unit of work takes the write lock
(:func:`lock_for_writing`):

- a transaction that has not begun yet begins with ``BEGIN IMMEDIATE``;
- a transaction that has only read so far ends its read snapshot and begins again
  with ``BEGIN IMMEDIATE``. From its first write on, it sees the latest committed
  data, as a unit of work does on PostgreSQL (READ COMMITTED). Upgrading the read
  snapshot in place would fail with "database is locked" as soon as another writer
  had committed meanwhile (SQLite's ``SQLITE_BUSY_SNAPSHOT``), which no wait cures.

``BEGIN IMMEDIATE`` waits for a held write lock up to the busy timeout, so a writer
never fails while moving from reading to writing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, sessionmaker

from . import driver
from .exceptions import translated_errors

#: Marks a Session of a SQLite engine (``sessionmaker(info=...)`` copies it to each session).
SQLITE_SESSION = "cardlink_sqlite"
#: ``connection.info`` keys: whether the open transaction holds the write lock, and the
#: driver's change counter when it began (a change since then means it already writes).
_WRITING = "cardlink_sqlite_writing"
_CHANGES_AT_BEGIN = "cardlink_sqlite_changes_at_begin"

_write_intent: ContextVar[bool] = ContextVar("cardlink_sqlite_write_intent", default=False)


def install(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    """Deferred transactions on ``engine``; the write lock before each session's first write."""

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = _write_intent.get()
        driver.execute(connection, "BEGIN IMMEDIATE" if writing else "BEGIN")
        info = connection.info
        info[_WRITING] = writing
        if not writing:
            info[_CHANGES_AT_BEGIN] = connection.connection.driver_connection.total_changes  # type: ignore[union-attr]

    @event.listens_for(session_factory, "before_flush")
    def _on_flush(session: Session, flush_context: Any, instances: Any) -> None:
        lock_for_writing(session)


@contextmanager
def write_transactions() -> Iterator[None]:
    """Transactions begun inside this block begin with ``BEGIN IMMEDIATE`` (SQLite)."""
    token = _write_intent.set(True)
    try:
        yield
    finally:
        _write_intent.reset(token)


def lock_for_writing(session: Session) -> None:
    """Make sure ``session``'s transaction holds SQLite's write lock; a no-op elsewhere.

    Call it before a write and outside any SAVEPOINT. Inside one, the transaction is
    left to take the lock at its first write, as SQLite does by itself.
    """
    if not session.info.get(SQLITE_SESSION):
        return
    with translated_errors():
        token = _write_intent.set(True)
        try:
            connection = session.connection()
        finally:
            _write_intent.reset(token)
        info = connection.info
        if info.get(_WRITING):
            return
        changes = connection.connection.driver_connection.total_changes  # type: ignore[union-attr]
        if changes != info.get(_CHANGES_AT_BEGIN):
            info[_WRITING] = True  # it has written already, so it holds the lock
            return
        if connection.in_nested_transaction():
            return  # ending the snapshot would end the SAVEPOINT too
        # Only read so far: end the snapshot (nothing to commit) and begin as a writer.
        driver.execute(connection, "COMMIT")
        driver.execute(connection, "BEGIN IMMEDIATE")
        info[_WRITING] = True
