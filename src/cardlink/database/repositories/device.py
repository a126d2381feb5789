"""Queries for devices (phones and modems)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from ..events import EventType
from ..models import Device, DeviceType
from ..types import utcnow
from .base import BaseRepository, cutoff_before, instant, like_pattern
from .guards import SessionOwnerMixin


class DeviceRepository(SessionOwnerMixin, BaseRepository[Device]):
    """Devices by type, activity and identifiers."""

    model = Device
    entity_type = "device"
    created_event = EventType.DEVICE_CREATED
    updated_event = EventType.DEVICE_UPDATED
    deleted_event = EventType.DEVICE_DELETED
    session_foreign_key = "device_id"

    def find_phones(self) -> list[Device]:
        return self.find_by(device_type=DeviceType.PHONE)

    def find_modems(self) -> list[Device]:
        return self.find_by(device_type=DeviceType.MODEM)

    def find_active(self) -> list[Device]:
        return self.find_by(is_active=True)

    def find_recent(self, hours: float = 24) -> list[Device]:
        """Devices seen within the last ``hours``, most recently seen first."""
        since = cutoff_before(hours, unit="hours", name="hours")
        statement = (
            select(Device).where(Device.last_seen >= since).order_by(Device.last_seen.desc())
        )
        return self._scalars(statement)

    def search(self, text: str, *, limit: int | None = None) -> list[Device]:
        """Devices whose id, name, IMEI, IMSI, ICCID, manufacturer or model contains ``text``.

        Case-insensitive; ``%`` and ``_`` in ``text`` match themselves.
        """
        pattern = like_pattern(text)
        fields = (
            Device.id,
            Device.name,
            Device.imei,
            Device.imsi,
            Device.iccid,
            Device.manufacturer,
            Device.model,
        )
        condition = or_(*(func.lower(field).like(pattern, escape="\\") for field in fields))
        statement = select(Device).where(condition).order_by(Device.id)
        if limit is not None:
            statement = statement.limit(limit)
        return self._scalars(statement)

    def update_last_seen(self, device_id: str, when: datetime | None = None) -> Device:
        """Mark the device as seen now (or at ``when``)."""
        device = self.get_by_id(device_id)
        device.last_seen = instant(when, name="when") if when is not None else utcnow()
        return self.update(device)

    def find_by_iccid(self, iccid: str) -> Device | None:
        """The device currently holding the card with this ICCID."""
        return self.find_one_by(iccid=iccid)

    def deactivate(self, device_id: str) -> Device:
        device = self.get_by_id(device_id)
        device.is_active = False
        return self.update(device)

    def activate(self, device_id: str) -> Device:
        device = self.get_by_id(device_id)
        device.is_active = True
        return self.update(device)

    def count_by_type(self) -> dict[DeviceType, int]:
        """Number of devices per type."""
        statement = select(Device.device_type, func.count()).group_by(Device.device_type)
        rows: Any = self.session.execute(statement).all()
        return {device_type: count for device_type, count in rows}
