"""CardProfile: a UICC card and its SCP81 (TLS-PSK) configuration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import JSONDict, enum_column
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import CardType


class CardProfile(TimestampMixin, Base):
    """A card keyed by ICCID. The PSK key is only ever stored Fernet-encrypted."""

    __tablename__ = "cards"
    __table_args__ = (
        Index(None, "card_type"),
        # A TLS-PSK identity names at most one card (NULLs never collide, on every backend).
        Index(None, "psk_identity", unique=True),
        CheckConstraint("psk_key_version BETWEEN 0 AND 255", name="psk_key_version_range"),
        CheckConstraint("psk_key_id BETWEEN 0 AND 255", name="psk_key_id_range"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("iccid", "card_type", "psk_identity")

    iccid: Mapped[str] = mapped_column(String(22), primary_key=True)
    imsi: Mapped[str | None] = mapped_column(String(20))
    card_type: Mapped[CardType | None] = mapped_column(enum_column(CardType))
    atr: Mapped[str | None] = mapped_column(String(100))
    psk_identity: Mapped[str | None] = mapped_column(String(128))
    #: Fernet token of the PSK key; write it through ``CardRepository.create_with_psk``.
    psk_key_encrypted: Mapped[str | None] = mapped_column(String(512))
    #: Key version number (KVN) of the PSK key on the card, 0..255 (Amendment B, 3.3.2).
    psk_key_version: Mapped[int | None] = mapped_column(Integer, info={"range": (0, 255)})
    #: Key identifier (KID) of the PSK key within that version, 0..255.
    psk_key_id: Mapped[int | None] = mapped_column(Integer, info={"range": (0, 255)})
    admin_url: Mapped[str | None] = mapped_column(String(512))
    trigger_config: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    bip_config: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    security_domains: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)

    @property
    def has_psk(self) -> bool:
        """True when both a PSK identity and an encrypted key are stored."""
        return bool(self.psk_identity and self.psk_key_encrypted)
