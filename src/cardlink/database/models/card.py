"""CardProfile: a UICC card and its SCP81 (TLS-PSK) configuration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import JSONDict, enum_column
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import CardType


class CardProfile(TimestampMixin, Base):
    """A card keyed by ICCID. The PSK key is only ever stored Fernet-encrypted."""

    __tablename__ = "cards"
    __table_args__ = (
        Index(None, "card_type"),
        Index(None, "psk_identity"),
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
    admin_url: Mapped[str | None] = mapped_column(String(512))
    trigger_config: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    bip_config: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    security_domains: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)

    @property
    def has_psk(self) -> bool:
        """True when both a PSK identity and an encrypted key are stored."""
        return bool(self.psk_identity and self.psk_key_encrypted)
