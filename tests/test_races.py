"""Two callers changing the same row at once: no lost update, one event, the same error everywhere.

Each race runs in two threads with managers of their own (separate connections). The
first caller changes the row and holds its transaction open; the second starts while
it is open, so on a server it reads the row before the first commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from cardlink.database import (
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    EventType,
    SessionStatus,
    UnitOfWork,
    ValidationError,
    get_emitter,
)

HOLD_SECONDS = 0.5


def _active_session(manager: DatabaseManager) -> Any:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="RACE", device_type=DeviceType.PHONE))
        session = uow.sessions.create_session(device_id="RACE")
        uow.sessions.start_session(session.id)
        uow.commit()
        return session.id


def race(
    manager: DatabaseManager,
    first: Callable[[UnitOfWork], Any],
    second: Callable[[UnitOfWork], Any],
) -> BaseException | None:
    """Run ``first`` and, while its transaction is open, ``second``; the second's error."""
    other = DatabaseManager(DatabaseConfig(database_url=manager.config.url))
    other.initialize()
    changed = threading.Event()
    outcome: list[BaseException | None] = []

    def run_second() -> None:
        changed.wait(10)
        try:
            with UnitOfWork(other) as uow:
                second(uow)
                uow.commit()
            outcome.append(None)
        except BaseException as error:  # reported to the test thread
            outcome.append(error)

    racer = threading.Thread(target=run_second)
    racer.start()
    try:
        with UnitOfWork(manager) as uow:
            first(uow)
            changed.set()
            time.sleep(HOLD_SECONDS)  # the second caller is under way meanwhile
            uow.commit()
    finally:
        changed.set()
        racer.join(60)
        other.close()
    return outcome[0]


def test_two_callers_completing_one_session_at_once_one_wins_and_one_event_fires(
    manager: DatabaseManager,
) -> None:
    session_id = _active_session(manager)
    completed: list[Any] = []
    get_emitter().on(EventType.SESSION_COMPLETED, completed.append)
    error = race(
        manager,
        lambda uow: uow.sessions.complete_session(session_id),
        lambda uow: uow.sessions.complete_session(session_id),
    )
    assert isinstance(error, ValidationError)
    assert "already ended" in str(error)
    assert len(completed) == 1
    with UnitOfWork(manager) as uow:
        assert uow.sessions.get_by_id(session_id).status is SessionStatus.COMPLETED


def test_completing_a_session_another_caller_is_failing_is_refused_and_the_row_stays_whole(
    manager: DatabaseManager,
) -> None:
    session_id = _active_session(manager)
    seen: list[Any] = []
    get_emitter().on("*", seen.append)
    error = race(
        manager,
        lambda uow: uow.sessions.fail_session(session_id, "E42", "card gone"),
        lambda uow: uow.sessions.complete_session(session_id),
    )
    assert isinstance(error, ValidationError)
    assert [event.event_type for event in seen] == [EventType.SESSION_FAILED]
    with UnitOfWork(manager) as uow:
        stored = uow.sessions.get_by_id(session_id)
        assert (stored.status, stored.error_code) == (SessionStatus.FAILED, "E42")


def test_failing_a_session_another_caller_is_completing_applies_after_it(
    manager: DatabaseManager,
) -> None:
    session_id = _active_session(manager)
    seen: list[Any] = []
    get_emitter().on("*", seen.append)
    error = race(
        manager,
        lambda uow: uow.sessions.complete_session(session_id),
        lambda uow: uow.sessions.fail_session(session_id, "E7", "late failure"),
    )
    assert error is None  # as when called one after the other: failing re-marks an ended one
    assert [event.event_type for event in seen] == [
        EventType.SESSION_COMPLETED,
        EventType.SESSION_FAILED,
    ]
    with UnitOfWork(manager) as uow:
        stored = uow.sessions.get_by_id(session_id)
        assert (stored.status, stored.error_code) == (SessionStatus.FAILED, "E7")
        assert stored.ended_at is not None and stored.duration_ms is not None


@pytest.mark.parametrize("key", ["brand_new_key", "log_retention_days"])
def test_two_callers_setting_a_new_key_at_once_both_succeed_and_the_last_wins(
    manager: DatabaseManager, key: str
) -> None:
    error = race(
        manager,
        lambda uow: uow.settings.set_value(key, {"from": "first"}, description="first"),
        lambda uow: uow.settings.set_value(key, {"from": "second"}),
    )
    assert error is None
    with UnitOfWork(manager) as uow:
        assert uow.settings.get_value(key) == {"from": "second"}
        stored = uow.settings.get_by_id(key)
        assert stored.description == "first"  # not given by the second caller: kept
        assert uow.settings.count() == 1


def test_set_value_after_creating_the_same_setting_in_the_unit_of_work_updates_it(
    manager: DatabaseManager,
) -> None:
    from cardlink.database import Setting

    with UnitOfWork(manager) as uow:
        uow.settings.create(Setting(key="pending", value=1))
        uow.settings.set_value("pending", 2)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.settings.get_value("pending") == 2
