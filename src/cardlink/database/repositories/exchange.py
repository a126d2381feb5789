"""HTTP exchanges of SCP81 admin sessions: recorded from raw heads, read back per session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..events import EventType
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import HttpExchange, OTASession
from ..scp81 import CommandSessions, HttpDirection, parse_http_head
from ..sqlite_locking import lock_for_writing
from ..types import to_utc, utcnow
from .base import BaseRepository, snapshot


class ExchangeRepository(BaseRepository[HttpExchange]):
    """The HTTP heads of each session (GlobalPlatform Amendment B, section 3.4).

    Example::

        uow.exchanges.record_http(session.id, raw_head, body_length=250)
    """

    model = HttpExchange
    entity_type = "exchange"
    created_event = EventType.EXCHANGE_CREATED

    def record_http(
        self,
        session_id: Any,
        head: str | bytes,
        *,
        body_length: int | None = None,
        timestamp: datetime | None = None,
    ) -> HttpExchange:
        """Store one HTTP head exactly as the server saw it (start line and headers).

        Heads are numbered into command sessions (section 3.6) in the order recorded,
        continuing the session's earlier ones. ``body_length`` defaults to the head's
        Content-Length. The head's ``X-Admin-From`` becomes the session's ``agent_id``.
        A malformed head raises ``ValidationError`` naming the line; nothing is stored.
        """
        parsed = parse_http_head(head)
        if body_length is not None and (
            isinstance(body_length, bool) or not isinstance(body_length, int) or body_length < 0
        ):
            raise ValidationError(f"body_length must be a whole number >= 0, got {body_length!r}")
        if timestamp is not None and not isinstance(timestamp, datetime):
            raise ValidationError(f"timestamp must be a datetime, got {type(timestamp).__name__}")
        session = self._locked_session(session_id)
        numbering = self._numbering_after_last_script(session.id)
        exchange = HttpExchange(
            session_id=session.id,
            timestamp=to_utc(timestamp) if timestamp else utcnow(),
            direction=parsed.direction,
            http_version=parsed.http_version,
            method=parsed.method,
            uri=parsed.uri,
            status_code=parsed.status_code,
            reason=parsed.reason,
            admin_protocol=parsed.admin_protocol,
            agent_id=parsed.agent_id,
            script_status=parsed.script_status,
            resume=parsed.resume,
            next_uri=parsed.next_uri,
            targeted_application=parsed.targeted_application,
            content_type=parsed.content_type,
            body_length=body_length if body_length is not None else parsed.content_length,
            headers=[[name, value] for name, value in parsed.headers],
            command_session=numbering.advance(parsed),
        )
        agent_changed = parsed.agent_id is not None and session.agent_id != parsed.agent_id

        def store() -> None:
            if agent_changed:
                session.agent_id = parsed.agent_id
            self.session.add(exchange)

        self._write(store)
        self._record(self.created_event, exchange)
        if agent_changed:
            data = snapshot(session)
            data["changed_fields"] = ["agent_id"]
            self._uow.record(EventType.SESSION_UPDATED, "session", str(session.id), data)
        return exchange

    def find_by_session(self, session_id: Any) -> list[HttpExchange]:
        """The session's exchanges in the order they happened (time, then recording order)."""
        statement = (
            select(HttpExchange)
            .where(HttpExchange.session_id == self._session_key(session_id))
            .order_by(HttpExchange.timestamp, HttpExchange.id)
        )
        return self._scalars(statement)

    def _session_key(self, session_id: Any) -> Any:
        return self._filter_value(HttpExchange.session_id, session_id)  # type: ignore[arg-type]

    def _locked_session(self, session_id: Any) -> OTASession:
        """The session under a row lock: two heads of one session are numbered one at a time."""
        lock_for_writing(self.session)
        statement = (
            select(OTASession)
            .where(OTASession.id == self._session_key(session_id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        with translated_errors():
            session = self.session.scalars(statement).first()
        if session is None:
            raise NotFoundError(f"session {str(session_id)[:128]!r} not found")
        return session

    def _numbering_after_last_script(self, session_id: Any) -> CommandSessions:
        """Command-session state as the session's last recorded script left it."""
        statement = (
            select(
                HttpExchange.command_session,
                HttpExchange.targeted_application,
                HttpExchange.content_type,
            )
            .where(
                HttpExchange.session_id == session_id,
                HttpExchange.direction == HttpDirection.RESPONSE,
                HttpExchange.content_type.is_not(None),
            )
            .order_by(HttpExchange.id.desc())
            .limit(1)
        )
        with translated_errors():
            last = self.session.execute(statement).first()
        if last is None:
            return CommandSessions()
        return CommandSessions(
            number=last.command_session,
            targeted_application=last.targeted_application,
            content_type=last.content_type,
        )
