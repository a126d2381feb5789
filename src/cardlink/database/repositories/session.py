"""Queries for OTA sessions: lifecycle, lookups and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select

from ..events import EventType
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import CardProfile, CommDirection, CommLog, HttpExchange, OTASession, SessionStatus
from ..models.base import check_value
from ..scp81 import ScriptStatus
from ..scp81 import tls_alert as describe_tls_alert
from ..sqlite_locking import lock_for_writing
from ..status_words import STATUS_WORD_CLASSES, error_condition
from ..timeline import TimelineEntry, build_timeline
from ..types import UTCDateTime, to_utc, utcnow
from .base import BaseRepository, _slice, cutoff_before, instant


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


@dataclass(frozen=True)
class SessionSummary:
    """One line of ``summaries``: a session with its APDU count and failed exchanges.

    ``started_at`` is the start, or the creation time of a session never started;
    ``errors`` and ``warnings`` count responses by status-word class (``status_words``).
    """

    id: str
    device_id: str | None
    card_iccid: str | None
    status: SessionStatus
    started_at: datetime
    duration_ms: int | None
    apdu_count: int
    errors: int
    warnings: int


def _response_count(condition: Any) -> Any:
    """Correlated COUNT of the session's responses meeting ``condition`` (index-served)."""
    logs = CommLog.__table__.c
    return (
        select(func.count())
        .where(
            logs.session_id == OTASession.id,
            logs.direction == CommDirection.RESPONSE,
            logs.status_word.is_not(None),
            condition,
        )
        .scalar_subquery()
    )


def _summaries_statement() -> Any:
    """Sessions newest first with their figures, each a correlated subquery per session."""
    logs = CommLog.__table__.c
    began = func.coalesce(OTASession.started_at, OTASession.created_at)
    warning = or_(
        *(
            logs.status_word.like(f"{prefix}%")
            for kind, prefix in STATUS_WORD_CLASSES
            if kind == "warning"
        )
    )
    apdus = select(func.count()).where(logs.session_id == OTASession.id).scalar_subquery()
    return select(
        OTASession.id,
        OTASession.device_id,
        OTASession.card_iccid,
        OTASession.status,
        began.label("started_at"),
        OTASession.duration_ms,
        apdus.label("apdu_count"),
        _response_count(error_condition(logs.status_word)).label("errors"),
        _response_count(warning).label("warnings"),
    ).order_by(began.desc(), OTASession.id.desc())


