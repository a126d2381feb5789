"""HttpExchange: one HTTP head of an SCP81 admin session (GlobalPlatform Amendment B, 3.4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..scp81 import HttpDirection, ScriptStatus
from ..types import GUID, JSONType, UTCDateTime, enum_column, utcnow
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin

#: 64-bit keys on the servers; SQLite needs INTEGER for its rowid alias.
ExchangeId = BigInteger().with_variant(Integer(), "sqlite")


class HttpExchange(TimestampMixin, Base):
    """The card's POST or the server's response, with its X-Admin headers as typed columns.

    Written by ``uow.exchanges.record_http`` from the raw head; ``headers`` keeps every
    header as sent, ``[[name, value], ...]`` in order.
    """

    __tablename__ = "http_exchanges"
    __table_args__ = (
        Index(None, "session_id", "timestamp"),
        Index(None, "script_status", "session_id"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("id", "session_id", "direction", "method", "status_code", "command_session")

    id: Mapped[int] = mapped_column(ExchangeId, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    direction: Mapped[HttpDirection] = mapped_column(enum_column(HttpDirection), nullable=False)
    http_version: Mapped[str] = mapped_column(String(8), nullable=False)
    #: A request: method and request target.
    method: Mapped[str | None] = mapped_column(String(32))
    uri: Mapped[str | None] = mapped_column(Text)
    #: A response: status code and reason phrase.
    status_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(255))
    admin_protocol: Mapped[str | None] = mapped_column(String(128))
    #: ``X-Admin-From``: the admin agent's id.
    agent_id: Mapped[str | None] = mapped_column(String(255))
    script_status: Mapped[ScriptStatus | None] = mapped_column(enum_column(ScriptStatus))
    #: ``X-Admin-Resume: true``: the agent resumes after a communication breakdown.
    resume: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    next_uri: Mapped[str | None] = mapped_column(Text)
    #: ``X-Admin-Targeted-Application`` as the AID in hex (``//aid/A000000018/0001``:
    #: ``A0000000180001``).
    targeted_application: Mapped[str | None] = mapped_column(String(32))
    content_type: Mapped[str | None] = mapped_column(String(255))
    #: Bytes of the body: as the caller measured it, else the head's Content-Length.
    body_length: Mapped[int | None] = mapped_column(BigInteger)
    #: Every header as sent: ``[[name, value], ...]`` in order, names in their own case.
    headers: Mapped[list[Any]] = mapped_column(JSONType, nullable=False)
    #: Command session (section 3.6) the head belongs to; None before the first script.
    command_session: Mapped[int | None] = mapped_column(Integer)
