"""UnitOfWork: one transaction, its repositories, and the events it will publish.

Nothing is written unless ``commit()`` is called; leaving the ``with`` block by an
exception, or without committing, rolls back. Events recorded by the repositories
are delivered only after the commit succeeds.
"""

from __future__ import annotations

import logging
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .events import DatabaseEvent, EventEmitter, EventType, error_event, get_emitter
from .exceptions import ConnectionError, DatabaseError, ValidationError, translated_errors
from .repositories import (
    CardRepository,
    DeviceRepository,
    ExchangeRepository,
    LogRepository,
    SessionRepository,
    SettingRepository,
    TestRepository,
    TestRunRepository,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .manager import DatabaseManager


class UnitOfWork:
    """A transaction boundary with the repositories the guide names.

    Example::

        with UnitOfWork(manager) as uow:
            uow.devices.create(device)
            uow.commit()
    """

    def __init__(self, manager: DatabaseManager, *, emitter: EventEmitter | None = None) -> None:
        self.manager = manager
        self.session: Session = manager.create_session()
        self._emitter = emitter if emitter is not None else get_emitter()
        self._events: list[DatabaseEvent] = []
        self._closed = False

    # -- repositories ------------------------------------------------------------

    @cached_property
    def devices(self) -> DeviceRepository:
        return DeviceRepository(self)

    @cached_property
    def cards(self) -> CardRepository:
        return CardRepository(self)

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self)

    @cached_property
    def exchanges(self) -> ExchangeRepository:
        return ExchangeRepository(self)

    @cached_property
    def logs(self) -> LogRepository:
        return LogRepository(self)

    @cached_property
    def tests(self) -> TestRepository:
        return TestRepository(self)

    @cached_property
    def test_runs(self) -> TestRunRepository:
        return TestRunRepository(self)

    @cached_property
    def settings(self) -> SettingRepository:
        return SettingRepository(self)

    # -- events ------------------------------------------------------------------

    def record(
        self,
        event_type: EventType,
        entity_type: str,
        entity_id: Any = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Queue an event for delivery after the next successful commit."""
        self._events.append(
            DatabaseEvent(
                event_type=event_type, entity_type=entity_type, entity_id=entity_id, data=data or {}
            )
        )

    # -- transaction -------------------------------------------------------------

    def flush(self) -> None:
        """Send pending changes (including buffered log batches) without committing."""
        self._check_open()
        if "logs" in self.__dict__:
            self.logs.flush_batch()
        with translated_errors():
            self.session.flush()

    def commit(self) -> None:
        """Write everything done so far, then deliver its events in order.

        A commit the database refuses delivers one ``DATABASE_ERROR`` event at once
        (and none of the queued ones) before the error is raised.
        """
        try:
            self.flush()
            with translated_errors():
                self.session.commit()
        except DatabaseError as error:
            if not isinstance(error, ValidationError):
                self._emitter.emit(error_event("commit", error))
            raise
        events, self._events = self._events, []
        if events:
            self._emitter.emit_all(events)

    def rollback(self) -> None:
        """Discard everything since the last commit, buffered logs and queued events included."""
        if "logs" in self.__dict__:
            self.logs.discard_batch()
        self._events.clear()
        try:
            with translated_errors():
                self.session.rollback()
        except ConnectionError as error:
            # A dead connection's transaction is already gone on the server: the rollback
            # is done, and the next statement of this unit of work gets a fresh connection.
            logger.warning("rolled back on a lost connection: %s", error)

    def close(self) -> None:
        """Roll back anything uncommitted and release the connection.

        Entities loaded here stay readable after the ``with`` block: closing the
        session ends its transaction (a ROLLBACK) without expiring them, which
        ``rollback()`` would do - and expiring every loaded row costs time too.
        """
        if self._closed:
            return
        if "logs" in self.__dict__:
            self.logs.discard_batch()
        self._events.clear()
        try:
            with translated_errors():
                self.session.close()
        except ConnectionError as error:
            # The connection died (server restart, KILL): the server has already discarded
            # the transaction, so the rollback close() stands for is done; the pool drops it.
            logger.warning("unit of work closed on a lost connection: %s", error)
        finally:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseError("this unit of work is closed; open a new UnitOfWork")

    def __enter__(self) -> UnitOfWork:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"UnitOfWork({self.manager.config.database_url!r}, {state})"
