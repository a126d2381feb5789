"""CommLog: one APDU exchanged during an OTA session."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..status_words import normalize_status_word
from ..types import GUID, UTCDateTime, enum_column, utcnow
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import CommDirection
from .exchange import ExchangeId

if TYPE_CHECKING:
    from .session import OTASession

#: 64-bit keys on the servers; SQLite needs INTEGER for its rowid alias.
LogId = BigInteger().with_variant(Integer(), "sqlite")


class CommLog(TimestampMixin, Base):
    """An APDU command or response, with its status word and latency."""

    __tablename__ = "logs"
    __table_args__ = (
        Index(None, "session_id", "timestamp"),
        Index(None, "session_id", "direction"),
        Index(None, "timestamp"),
        Index(None, "exchange_id"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("id", "session_id", "direction", "raw_data", "status_word")

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    direction: Mapped[CommDirection] = mapped_column(enum_column(CommDirection), nullable=False)
    raw_data: Mapped[str | None] = mapped_column(Text)
    decoded_data: Mapped[str | None] = mapped_column(Text)
    status_word: Mapped[str | None] = mapped_column(
        String(4), info={"normalise": normalize_status_word}
    )
    status_message: Mapped[str | None] = mapped_column(String(255))
    # DOUBLE: MySQL/MariaDB FLOAT is single precision and returns ~6 significant digits.
    latency_ms: Mapped[float | None] = mapped_column(Double)
    #: The HTTP exchange whose body carried this APDU, if known.
    exchange_id: Mapped[int | None] = mapped_column(
        ExchangeId, ForeignKey("http_exchanges.id", ondelete="SET NULL")
    )

    session: Mapped[OTASession] = relationship(back_populates="logs", lazy="select")
