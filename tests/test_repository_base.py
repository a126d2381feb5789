"""BaseRepository: every generic method, its errors, and constraint violations on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from cardlink.database import (
    CardProfile,
    ConnectionError,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    EventType,
    IntegrityError,
    NotFoundError,
    OTASession,
    SchemaOutOfDateError,
    UnitOfWork,
    ValidationError,
    get_emitter,
)


def add_devices(manager: DatabaseManager, count: int = 5) -> None:
    """D0..D{count-1}: even ones phones, odd ones modems; D0 has no name."""
    with UnitOfWork(manager) as uow:
        uow.devices.create_all(
            [
                Device(
                    id=f"D{n}",
                    device_type=DeviceType.PHONE if n % 2 == 0 else DeviceType.MODEM,
                    name=None if n == 0 else f"Device {n}",
                )
                for n in range(count)
            ]
        )
        uow.commit()


@pytest.fixture
def statements(manager: DatabaseManager) -> Iterator[list[str]]:
    """The SQL statements the engine runs while the test runs."""
    seen: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(manager.engine, "before_cursor_execute", remember)
    yield seen
    event.remove(manager.engine, "before_cursor_execute", remember)


# -- reads -----------------------------------------------------------------------------


def test_get_by_id_returns_the_entity_and_raises_not_found_naming_a_missing_id(
    manager: DatabaseManager,
) -> None:
    add_devices(manager)
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("D3").name == "Device 3"
        with pytest.raises(NotFoundError, match="device 'nope' not found"):
            uow.devices.get_by_id("nope")
        assert uow.devices.find_by_id("nope") is None


def test_get_all_returns_rows_in_key_order_with_limit_and_offset(manager: DatabaseManager) -> None:
    add_devices(manager)
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["D0", "D1", "D2", "D3", "D4"]
        assert [d.id for d in uow.devices.get_all(limit=2)] == ["D0", "D1"]
        assert [d.id for d in uow.devices.get_all(limit=2, offset=3)] == ["D3", "D4"]


def test_find_by_filters_on_fields_enum_text_and_none(manager: DatabaseManager) -> None:
    add_devices(manager)
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.find_by(device_type=DeviceType.PHONE)] == [
            "D0",
            "D2",
            "D4",
        ]
        assert [d.id for d in uow.devices.find_by(device_type="modem")] == ["D1", "D3"]
        assert [d.id for d in uow.devices.find_by(name=None)] == ["D0"]
        assert [d.id for d in uow.devices.find_by(device_type="PHONE", name="Device 2")] == ["D2"]
        assert uow.devices.find_one_by(name="Device 4").id == "D4"
        assert uow.devices.find_one_by(name="nobody") is None


def test_unknown_filter_or_order_field_is_a_value_error_naming_it(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValueError, match="'colour'"):
            uow.devices.find_by(colour="red")
        with pytest.raises(ValueError, match="'colour'"):
            uow.devices.count_by(colour="red")
        with pytest.raises(ValueError, match="'colour'"):
            uow.devices.paginate(order_by="colour")
        with pytest.raises(ValueError, match="'colour'"):
            uow.devices.find_one_by(colour="red")


def test_a_bad_enum_value_in_a_filter_names_the_valid_ones(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="PHONE, MODEM"):
        uow.devices.find_by(device_type="tablet")


def test_exists_count_and_count_by_use_sql_count(
    manager: DatabaseManager, statements: list[str]
) -> None:
    add_devices(manager)
    statements.clear()
    with UnitOfWork(manager) as uow:
        assert uow.devices.exists("D1") is True
        assert uow.devices.exists("D9") is False
        assert uow.devices.count() == 5
        assert uow.devices.count_by(device_type=DeviceType.MODEM) == 2
    counts = [s for s in statements if "count(" in s.lower()]
    assert len(counts) == 2
    assert not any("SELECT devices.id, devices.device_type" in s for s in statements)


def test_paginate_returns_every_page_field(manager: DatabaseManager) -> None:
    add_devices(manager)
    with UnitOfWork(manager) as uow:
        first = uow.devices.paginate(page=1, per_page=2)
        assert [d.id for d in first.items] == ["D0", "D1"]
        assert (first.page, first.per_page, first.total_items, first.total_pages) == (1, 2, 5, 3)
        assert (first.has_next, first.has_prev) == (True, False)
        last = uow.devices.paginate(page=3, per_page=2)
        assert [d.id for d in last.items] == ["D4"]
        assert (last.has_next, last.has_prev) == (False, True)
        beyond = uow.devices.paginate(page=9, per_page=2)
        assert beyond.items == [] and beyond.total_items == 5


def test_paginate_orders_by_a_field_descending_with_the_key_breaking_ties(
    manager: DatabaseManager,
) -> None:
    add_devices(manager)
    with UnitOfWork(manager) as uow:
        page = uow.devices.paginate(page=1, per_page=10, order_by="device_type", descending=True)
        assert [d.id for d in page.items] == ["D4", "D2", "D0", "D3", "D1"]
        filtered = uow.devices.paginate(page=1, per_page=10, device_type="modem")
        assert filtered.total_items == 2 and [d.id for d in filtered.items] == ["D1", "D3"]


def test_paginate_of_an_empty_table_has_one_empty_page(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        page = uow.devices.paginate()
        assert (page.items, page.total_items, page.total_pages, page.has_next) == ([], 0, 1, False)


def test_paginate_refuses_page_zero_and_a_zero_page_size(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match="page"):
            uow.devices.paginate(page=0)
        with pytest.raises(ValidationError, match="per_page"):
            uow.devices.paginate(per_page=0)


# -- writes ----------------------------------------------------------------------------


def test_create_and_create_all_store_new_entities(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        one = uow.devices.create(Device(id="A", device_type=DeviceType.PHONE))
        many = uow.devices.create_all([Device(id=x, device_type="modem") for x in "BC"])
        assert one.id == "A" and [d.id for d in many] == ["B", "C"]
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 3
        assert uow.devices.get_by_id("A").created_at is not None


def test_create_of_an_entity_already_stored_is_a_no_op(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        device = uow.devices.create(Device(id="A", device_type=DeviceType.PHONE))
        assert uow.devices.create(device) is device
        uow.commit()
    seen: list[Any] = []
    get_emitter().on(EventType.DEVICE_CREATED, seen.append)
    with UnitOfWork(manager) as uow:
        # The guide's manual-management form: the device of an earlier, closed unit of work.
        uow.devices.create(device)
        uow.devices.create_all([device])
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 1
    assert seen == []


def test_create_of_a_stored_entity_whose_row_was_deleted_stores_it_again(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        device = uow.devices.create(Device(id="A", device_type=DeviceType.PHONE, name="kept"))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.delete_by_id("A")
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.devices.create(device)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("A").name == "kept"


def test_create_all_is_all_or_nothing(manager: DatabaseManager) -> None:
    add_devices(manager, 1)
    with UnitOfWork(manager) as uow:
        with pytest.raises(IntegrityError):
            uow.devices.create_all(
                [Device(id="NEW", device_type="phone"), Device(id="D0", device_type="phone")]
            )
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["D0"]


def test_create_refuses_an_entity_of_another_type(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="CardProfile"):
        uow.devices.create(CardProfile(iccid="8901"))  # type: ignore[arg-type]


def test_update_saves_changes_to_an_entity_from_another_unit_of_work(
    manager: DatabaseManager,
) -> None:
    add_devices(manager, 1)
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("D0")
    device.name = "renamed"
    with UnitOfWork(manager) as uow:
        uow.devices.update(device)
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = uow.devices.get_by_id("D0")
        assert stored.name == "renamed" and stored.updated_at >= stored.created_at


def test_update_of_an_entity_that_is_not_stored_raises_not_found(manager: DatabaseManager) -> None:
    ghost = Device(id="ghost", device_type=DeviceType.PHONE)
    with UnitOfWork(manager) as uow, pytest.raises(NotFoundError, match="ghost"):
        uow.devices.update(ghost)


def test_delete_and_delete_by_id_report_whether_a_row_went(manager: DatabaseManager) -> None:
    add_devices(manager, 3)
    with UnitOfWork(manager) as uow:
        uow.devices.delete(uow.devices.get_by_id("D0"))
        assert uow.devices.delete_by_id("D1") is True
        assert uow.devices.delete_by_id("D1") is False
        assert uow.devices.delete_by_id("never") is False
        uow.commit()
    with UnitOfWork(manager) as uow:
        detached = uow.devices.get_by_id("D2")
    with UnitOfWork(manager) as uow:
        uow.devices.delete(detached)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0
        with pytest.raises(NotFoundError):
            uow.devices.delete(detached)


# -- constraint violations -------------------------------------------------------------


def test_a_duplicate_key_is_an_integrity_error_wrapping_the_driver_error(
    manager: DatabaseManager,
) -> None:
    add_devices(manager, 1)
    with UnitOfWork(manager) as uow:
        with pytest.raises(IntegrityError, match="duplicate key") as caught:
            uow.devices.create(Device(id="D0", device_type=DeviceType.PHONE))
        assert isinstance(caught.value.__cause__, sa_exc.IntegrityError)
        # The refused write is rolled back to its savepoint: the unit of work goes on.
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 2


def test_a_foreign_key_violation_is_an_integrity_error(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(IntegrityError, match="foreign key"):
            uow.sessions.create(OTASession(device_id="no-such-device"))
        with pytest.raises(IntegrityError, match="foreign key"):
            uow.sessions.create_session(card_iccid="no-such-card")
        assert uow.sessions.count() == 0


def test_a_duplicate_key_found_only_at_commit_is_an_integrity_error(
    manager: DatabaseManager,
) -> None:
    add_devices(manager, 1)
    with UnitOfWork(manager) as uow:
        uow.session.add(Device(id="D0", device_type=DeviceType.PHONE))
        with pytest.raises(IntegrityError):
            uow.commit()


def test_a_database_without_tables_is_a_database_error_with_the_fix(
    empty_database_url: str,
) -> None:
    manager = DatabaseManager(DatabaseConfig(database_url=empty_database_url))
    with manager, UnitOfWork(manager) as uow:
        for call in (
            uow.devices.count,
            lambda: uow.sessions.get_statistics(days=30),
            lambda: uow.tests.get_run_summary("r"),
            uow.settings.get_all_settings,
        ):
            with pytest.raises(
                SchemaOutOfDateError, match=r"cardlink-db init.*no tables yet"
            ) as caught:
                call()
            assert not isinstance(caught.value, ConnectionError)
            uow.rollback()


def test_the_exception_tree_is_importable_from_cardlink_database() -> None:
    import cardlink.database as api

    for name in (
        "NotFoundError",
        "IntegrityError",
        "ConnectionError",
        "EncryptionError",
        "MigrationError",
        "ValidationError",
        "ConfigurationError",
        "SchemaOutOfDateError",
        "RetryableError",
    ):
        assert issubclass(getattr(api, name), api.DatabaseError), name
    assert issubclass(api.ValidationError, ValueError)
    assert issubclass(api.ConfigurationError, ValueError)
    assert issubclass(api.NotFoundError, LookupError)
