"""Event handlers: each one hears every committed event, with data of its own.

A handler that raises ``SystemExit`` or ``KeyboardInterrupt`` does not stop the others:
``commit()`` has already written the data, every handler still gets every event, and
then the interrupt is raised to the caller (it is never swallowed).
"""

from __future__ import annotations

from typing import Any

import pytest

from cardlink.database import (
    DatabaseEvent,
    DatabaseManager,
    Device,
    DeviceType,
    EventType,
    UnitOfWork,
    get_emitter,
)


@pytest.mark.parametrize("interrupt", [SystemExit(3), KeyboardInterrupt()])
def test_a_handler_raising_an_interrupt_skips_no_other_handler_and_the_interrupt_reaches_the_caller(
    manager: DatabaseManager, interrupt: BaseException
) -> None:
    heard: list[tuple[str, str]] = []

    def interrupting(event: DatabaseEvent) -> None:
        heard.append(("interrupting", event.entity_id))
        raise interrupt

    def later(event: DatabaseEvent) -> None:
        heard.append(("later", event.entity_id))

    emitter = get_emitter()
    emitter.on(EventType.DEVICE_CREATED, interrupting)
    emitter.on(EventType.DEVICE_CREATED, later)
    with pytest.raises(type(interrupt)), UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.devices.create(Device(id="D2", device_type=DeviceType.PHONE))
        uow.commit()
    assert heard == [
        ("interrupting", "D1"),
        ("later", "D1"),
        ("interrupting", "D2"),
        ("later", "D2"),
    ]
    with UnitOfWork(manager) as uow:
        assert {device.id for device in uow.devices.get_all()} == {"D1", "D2"}


def test_each_handler_gets_its_own_copy_of_the_event_data(manager: DatabaseManager) -> None:
    seen: list[dict[str, Any]] = []

    def vandal(event: DatabaseEvent) -> None:
        event.data["name"] = "changed by the first handler"
        event.data.setdefault("connection_settings", {})["nested"] = "also changed"
        event.data.pop("device_type", None)

    def reader(event: DatabaseEvent) -> None:
        seen.append(event.data)

    emitter = get_emitter()
    emitter.on(EventType.DEVICE_CREATED, vandal)
    emitter.on("*", reader)
    with UnitOfWork(manager) as uow:
        uow.devices.create(
            Device(
                id="D1",
                device_type=DeviceType.MODEM,
                name="original",
                connection_settings={"port": "/dev/ttyUSB0"},
            )
        )
        uow.commit()
    (data,) = seen
    assert data["name"] == "original" and data["device_type"] == "modem"
    assert data["connection_settings"] == {"port": "/dev/ttyUSB0"}
