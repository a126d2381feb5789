"""UnitOfWork: nothing is written without commit(); errors roll back; events follow the commit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardlink.database import (
    DatabaseError,
    DatabaseManager,
    Device,
    DeviceType,
    EventType,
    IntegrityError,
    OTASession,
    UnitOfWork,
    get_emitter,
)


def phone(device_id: str = "DEV") -> Device:
    return Device(id=device_id, device_type=DeviceType.PHONE)


def device_count(manager: DatabaseManager) -> int:
    with UnitOfWork(manager) as uow:
        return uow.devices.count()


def test_rolls_back_uncommitted_work_by_default(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone())
        assert uow.devices.count() == 1  # visible inside the unit of work
    assert device_count(manager) == 0


def test_rolls_back_on_error(manager: DatabaseManager) -> None:
    with pytest.raises(RuntimeError, match="boom"), UnitOfWork(manager) as uow:
        uow.devices.create(phone())
        raise RuntimeError("boom")
    assert device_count(manager) == 0


def test_commit_writes_and_the_unit_of_work_goes_on(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone("A"))
        uow.commit()
        uow.devices.create(phone("B"))  # after commit, a new transaction; not committed
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["A"]


def test_explicit_rollback_discards_work_since_the_last_commit(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone("A"))
        uow.commit()
        uow.devices.create(phone("B"))
        uow.rollback()
        uow.devices.create(phone("C"))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["A", "C"]


def test_the_manual_management_form_commits_and_closes(manager: DatabaseManager) -> None:
    uow = UnitOfWork(manager)
    try:
        uow.devices.create(phone())
        uow.commit()
    except Exception:
        uow.rollback()
        raise
    finally:
        uow.close()
    assert device_count(manager) == 1
    with pytest.raises(DatabaseError, match="closed"):
        uow.commit()
    uow.close()  # closing twice is harmless


def test_the_manual_form_rolls_back_a_failed_write(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone())
        uow.commit()
    uow = UnitOfWork(manager)
    with pytest.raises(IntegrityError):
        try:
            uow.devices.create(phone("OTHER"))
            uow.devices.create(phone())  # duplicate key
            uow.commit()
        except Exception:
            uow.rollback()
            raise
        finally:
            uow.close()
    assert device_count(manager) == 1


def test_uow_session_is_a_sqlalchemy_session_in_the_same_transaction(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        assert isinstance(uow.session, Session)
        uow.devices.create(phone())
        count = uow.session.execute(select(func.count()).select_from(Device)).scalar_one()
        assert count == 1
        uow.session.add(OTASession(device_id="DEV"))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.sessions.count() == 1


def test_buffered_logs_are_written_on_commit_and_dropped_on_rollback(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session()
        uow.logs.add_log_batch([(session.id, "command", "00A4")] * 3)
        assert uow.logs.pending_count == 3
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch([(session.id, "command", "00B0")] * 2)
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 3


def test_events_are_delivered_after_commit_and_never_after_rollback(
    manager: DatabaseManager,
) -> None:
    seen: list[Any] = []
    get_emitter().on(EventType.DEVICE_CREATED, seen.append)
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone("A"))
        assert seen == []
    assert seen == []
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone("B"))
        uow.commit()
    assert [event.entity_id for event in seen] == ["B"]


def test_a_refused_commit_raises_and_a_rollback_makes_the_unit_usable_again(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(phone())
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.session.add(phone())
        with pytest.raises(IntegrityError):
            uow.commit()
        uow.rollback()
        uow.devices.create(phone("NEXT"))
        uow.commit()
    assert device_count(manager) == 2


def test_a_closed_unit_of_work_cannot_be_entered_again(manager: DatabaseManager) -> None:
    uow = UnitOfWork(manager)
    uow.close()
    with pytest.raises(DatabaseError, match="closed"), uow:
        pass