#: Built once: its cache key is memoized, so a call costs one execution, no SQL building.
_STATISTICS = _statistics_statement()
_SUMMARIES = _summaries_statement()


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
        self,
        session_id: Any,
        cipher: str | None = None,
        psk_identity: str | None = None,
        *,
        tls_version: str | None = None,
        client_address: str | None = None,
        handshake_ms: int | None = None,
        tls_alert: int | tuple[int, str] | None = None,
        close_reason: str | None = None,
        agent_id: str | None = None,
    ) -> OTASession:
        """Record the TLS side of the session; fields left None keep their stored value.

        ``tls_alert`` is the alert number (its RFC name is looked up) or
        ``(number, description)``.

        Example::

            uow.sessions.set_tls_info(sid, "TLS_PSK_WITH_AES_128_CBC_SHA256", "card_001",
                                      tls_version="TLSv1.2", client_address="10.0.0.7:49152",
                                      handshake_ms=38)
        """
        given: dict[str, Any] = {
            "cipher_suite": cipher,
            "psk_identity": psk_identity,
            "tls_version": tls_version,
            "client_address": client_address,
            "handshake_ms": handshake_ms,
            "close_reason": close_reason,
            "agent_id": agent_id,
        }
        if tls_alert is not None:
            given["tls_alert"], given["tls_alert_description"] = describe_tls_alert(tls_alert)
        session = self._locked(session_id)
        for name, value in given.items():
            if value is not None:
                setattr(session, name, value)
        return self._save(session, EventType.SESSION_UPDATED)

    def record_handshake_failure(
        self,
        psk_identity: str | None,
        client_address: str | None,
        tls_alert: int | tuple[int, str],
        at: datetime | None = None,
    ) -> OTASession:
        """Store a FAILED session for a TLS handshake that never completed.

        It names the card whose PSK identity was offered, or no card when none has it:
        then its ``error_code`` is ``UNKNOWN_PSK_IDENTITY``, so those failures count
        apart (else ``TLS_HANDSHAKE_FAILED``). No device is known at this point.
        """
        number, description = describe_tls_alert(tls_alert)
        when = to_utc(at) if at else utcnow()
        card_iccid = None
        if psk_identity is not None:
            check_value(OTASession.__table__.c.psk_identity, psk_identity)
            holders = self.session.execute(
                select(CardProfile.iccid, CardProfile.psk_identity).where(
                    CardProfile.psk_identity == psk_identity
                )
            )
            # Exactly: MariaDB's collation would also match the identity with trailing spaces.
            card_iccid = next((iccid for iccid, held in holders if held == psk_identity), None)
        error_code = "TLS_HANDSHAKE_FAILED" if card_iccid else "UNKNOWN_PSK_IDENTITY"
        session = OTASession(
            card_iccid=card_iccid,
            session_type="handshake",
            status=SessionStatus.FAILED,
            psk_identity=psk_identity,
            client_address=client_address,
            tls_alert=number,
            tls_alert_description=description,
            started_at=when,
            ended_at=when,
            duration_ms=0,
            error_code=error_code,
            error_message=f"TLS handshake failed: alert {number} ({description or 'unknown'})",
        )
        self.create(session)
        self._record(EventType.SESSION_FAILED, session)
        return session

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
        low, high = instant(start, name="start"), instant(end, name="end")
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
        since = cutoff_before(days, unit="days", name="days", positive=True)
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

    def summaries(
        self,
        *,
        status: SessionStatus | str | None = None,
        since_days: float | None = None,
        limit: int | None = 50,
    ) -> list[SessionSummary]:
        """Recent sessions (newest first) with APDU, error and warning counts, all in SQL.

        ``since_days`` keeps sessions started (else created) in the last so many days.
        """
        statement = _SUMMARIES
        if status is not None:
            wanted = self._filter_value(OTASession.status, status)
            statement = statement.where(OTASession.status == wanted)
        if since_days is not None:
            if isinstance(since_days, bool) or not isinstance(since_days, int | float):
                raise ValidationError(f"since_days must be a number, got {since_days!r}")
            if since_days <= 0:
                raise ValidationError(f"since_days must be > 0, got {since_days!r}")
            since = utcnow() - timedelta(days=since_days)
            began = func.coalesce(OTASession.started_at, OTASession.created_at)
            statement = statement.where(began >= since)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValidationError(f"limit must be a whole number >= 1, got {limit!r}")
            statement = statement.limit(limit)
        with translated_errors():
            rows = self.session.execute(statement).all()
        return [
            SessionSummary(
                id=str(row.id),
                device_id=row.device_id,
                card_iccid=row.card_iccid,
                status=row.status,
                started_at=to_utc(row.started_at),
                duration_ms=row.duration_ms,
                apdu_count=int(row.apdu_count),
                errors=int(row.errors),
                warnings=int(row.warnings),
            )
            for row in rows
        ]

    def find_by_script_status(
        self, status: ScriptStatus | str, limit: int | None = None, offset: int = 0
    ) -> list[OTASession]:
        """Sessions in which the card reported this ``X-Admin-Script-Status``, newest first."""
        wanted = self._script_status(status)
        reported = (
            select(HttpExchange.id)
            .where(HttpExchange.session_id == OTASession.id, HttpExchange.script_status == wanted)
            .exists()
        )
        return self._newest_first(reported, limit, offset)

    def failures_by_cause(self, days: int = 7) -> dict[str, Any]:
        """What went wrong in the sessions of the last ``days`` days, counted in SQL.

        ``tls_alerts``: sessions per TLS alert; ``script_statuses``: sessions per
        script status other than ``ok``; ``error_codes``: FAILED/TIMEOUT sessions per
        error code. Each is a list of dicts, most frequent first. A session's date is
        its ``started_at`` (its ``created_at`` if it never started).
        """
        since = cutoff_before(days, unit="days", name="days", positive=True)
        sessions = OTASession.__table__.c
        exchanges = HttpExchange.__table__.c
        in_window = func.coalesce(sessions.started_at, sessions.created_at) >= since
        count = func.count().label("count")
        alerts = (
            select(sessions.tls_alert, func.max(sessions.tls_alert_description), count)
            .where(in_window, sessions.tls_alert.is_not(None))
            .group_by(sessions.tls_alert)
            .order_by(count.desc(), sessions.tls_alert)
        )
        reported = func.count(exchanges.session_id.distinct()).label("count")
        statuses = (
            select(exchanges.script_status, reported)
            .join(OTASession.__table__, sessions.id == exchanges.session_id)
            .where(
                in_window,
                exchanges.script_status.is_not(None),
                exchanges.script_status != ScriptStatus.OK,
            )
            .group_by(exchanges.script_status)
            .order_by(reported.desc(), exchanges.script_status)
        )
        errors = (
            select(sessions.error_code, count)
            .where(
                in_window,
                sessions.status.in_([SessionStatus.FAILED, SessionStatus.TIMEOUT]),
            )
            .group_by(sessions.error_code)
            .order_by(count.desc(), sessions.error_code)
        )
        with translated_errors():
            run = self.session.execute
            return {
                "days": days,
                "since": since,
                "tls_alerts": [
                    {"alert": alert, "description": description, "count": int(found)}
                    for alert, description, found in run(alerts)
                ],
                "script_statuses": [
                    {"status": ScriptStatus(status), "count": int(found)}
                    for status, found in run(statuses)
                ],
                "error_codes": [
                    {"error_code": code, "count": int(found)} for code, found in run(errors)
                ],
            }

    def timeline(self, session_id: Any) -> list[TimelineEntry]:
        """The session in time order: state changes, HTTP exchanges and APDUs, with gaps.

        Example::

            for entry in uow.sessions.timeline(sid):
                print(entry.timestamp, entry.kind, entry.summary)
        """
        session = self.get_by_id(session_id)
        exchanges = self._uow.exchanges.find_by_session(session.id)
        logs = self._uow.logs.find_by_session(session.id)
        return build_timeline(session, exchanges, logs)

    def _script_status(self, status: ScriptStatus | str) -> ScriptStatus:
        if isinstance(status, ScriptStatus):
            return status
        try:
            return ScriptStatus(str(status).lower())
        except ValueError:
            valid = ", ".join(member.value for member in ScriptStatus)
            raise ValidationError(
                f"script status {str(status)[:64]!r} is not one of {valid}"
            ) from None

    def _newest_first(self, condition: Any, limit: int | None, offset: int) -> list[OTASession]:
        statement = (
            select(OTASession)
            .where(condition)
            .order_by(OTASession.created_at.desc(), OTASession.id.desc())
        )
        return self._scalars(_slice(statement, limit, offset))
