"""Change notifications: a process-wide emitter that units of work publish to after commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .types import LabelledEnum, utcnow

logger = logging.getLogger(__name__)

WILDCARD = "*"


class EventType(LabelledEnum):
    """Every change the layer announces; values are ``entity.action``."""

    DEVICE_CREATED = "device.created"
    DEVICE_UPDATED = "device.updated"
    DEVICE_DELETED = "device.deleted"
    CARD_CREATED = "card.created"
    CARD_UPDATED = "card.updated"
    CARD_DELETED = "card.deleted"
    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    SESSION_COMPLETED = "session.completed"
    SESSION_FAILED = "session.failed"
    SESSION_DELETED = "session.deleted"
    LOG_CREATED = "log.created"
    LOG_BATCH_CREATED = "log.batch_created"
    LOGS_PURGED = "log.purged"
    TEST_RESULT_CREATED = "test_result.created"
    TEST_RESULT_UPDATED = "test_result.updated"
    TEST_RESULT_DELETED = "test_result.deleted"
    SETTING_UPDATED = "setting.updated"
    SETTING_DELETED = "setting.deleted"
    BATCH_COMPLETED = "batch.completed"
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
        """Deliver ``event`` to its handlers, then the wildcard ones; a failing handler is logged."""
        with self._lock:
            handlers = list(self._handlers.get(str(event.event_type), ()))
            handlers += self._handlers.get(WILDCARD, ())
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                logger.exception("event handler %r failed on %s", handler, event.event_type)

    def emit_all(self, events: Iterable[DatabaseEvent]) -> None:
        for event in events:
            self.emit(event)


_emitter = EventEmitter()


def get_emitter() -> EventEmitter:
    """The process-wide emitter."""
    return _emitter
