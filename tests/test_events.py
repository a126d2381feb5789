"""Events: delivered after commit, in order, never for rolled-back work; handlers isolated."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta

import pytest

from cardlink.database import (
    CardProfile,
    CardType,
    CommDirection,
    DatabaseEvent,
    Device,
    DeviceType,
    EventEmitter,
    EventType,
    IntegrityError,
    TestStatus,
    UnitOfWork,
    get_emitter,
)

PSK_PLAINTEXT = b"my_secret_psk_key_16"


@pytest.fixture
def received(manager):
    """Every event delivered by the process-wide emitter, in order."""
    events: list[DatabaseEvent] = []
    get_emitter().on("*", events.append)
    return events


def types(events):
    return [event.event_type for event in events]


def test_the_guides_event_system_snippet_runs_as_written(manager, capsys):
    from cardlink.database import (  # noqa: F401 - the guide's import list
        DatabaseEvent,
        EventType,
        get_emitter,
    )

    # Get global emitter
    emitter = get_emitter()

    # Define event handler
    def on_device_created(event: DatabaseEvent):
        print(f"Device created: {event.entity_id}")
        print(f"Data: {event.data}")

    # Register handler
    emitter.on(EventType.DEVICE_CREATED, on_device_created)

    # Wildcard handler (all events)
    def log_all_events(event: DatabaseEvent):
        print(f"Event: {event.event_type} - {event.entity_type}")

    emitter.on("*", log_all_events)

    # Now create a device
    with UnitOfWork(manager) as uow:
        device = Device(id="RF8M...", device_type=DeviceType.PHONE)
        uow.devices.create(device)  # Triggers DEVICE_CREATED event
        uow.commit()

    # Unregister handler
    emitter.off(EventType.DEVICE_CREATED, on_device_created)

    output = capsys.readouterr().out.splitlines()
    assert output[0] == "Device created: RF8M..."
    assert output[1].startswith("Data: {") and "'device_type': 'phone'" in output[1]
    assert output[2] == "Event: device.created - device"

    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="second", device_type=DeviceType.MODEM))
        uow.commit()
    assert capsys.readouterr().out == "Event: device.created - device\n"


def test_events_are_delivered_only_after_commit_and_in_order(manager, received):
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.cards.create(CardProfile(iccid="8901", card_type=CardType.USIM))
        session = uow.sessions.create_session(device_id="D1", card_iccid="8901")
        uow.sessions.start_session(session.id)
        assert received == []
        uow.commit()
    assert types(received) == [
        EventType.DEVICE_CREATED,
        EventType.CARD_CREATED,
        EventType.SESSION_CREATED,
        EventType.SESSION_UPDATED,
    ]
    assert [event.entity_id for event in received] == [
        "D1",
        "8901",
        str(session.id),
        str(session.id),
    ]
    assert all(event.timestamp.tzinfo is not None for event in received)


def test_rolled_back_work_delivers_no_events(manager, received):
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.rollback()
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D2", device_type=DeviceType.PHONE))
        uow.logs  # noqa: B018 - a repository in use must not change the outcome
    with pytest.raises(RuntimeError), UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D3", device_type=DeviceType.PHONE))
        raise RuntimeError("boom")
    assert received == []
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0


def test_a_failing_handler_is_logged_and_neither_breaks_the_commit_nor_other_handlers(
    manager, received, caplog
):
    def broken(event: DatabaseEvent) -> None:
        raise ValueError("handler bug")

    later: list[DatabaseEvent] = []
    emitter = get_emitter()
    emitter.on(EventType.DEVICE_CREATED, broken)
    emitter.on(EventType.DEVICE_CREATED, later.append)
    with (
        caplog.at_level(logging.ERROR, logger="cardlink.database.events"),
        UnitOfWork(manager) as uow,
    ):
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.devices.create(Device(id="D2", device_type=DeviceType.PHONE))
        uow.commit()
    assert [event.entity_id for event in later] == ["D1", "D2"]
    assert [event.entity_id for event in received] == ["D1", "D2"]
    assert (
        sum("handler bug" in record.exc_text for record in caplog.records if record.exc_text) == 2
    )
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 2


def test_registering_a_handler_twice_delivers_each_event_once(manager):
    seen: list[DatabaseEvent] = []
    emitter = get_emitter()
    emitter.on(EventType.DEVICE_CREATED, seen.append)
    emitter.on("device.created", seen.append)
    emitter.on("DEVICE_CREATED", seen.append)
    emitter.on("*", seen.append)
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.commit()
    assert len(seen) == 1
    assert emitter.off(EventType.DEVICE_CREATED, seen.append) is True
    assert emitter.off(EventType.DEVICE_CREATED, seen.append) is False


def test_unknown_event_types_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown event type 'device\.exploded'"):
        EventEmitter().on("device.exploded", print)


def test_the_emitter_is_thread_safe_while_handlers_come_and_go():
    emitter = EventEmitter()
    delivered = []
    lock = threading.Lock()

    def counting(event: DatabaseEvent) -> None:
        with lock:
            delivered.append(event)

    emitter.on(EventType.LOG_CREATED, counting)
    errors: list[BaseException] = []

    def churn(number: int) -> None:
        try:
            for _ in range(300):

                def handler(event: DatabaseEvent) -> None:
                    return None

                emitter.on("*", handler)
                emitter.emit(DatabaseEvent(EventType.LOG_CREATED, "log", number))
                emitter.off("*", handler)
        except BaseException as error:  # pragma: no cover - the failure being tested for
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(delivered) == 8 * 300
    assert not emitter.has_handlers() or emitter.off(EventType.LOG_CREATED, counting)


def test_commits_in_several_threads_deliver_every_event_once(manager, received):
    def work(number: int) -> None:
        with UnitOfWork(manager) as uow:
            uow.devices.create(Device(id=f"T{number}", device_type=DeviceType.MODEM))
            uow.commit()

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(event.entity_id for event in received) == ["T0", "T1", "T2", "T3"]


def test_a_batch_of_ten_thousand_logs_emits_one_batch_event(manager, received):
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        session = uow.sessions.create_session(device_id="D1")
        uow.commit()
    received.clear()
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(
            (session.id, CommDirection.RESPONSE, f"{index:04X}9000") for index in range(10_000)
        )
        uow.commit()
    assert types(received) == [EventType.LOG_BATCH_CREATED]
    assert received[0].data == {
        "count": 10_000,
        "session_ids": [str(session.id)],
        "session_count": 1,
    }


def test_a_refused_commit_delivers_one_database_error_event_and_nothing_queued(manager, received):
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.commit()
    received.clear()
    with UnitOfWork(manager) as uow:
        uow.cards.create(CardProfile(iccid="8901"))
        uow.session.add(Device(id="D1", device_type=DeviceType.PHONE))  # bypasses the checks
        with pytest.raises(IntegrityError):
            uow.commit()
        uow.rollback()
    assert types(received) == [EventType.DATABASE_ERROR]
    assert received[0].data["operation"] == "commit"
    assert received[0].data["error"] == "IntegrityError"
    json.dumps(received[0].data)


def test_every_repository_write_emits_its_event_with_json_safe_data_and_no_psk_key(
    manager, received
):
    now = datetime.now()
    with UnitOfWork(manager) as uow:
        device = uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE, name="Phone"))
        uow.devices.update_last_seen("D1")
        card = uow.cards.create_with_psk(
            CardProfile(iccid="8901", card_type=CardType.USIM, psk_identity="c1"), PSK_PLAINTEXT
        )
        uow.cards.update_psk("8901", identity="c2", key=b"another_key_16by")
        session = uow.sessions.create_session(device_id="D1", card_iccid="8901")
        uow.sessions.start_session(session.id, at=now - timedelta(seconds=2))
        uow.sessions.complete_session(session.id, at=now)
        failed = uow.sessions.create_session(device_id="D1", card_iccid="8901")
        uow.sessions.fail_session(failed.id, error_code="E1", message="bad")
        uow.logs.add_log(session_id=session.id, direction=CommDirection.COMMAND, raw_data="00A4")
        uow.logs.add_log_batch([(session.id, CommDirection.RESPONSE, "9000")])
        result = uow.tests.create_result("r1", "suite", "test", TestStatus.PASSED)
        result.error_message = "none"
        uow.tests.update(result)
        uow.tests.delete(result)
        uow.settings.set_value("log_retention_days", 30)
        uow.settings.set_value("log_retention_days", 31)
        uow.settings.delete_by_id("log_retention_days")
        uow.sessions.delete_by_id(failed.id)
        uow.logs.purge_old(0)
        uow.cards.clear_psk("8901")
        uow.devices.delete(device, cascade=True)
        uow.cards.delete(card)
        uow.commit()
    assert types(received) == [
        EventType.DEVICE_CREATED,
        EventType.DEVICE_UPDATED,
        EventType.CARD_CREATED,
        EventType.CARD_UPDATED,
        EventType.SESSION_CREATED,
        EventType.SESSION_UPDATED,
        EventType.SESSION_COMPLETED,
        EventType.SESSION_CREATED,
        EventType.SESSION_FAILED,
        EventType.LOG_CREATED,
        EventType.TEST_RESULT_CREATED,
        EventType.TEST_RESULT_UPDATED,
        EventType.TEST_RESULT_DELETED,
        EventType.SETTING_UPDATED,
        EventType.SETTING_UPDATED,
        EventType.SETTING_DELETED,
        EventType.SESSION_DELETED,
        EventType.LOG_BATCH_CREATED,
        EventType.LOGS_PURGED,
        EventType.CARD_UPDATED,
        EventType.DEVICE_DELETED,
        EventType.CARD_DELETED,
    ]
    secrets = (PSK_PLAINTEXT.decode(), PSK_PLAINTEXT.hex(), "another_key_16by", "gAAAAA")
    for event in received:
        text = json.dumps({"id": event.entity_id, "data": event.data})
        assert "psk_key_encrypted" not in event.data
        assert not any(secret in text for secret in secrets), event.event_type
    completed = received[6]
    assert completed.data["status"] == "completed" and completed.data["duration_ms"] == 2000
    assert received[8].data["status"] == "failed" and received[8].data["error_code"] == "E1"
    assert received[17].data["count"] == 1
    assert received[18].data["count"] == 2


def test_timeouts_bulk_creates_and_yaml_settings_emit_their_events(manager, received):
    with UnitOfWork(manager) as uow:
        uow.devices.create_all(
            [Device(id=f"M{number}", device_type=DeviceType.MODEM) for number in range(3)]
        )
        session = uow.sessions.create_session(device_id="M0")
        uow.sessions.start_session(session.id)
        uow.sessions.timeout_session(session.id, message="no answer")
        uow.settings.import_yaml("log_retention_days: 7\nlog_batch_size: 50\n")
        uow.commit()
    assert types(received) == [
        EventType.DEVICE_CREATED,
        EventType.DEVICE_CREATED,
        EventType.DEVICE_CREATED,
        EventType.SESSION_CREATED,
        EventType.SESSION_UPDATED,
        EventType.SESSION_FAILED,
        EventType.SETTING_UPDATED,
        EventType.SETTING_UPDATED,
    ]
    assert received[5].data["status"] == "timeout"
    assert received[5].data["error_code"] == "TIMEOUT"
    assert "status" in received[5].data["changed_fields"]
    assert [event.entity_id for event in received[6:]] == ["log_retention_days", "log_batch_size"]
