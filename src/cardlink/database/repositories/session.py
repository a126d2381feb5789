"""Queries for OTA sessions: lifecycle, lookups and statistics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select

from ..events import EventType
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import OTASession, SessionStatus
from ..sqlite_locking import lock_for_writing
from ..types import UTCDateTime, to_utc, utcnow
from .base import BaseRepository, _slice


def _statistics_statement() -> Any:
    """Every figure of ``get_statistics`` in one aggregate over the covering index."""
    sessions = OTASession.__table__.c

    def tally(status: SessionStatus) -> Any:
        return func.coalesce(func.sum(case((sessions.status == status, 1), else_=0)), 0)

    return select(
        func.count(),
        tally(SessionStatus.COMPLETED),
        tally(SessionStatus.FAILED),
        tally(SessionStatus.TIMEOUT),
        tally(SessionStatus.ACTIVE),
        func.avg(sessions.duration_ms),
    ).where(sessions.started_at >= bindparam("since", type_=UTCDateTime()))


#: Built once: its cache key is memoized, so a call costs one execution, no SQL building.
_STATISTICS = _statistics_statement()


class SessionRepository(BaseRepository[OTASession]):
    """OTA sessions; a session's date is its ``started_at``."""

    model = OTASession
    entity_type = "session"
    created_event = EventType.SESSION_CREATED
    updated_event = EventType.SESSION_UPDATED
    deleted_event = EventType.SESSION_DELETED

    # -- lifecycle ---------------------------------------------------------------

    def create_session(
        self,
        device_id: str | None = None,
        card_iccid: str | None = None,
        session_type: str | None = None,
        **fields: Any,
    ) -> OTASession:
        """A new PENDING session for a device and card."""
        session = OTASession(
            device_id=device_id, card_iccid=card_iccid, session_type=session_type, **fields
        )
        return self.create(session)

    def start_session(self, session_id: Any, *, at: datetime | None = None) -> OTASession:
        """Mark the session ACTIVE and stamp its start time."""
        session = self._locked(session_id)
        session.start(to_utc(at) if at else utcnow())
        return self._save(session, EventType.SESSION_UPDATED)

    def set_tls_info(
        self, session_id: Any, cipher: str | None = None, psk_identity: str | None = None
    ) -> OTASession:
        """Record the negotiated TLS cipher suite and the PSK identity used."""
        session = self._locked(session_id)
        if cipher is not None:
            session.cipher_suite = cipher
        if psk_identity is not None:
            session.psk_identity = psk_identity
        return self._save(session, EventType.SESSION_UPDATED)

    def complete_session(self, session_id: Any, *, at: datetime | None = None) -> OTASession:
        """End the session as COMPLETED; ``duration_ms`` is computed from the start."""
        session = self._locked(session_id)
        session.complete(to_utc(at) if at else utcnow())
        return self._save(session, EventType.SESSION_COMPLETED)

    def fail_session(
        self,
        session_id: Any,
        error_code: str | None = None,
        message: str | None = None,
        *,
        at: datetime | None = None,
    ) -> OTASession:
        """End the session as FAILED with an error code and message."""
        session = self._locked(session_id)
        session.fail(to_utc(at) if at else utcnow(), error_code=error_code, message=message)
        return self._save(session, EventType.SESSION_FAILED)

    def timeout_session(
        self, session_id: Any, message: str | None = None, *, at: datetime | None = None
    ) -> OTASession:
        """End the session as TIMEOUT."""
        session = self._locked(session_id)
        session.fail(
            to_utc(at) if at else utcnow(),
            status=SessionStatus.TIMEOUT,
            error_code="TIMEOUT",
            message=message,
        )
        return self._save(session, EventType.SESSION_FAILED)

    def _locked(self, session_id: Any) -> OTASession:
        """The session re-read under a row lock, so changes to one session are serialised.

        ``SELECT ... FOR UPDATE`` on PostgreSQL and MariaDB, SQLite's write lock there:
        of two callers ending the same session at once, the second waits, then sees it
        ended and gets the ``ValidationError`` a later call would get.
        """
        lock_for_writing(self.session)
        statement = (
            select(OTASession)
            .where(OTASession.id == self._coerce_id(session_id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        with translated_errors():
            session = self.session.scalars(statement).first()
        if session is None:
            raise NotFoundError(f"{self.entity_type} {str(session_id)[:128]!r} not found")
        return session

    # -- queries -----------------------------------------------------------------

    def find_by_device(
        self, device_id: str, limit: int | None = None, offset: int = 0
    ) -> list[OTASession]:
        """The device's sessions, newest first."""
        return self._newest_first(OTASession.device_id == device_id, limit, offset)

    def find_by_card(
        self, iccid: str, limit: int | None = None, offset: int = 0
    ) -> list[OTASession]:
        """The card's sessions, newest first."""
        return self._newest_first(OTASession.card_iccid == iccid, limit, offset)

    def find_active(self) -> list[OTASession]:
        return self._newest_first(OTASession.status == SessionStatus.ACTIVE, None, 0)

    def find_by_status(
        self, status: SessionStatus | str, limit: int | None = None, offset: int = 0
    ) -> list[OTASession]:
        wanted = self._filter_value(OTASession.status, status)
        return self._newest_first(OTASession.status == wanted, limit, offset)

    def find_by_date_range(
        self, start: datetime, end: datetime, limit: int | None = None, offset: int = 0
    ) -> list[OTASession]:
        """Sessions that started between ``start`` and ``end`` (inclusive), oldest first."""
        low, high = to_utc(start), to_utc(end)
        if low > high:
            raise ValidationError("find_by_date_range: start is after end")
        statement = (
            select(OTASession)
            .where(OTASession.started_at >= low, OTASession.started_at <= high)
            .order_by(OTASession.started_at, OTASession.id)
        )
        return self._scalars(_slice(statement, limit, offset))

    def get_statistics(self, days: int = 30) -> dict[str, Any]:
        """Counts, success rate (% of ended sessions that completed) and mean duration.

        Covers sessions started in the last ``days`` days; every figure is a number,
        zero on an empty database.
        """
        if not isinstance(days, int | float) or days <= 0:
            raise ValidationError(f"days must be a positive number, got {days!r}")
        since = utcnow() - timedelta(days=days)
        with translated_errors():
            row = self.session.execute(_STATISTICS, {"since": since}).one()
        total, completed, failed, timeout, active = (int(value) for value in row[:5])
        ended = completed + failed + timeout
        return {
            "total": total,
            "completed": completed,
            "failed": failed,
            "timeout": timeout,
            "active": active,
            "success_rate": 100.0 * completed / ended if ended else 0.0,
            "avg_duration_ms": float(row[5]) if row[5] is not None else 0.0,
            "days": days,
            "since": since,
        }

    def _newest_first(self, condition: Any, limit: int | None, offset: int) -> list[OTASession]:
        statement = (
            select(OTASession)
            .where(condition)
            .order_by(OTASession.created_at.desc(), OTASession.id.desc())
        )
        return self._scalars(_slice(statement, limit, offset))
