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
_BYTE = (0, 0xFF)
#: Lc and Le up to extended lengths (Le 0000 means 65,536).
_LENGTH = (0, 0x10000)


class CommLog(TimestampMixin, Base):
    """An APDU command or response, with its status word and latency."""

    __tablename__ = "logs"
    __table_args__ = (
        Index(None, "session_id", "timestamp"),
        Index(None, "session_id", "direction"),
        Index(None, "timestamp"),
        Index(None, "exchange_id"),
        Index(None, "command_name"),
        Index(None, "session_id", "command_name"),
        Index(None, "ins"),
        Index(None, "command_id"),
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

    # The command's header, lengths and name as ``apdu.decode_apdu`` reads them; filled on
    # insert (``info["apdu_field"]`` names the DecodedApdu field), empty when undecodable.
    cla: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "cla", "range": _BYTE})
    ins: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "ins", "range": _BYTE})
    p1: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "p1", "range": _BYTE})
    p2: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "p2", "range": _BYTE})
    lc: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "lc", "range": _LENGTH})
    le: Mapped[int | None] = mapped_column(Integer, info={"apdu_field": "le", "range": _LENGTH})
    channel: Mapped[int | None] = mapped_column(
        Integer, info={"apdu_field": "channel", "range": (0, 19)}
    )
    command_name: Mapped[str | None] = mapped_column(String(64), info={"apdu_field": "name"})
    #: On a response: the command it answers (``pairing`` rules); SET NULL when that goes.
    command_id: Mapped[int | None] = mapped_column(
        LogId, ForeignKey("logs.id", ondelete="SET NULL")
    )

    session: Mapped[OTASession] = relationship(back_populates="logs", lazy="select")


#: The decoded columns and the ``apdu.DecodedApdu`` field each one holds, as marked above.
DECODED_FIELDS: dict[str, str] = {
    str(column.name): column.info["apdu_field"]
    for column in CommLog.__table__.columns
    if "apdu_field" in column.info
}
