"""A session's trace as the terminal shows it: one line per APDU, with its pair's meaning.

Each line carries what the stored decoded columns say (channel, command name, P1 P2,
status word and its meaning) plus the line's place on the wire, so the caller only
formats. Filtering runs in SQL: ``errors`` keeps the exchanges whose response is an
error (the command and its response), ``command`` the exchanges of one command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import aliased

from ..apdu import decode_apdu
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import CommDirection, CommLog, OTASession
from ..status_words import classify, error_condition
from ..types import to_uuid
from .log_queries import command_condition

if TYPE_CHECKING:
    from .log import LogRepository


@dataclass(frozen=True)
class TraceLine:
    """One APDU of a session's trace, ready to print."""

    number: int
    """Place on the wire, from 1, counted over the whole session (filters keep it)."""
    offset_ms: float
    """Milliseconds since the session's first APDU."""
    log_id: int
    direction: CommDirection
    channel: int | None
    command_name: str | None
    """A command's name; on a response, the name of the command it answers."""
    p1p2: str | None
    data: str | None
    """A command's data field, or a response's data before the status word (hex)."""
    status_word: str | None
    """A response's own status word; on a command, its response's."""
    status_message: str | None
    status_class: str | None
    """``success``, ``intermediate``, ``warning`` or ``error`` of the exchange, if answered."""
    latency_ms: float | None
    command_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the direction as its value."""
        return {
            "number": self.number,
            "offset_ms": self.offset_ms,
            "log_id": self.log_id,
            "direction": self.direction.value,
            "channel": self.channel,
            "command_name": self.command_name,
            "p1p2": self.p1p2,
            "data": self.data,
            "status_word": self.status_word,
            "status_message": self.status_message,
            "status_class": self.status_class,
            "latency_ms": self.latency_ms,
            "command_id": self.command_id,
        }


def trace_lines(
    logs: LogRepository,
    session_id: Any,
    *,
    errors: bool = False,
    command: str | int | None = None,
    limit: int | None = None,
) -> list[TraceLine]:
    """The session's APDUs in wire order; an unknown session is a NotFoundError."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive whole number, got {limit!r}")
    key = to_uuid(session_id)
    logs.flush_batch()
    session = logs.session
    with translated_errors():
        if session.get(OTASession, key) is None:
            raise NotFoundError(f"no session with id {session_id}")
        first = session.scalar(select(func.min(CommLog.timestamp)).where(CommLog.session_id == key))
        rows = session.execute(_statement(key, errors, command, limit)).all()
    return [_line(row, first) for row in rows]


def _statement(key: Any, errors: bool, command: str | int | None, limit: int | None) -> Any:
    numbered = (
        select(
            CommLog.id,
            func.row_number().over(order_by=(CommLog.timestamp, CommLog.id)).label("number"),
        )
        .where(CommLog.session_id == key)
        .subquery("numbered")
    )
    line = aliased(CommLog, name="line")
    answered = aliased(CommLog, name="answered")  # the command a response answers
    answer = aliased(CommLog, name="answer")  # the response a command got
    reply = aliased(CommLog, name="reply")  # any response to ``line``, inside subqueries
    first_reply = (  # a command's response: the first one, should two name it
        select(reply.command_id, func.min(reply.id).label("id"))
        .where(reply.session_id == key, reply.command_id.is_not(None))
        .group_by(reply.command_id)
        .subquery("first_reply")
    )
    statement = (
        select(
            numbered.c.number,
            line,
            answered.command_name.label("answered_name"),
            answered.channel.label("answered_channel"),
            answer.status_word.label("answer_word"),
            answer.status_message.label("answer_message"),
        )
        .join(numbered, numbered.c.id == line.id)
        .outerjoin(answered, answered.id == line.command_id)
        .outerjoin(first_reply, first_reply.c.command_id == line.id)
        .outerjoin(answer, answer.id == first_reply.c.id)
    )
    if errors:
        error_answer = (
            select(reply.id)
            .where(reply.command_id == line.id, error_condition(reply.status_word))
            .correlate(line)
            .exists()
        )
        statement = statement.where(
            or_(
                and_(
                    line.direction == CommDirection.RESPONSE,
                    line.status_word.is_not(None),
                    error_condition(line.status_word),
                ),
                and_(line.direction == CommDirection.COMMAND, error_answer),
            )
        )
    if command is not None:
        statement = statement.where(
            or_(command_condition(command, line), command_condition(command, answered))
        )
    statement = statement.order_by(numbered.c.number)
    return statement if limit is None else statement.limit(limit)


def _line(row: Any, first: datetime | None) -> TraceLine:
    log: CommLog = row.line
    is_command = log.direction == CommDirection.COMMAND
    word = row.answer_word if is_command else log.status_word
    message = row.answer_message if is_command else log.status_message
    offset = (log.timestamp - first).total_seconds() * 1000 if first is not None else 0.0
    return TraceLine(
        number=row.number,
        offset_ms=round(offset, 3),
        log_id=log.id,
        direction=log.direction,
        channel=log.channel if is_command else _first(log.channel, row.answered_channel),
        command_name=log.command_name if is_command else row.answered_name,
        p1p2=None if log.p1 is None or log.p2 is None else f"{log.p1:02X}{log.p2:02X}",
        data=_data(log),
        status_word=word,
        status_message=message,
        status_class=classify(word).value if word else None,
        latency_ms=log.latency_ms,
        command_id=log.command_id,
    )


def _first(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)


def _data(log: CommLog) -> str | None:
    raw = (log.raw_data or "").replace(" ", "").upper()
    if log.direction == CommDirection.RESPONSE:
        return raw[:-4] or None if len(raw) >= 4 else None
    if log.ins is None:  # not decodable: nothing to split out
        return None
    return decode_apdu(raw).data or None
