"""Device: a phone or modem that carries the card under test."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..types import JSONDict, UTCDateTime, enum_column
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import DeviceType


class Device(TimestampMixin, Base):
    """A test phone or modem, keyed by its serial number or IMEI."""

    __tablename__ = "devices"
    __table_args__ = (
        Index(None, "device_type"),
        Index(None, "iccid"),
        Index(None, "last_seen"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("id", "device_type", "name")

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_type: Mapped[DeviceType] = mapped_column(enum_column(DeviceType), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    manufacturer: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    firmware_version: Mapped[str | None] = mapped_column(String(128))
    imei: Mapped[str | None] = mapped_column(String(20))
    imsi: Mapped[str | None] = mapped_column(String(20))
    iccid: Mapped[str | None] = mapped_column(String(22))
    connection_settings: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
