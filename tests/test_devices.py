"""DeviceRepository: lookups by type, activity, recency, identifiers and free-text search."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cardlink.database import DatabaseManager, Device, DeviceType, NotFoundError, UnitOfWork


@pytest.fixture
def devices(manager: DatabaseManager) -> DatabaseManager:
    now = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        uow.devices.create_all(
            [
                Device(
                    id="RF8M33XXXXX",
                    device_type=DeviceType.PHONE,
                    name="Test Phone",
                    manufacturer="Samsung",
                    model="Galaxy S21",
                    imei="123456789012345",
                    imsi="310120987654321",
                    iccid="89011234567890123456",
                    last_seen=now - timedelta(hours=1),
                ),
                Device(
                    id="PIXEL-7",
                    device_type=DeviceType.PHONE,
                    name="Lab_Pixel",
                    manufacturer="Google",
                    model="Pixel 7",
                    last_seen=now - timedelta(hours=30),
                ),
                Device(
                    id="EC25",
                    device_type=DeviceType.MODEM,
                    name="Quectel modem",
                    manufacturer="Quectel",
                    model="EC25-E",
                    imei="867000000000001",
                    is_active=False,
                    last_seen=now - timedelta(minutes=5),
                ),
            ]
        )
        uow.commit()
    return manager


def ids(found: list[Device]) -> list[str]:
    return [device.id for device in found]


def test_find_phones_modems_and_active(devices: DatabaseManager) -> None:
    with UnitOfWork(devices) as uow:
        assert ids(uow.devices.find_phones()) == ["PIXEL-7", "RF8M33XXXXX"]
        assert ids(uow.devices.find_modems()) == ["EC25"]
        assert ids(uow.devices.find_active()) == ["PIXEL-7", "RF8M33XXXXX"]


def test_find_recent_returns_devices_seen_within_the_hours_most_recent_first(
    devices: DatabaseManager,
) -> None:
    with UnitOfWork(devices) as uow:
        assert ids(uow.devices.find_recent(hours=24)) == ["EC25", "RF8M33XXXXX"]
        assert ids(uow.devices.find_recent(hours=0.5)) == ["EC25"]
        assert ids(uow.devices.find_recent(hours=48)) == ["EC25", "RF8M33XXXXX", "PIXEL-7"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Samsung", ["RF8M33XXXXX"]),  # manufacturer (the guide's example)
        ("samsung", ["RF8M33XXXXX"]),  # case-insensitive
        ("test ph", ["RF8M33XXXXX"]),  # name, partial
        ("rf8m", ["RF8M33XXXXX"]),  # id
        ("4567890123", ["RF8M33XXXXX"]),  # IMEI
        ("3101209", ["RF8M33XXXXX"]),  # IMSI
        ("galaxy", ["RF8M33XXXXX"]),  # model
        ("ec25-e", ["EC25"]),
        ("quectel", ["EC25"]),
        ("8670000", ["EC25"]),
        ("e", ["EC25", "PIXEL-7", "RF8M33XXXXX"]),
        ("_", ["PIXEL-7"]),  # LIKE wildcards match only themselves
        ("%", []),
        ("nothing", []),
    ],
)
def test_search_matches_id_name_imei_imsi_manufacturer_and_model(
    devices: DatabaseManager, text: str, expected: list[str]
) -> None:
    with UnitOfWork(devices) as uow:
        assert ids(uow.devices.search(text)) == expected


def test_update_last_seen_stamps_now(devices: DatabaseManager) -> None:
    before = datetime.now(timezone.utc)
    with UnitOfWork(devices) as uow:
        uow.devices.update_last_seen("PIXEL-7")
        uow.commit()
    with UnitOfWork(devices) as uow:
        seen = uow.devices.get_by_id("PIXEL-7").last_seen
        assert seen is not None and before - timedelta(seconds=1) <= seen
        assert ids(uow.devices.find_recent(hours=1))[0] == "PIXEL-7"
        with pytest.raises(NotFoundError, match="'nope'"):
            uow.devices.update_last_seen("nope")


def test_find_by_iccid_finds_the_device_holding_the_card(devices: DatabaseManager) -> None:
    with UnitOfWork(devices) as uow:
        found = uow.devices.find_by_iccid("89011234567890123456")
        assert found is not None and found.id == "RF8M33XXXXX"
        assert uow.devices.find_by_iccid("0000") is None


def test_deactivate_and_activate_persist(devices: DatabaseManager) -> None:
    with UnitOfWork(devices) as uow:
        uow.devices.deactivate("RF8M33XXXXX")
        uow.devices.activate("EC25")
        uow.commit()
    with UnitOfWork(devices) as uow:
        assert ids(uow.devices.find_active()) == ["EC25", "PIXEL-7"]
        with pytest.raises(NotFoundError):
            uow.devices.deactivate("nope")
