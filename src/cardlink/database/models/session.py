"""OTASession: one SCP81 admin session between the OTA server and a card."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..exceptions import ValidationError
from ..types import GUID, UTCDateTime, enum_column, to_utc
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import SessionStatus

if TYPE_CHECKING:
    from .card import CardProfile
    from .device import Device
    from .exchange import HttpExchange
    from .log import CommLog


class OTASession(TimestampMixin, Base):
    """An OTA session; its date is ``started_at`` (see the README's time rules)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "device_id", "created_at"),
        Index(None, "card_iccid", "created_at"),
        Index(None, "status"),
        Index(None, "created_at"),
        Index(None, "started_at", "status", "duration_ms"),
        Index(None, "tls_alert"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("id", "status", "session_type")

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    device_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("devices.id"))
    card_iccid: Mapped[str | None] = mapped_column(String(22), ForeignKey("cards.iccid"))
    session_type: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[SessionStatus] = mapped_column(
        enum_column(SessionStatus), default=SessionStatus.PENDING, nullable=False
    )
    cipher_suite: Mapped[str | None] = mapped_column(String(128))
    psk_identity: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: 64-bit: a session may end more than 24.8 days (2**31 ms) after it started.
    duration_ms: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    #: The TLS side of the session (set_tls_info, record_handshake_failure).
    tls_version: Mapped[str | None] = mapped_column(String(16))
    #: The card's address as the server saw it, e.g. ``10.0.0.7:49152`` or ``[2001:db8::1]:443``.
    client_address: Mapped[str | None] = mapped_column(String(64))
    handshake_ms: Mapped[int | None] = mapped_column(Integer)
    #: TLS alert number (RFC 8446 section 6, RFC 4279: 115 is unknown_psk_identity) ...
    tls_alert: Mapped[int | None] = mapped_column(Integer)
    #: ... and its description, e.g. ``unknown_psk_identity``.
    tls_alert_description: Mapped[str | None] = mapped_column(String(64))
    close_reason: Mapped[str | None] = mapped_column(String(255))
    #: ``X-Admin-From`` of the session's HTTP exchanges: the admin agent's id.
    agent_id: Mapped[str | None] = mapped_column(String(255))

    def start(self, now: datetime) -> None:
        """PENDING → ACTIVE, stamping ``started_at``."""
        if self.status.is_final:
            raise ValidationError(
                f"session {self.id} has already ended ({self.status}); it cannot be started again"
            )
        if self.status is SessionStatus.ACTIVE:
            raise ValidationError(f"session {self.id} is already active")
        self.status = SessionStatus.ACTIVE
        self.started_at = now

    def complete(self, now: datetime) -> None:
        """End the session successfully, stamping ``ended_at`` and ``duration_ms``."""
        if self.status.is_final:
            raise ValidationError(
                f"session {self.id} has already ended ({self.status}); it cannot be completed"
            )
        self._end(SessionStatus.COMPLETED, now)

    def fail(
        self,
        now: datetime,
        *,
        status: SessionStatus = SessionStatus.FAILED,
        error_code: str | None = None,
        message: str | None = None,
    ) -> None:
        """End the session as FAILED or TIMEOUT; an ended one is re-marked, keeping its timing."""
        if self.status.is_final:
            self.status = status
        else:
            self._end(status, now)
        self.error_code = error_code
        self.error_message = message

    def _end(self, status: SessionStatus, now: datetime) -> None:
        self.status = status
        self.ended_at = now
        if self.started_at is not None:
            elapsed = to_utc(now) - to_utc(self.started_at)
            self.duration_ms = max(0, round(elapsed.total_seconds() * 1000))

    device: Mapped[Device | None] = relationship(lazy="select", passive_deletes="all")
    card: Mapped[CardProfile | None] = relationship(lazy="select", passive_deletes="all")
    logs: Mapped[list[CommLog]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CommLog.timestamp",
        lazy="select",
    )
    exchanges: Mapped[list[HttpExchange]] = relationship(
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="[HttpExchange.timestamp, HttpExchange.id]",
        lazy="select",
    )
