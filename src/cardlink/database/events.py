"""Change notifications: a process-wide emitter that units of work publish to after commit."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .types import LabelledEnum, utcnow

logger = logging.getLogger(__name__)

WILDCARD = "*"


class EventType(LabelledEnum):
    """Every change the layer announces; values are ``entity.action``.

    All but ``DATABASE_ERROR`` are queued by the unit of work and delivered after
    its commit succeeds, in the order the writes happened.
    """

    #: ``devices.create``/``create_all``.
    DEVICE_CREATED = "device.created"
    #: ``devices.update``, ``update_last_seen``, ``activate``, ``deactivate``.
    DEVICE_UPDATED = "device.updated"
    #: ``devices.delete``/``delete_by_id`` (with ``cascade=True`` its sessions and logs go too).
    DEVICE_DELETED = "device.deleted"
    #: ``cards.create``/``create_with_psk``.
    CARD_CREATED = "card.created"
    #: ``cards.update``, ``update_psk``, ``clear_psk`` (never the key itself).
    CARD_UPDATED = "card.updated"
    #: ``cards.delete``/``delete_by_id``.
    CARD_DELETED = "card.deleted"
    #: ``sessions.create``/``create_session``/``record_handshake_failure``.
    SESSION_CREATED = "session.created"
    #: ``sessions.update``, ``start_session``, ``set_tls_info``, a new agent id from
    #: ``exchanges.record_http``.
    SESSION_UPDATED = "session.updated"
    #: ``sessions.complete_session``.
    SESSION_COMPLETED = "session.completed"
    #: ``sessions.fail_session``, ``timeout_session`` (``data["status"]`` tells which) and
    #: ``record_handshake_failure`` (after its ``SESSION_CREATED``).
    SESSION_FAILED = "session.failed"
    #: ``sessions.delete``/``delete_by_id``.
    SESSION_DELETED = "session.deleted"
    #: ``exchanges.record_http``: one HTTP head of an SCP81 session (its ``X-Admin-From``,
    #: when new, also gives a ``SESSION_UPDATED`` of the session's ``agent_id``).
    EXCHANGE_CREATED = "exchange.created"
    #: ``logs.add_log``/``create``: one APDU.
    LOG_CREATED = "log.created"
    #: A buffered ``add_log_batch`` written (on ``flush_batch`` or commit): one event per batch,
    #: ``data = {"count", "session_ids" (first 100), "session_count"}``.
    LOG_BATCH_CREATED = "log.batch_created"
    #: ``logs.purge_old``: ``data = {"count", "older_than"}``.
    LOGS_PURGED = "log.purged"
    #: ``tests.create``/``create_result``.
    TEST_RESULT_CREATED = "test_result.created"
    #: ``tests.update``.
    TEST_RESULT_UPDATED = "test_result.updated"
    #: ``tests.delete``/``delete_by_id``.
    TEST_RESULT_DELETED = "test_result.deleted"
    #: ``test_runs.create``.
    TEST_RUN_CREATED = "test_run.created"
    #: ``test_runs.update``.
    TEST_RUN_UPDATED = "test_run.updated"
    #: ``test_runs.delete``/``delete_by_id``.
    TEST_RUN_DELETED = "test_run.deleted"
    #: ``settings.set_value`` (new or changed), ``import_yaml``.
    SETTING_UPDATED = "setting.updated"
    #: ``settings.delete``, ``reset_to_defaults``.
    SETTING_DELETED = "setting.deleted"
    #: A bulk operation finished: ``DataImporter`` imports, ``cards.rotate_keys`` (``data`` has
    #: ``operation`` and the counts).
    BATCH_COMPLETED = "batch.completed"
    #: A commit the database refused; delivered at once,
    #: ``data = {"operation", "error", "message"}``.
    DATABASE_ERROR = "database.error"


@dataclass(frozen=True)
class DatabaseEvent:
    """One change: what happened, to which entity, and a JSON-safe snapshot (never a PSK key)."""

    event_type: EventType
    entity_type: str
    entity_id: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=utcnow)


Handler = Callable[[DatabaseEvent], Any]


class EventEmitter:
    """Thread-safe registry of handlers per event type, plus the ``"*"`` wildcard."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._lock = threading.RLock()

    @staticmethod
    def _key(event_type: EventType | str) -> str:
        if isinstance(event_type, EventType) or event_type == WILDCARD:
            return str(event_type)
        try:
            return str(EventType(event_type))
        except ValueError:
            try:
                return str(EventType[str(event_type).upper()])
            except KeyError:
                raise ValueError(f"unknown event type {event_type!r}") from None

    def on(self, event_type: EventType | str, handler: Handler) -> Handler:
        """Register ``handler`` for ``event_type`` (or ``"*"``); registering twice is a no-op."""
        key = self._key(event_type)
        with self._lock:
            handlers = self._handlers.setdefault(key, [])
            if handler not in handlers:
                handlers.append(handler)
        return handler

    def off(self, event_type: EventType | str, handler: Handler) -> bool:
        """Unregister ``handler``; returns whether it was registered."""
        key = self._key(event_type)
        with self._lock:
            handlers = self._handlers.get(key, [])
            if handler in handlers:
                handlers.remove(handler)
                return True
        return False

    def clear(self) -> None:
        """Remove every handler (tests and shutdown)."""
        with self._lock:
            self._handlers.clear()

    def has_handlers(self) -> bool:
        with self._lock:
            return any(self._handlers.values())

    def emit(self, event: DatabaseEvent) -> None:
        """Deliver ``event`` to its handlers, then the wildcard ones.

        Each handler gets its own copy of ``event.data``, so one handler's edit is not
        seen by the next. A handler's ``Exception`` is logged. A ``BaseException``
        (``KeyboardInterrupt``, ``SystemExit``) is not swallowed: it is raised once every
        handler has had the event, so no handler misses it.
        """
        interrupt = self._deliver(event)
        if interrupt is not None:
            raise interrupt

    def emit_all(self, events: Iterable[DatabaseEvent]) -> None:
        """Deliver each event in order; a handler's ``BaseException`` is raised after them all."""
        interrupt: BaseException | None = None
        for event in events:
            raised = self._deliver(event)
            interrupt = interrupt or raised
        if interrupt is not None:
            raise interrupt

    def _deliver(self, event: DatabaseEvent) -> BaseException | None:
        """Call every handler of ``event``; returns the first BaseException one raised."""
        with self._lock:
            handlers = list(self._handlers.get(str(event.event_type), ()))
            # A handler registered for the type and for "*" still hears the event once.
            handlers += [h for h in self._handlers.get(WILDCARD, ()) if h not in handlers]
        interrupt: BaseException | None = None
        for handler in handlers:
            own = replace(event, data=copy.deepcopy(event.data)) if event.data else event
            try:
                handler(own)
            except Exception:
                logger.exception("event handler %r failed on %s", handler, event.event_type)
            except BaseException as error:  # raised by the caller once every handler has run
                logger.warning(
                    "event handler %r raised %s on %s; delivering to the others first",
                    handler,
                    type(error).__name__,
                    event.event_type,
                )
                interrupt = interrupt or error
        return interrupt


def error_event(operation: str, error: BaseException) -> DatabaseEvent:
    """A ``DATABASE_ERROR`` event for a failed ``operation``; the message is the layer's own."""
    return DatabaseEvent(
        event_type=EventType.DATABASE_ERROR,
        entity_type="database",
        data={"operation": operation, "error": type(error).__name__, "message": str(error)[:500]},
    )


_emitter = EventEmitter()


def get_emitter() -> EventEmitter:
    """The process-wide emitter."""
    return _emitter
