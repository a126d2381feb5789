"""SessionRepository: lifecycle rules, lookups, date ranges and statistics."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from cardlink.database import (
    CardProfile,
    DatabaseManager,
    Device,
    DeviceType,
    NotFoundError,
    OTASession,
    SessionStatus,
    UnitOfWork,
    ValidationError,
)

NOW = datetime.now(timezone.utc)


@pytest.fixture
def owners(manager: DatabaseManager) -> DatabaseManager:
    with UnitOfWork(manager) as uow:
        uow.devices.create_all(
            [Device(id=name, device_type=DeviceType.PHONE) for name in ("DEV-A", "DEV-B")]
        )
        uow.cards.create_all([CardProfile(iccid=iccid) for iccid in ("8901", "8902")])
        uow.commit()
    return manager


def new_session(manager: DatabaseManager, **fields: object) -> uuid.UUID:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create(OTASession(**fields))
        uow.commit()
    return session.id


# -- lifecycle ------------------------------------------------------------------------------


def test_a_session_goes_pending_active_completed_with_its_timing(owners: DatabaseManager) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(
            device_id="DEV-A", card_iccid="8901", session_type="profile_download"
        )
        assert session.status is SessionStatus.PENDING and session.started_at is None
        started = NOW - timedelta(seconds=2)
        uow.sessions.start_session(session.id, at=started)
        assert session.status is SessionStatus.ACTIVE and session.started_at == started
        uow.sessions.set_tls_info(session.id, cipher="TLS_PSK_WITH_AES_128_CBC_SHA256")
        uow.sessions.complete_session(session.id, at=started + timedelta(milliseconds=1234))
        uow.commit()
    with UnitOfWork(owners) as uow:
        done = uow.sessions.get_by_id(session.id)
        assert done.status is SessionStatus.COMPLETED
        assert done.ended_at == started + timedelta(milliseconds=1234)
        assert done.duration_ms == 1234
        assert done.cipher_suite == "TLS_PSK_WITH_AES_128_CBC_SHA256" and done.psk_identity is None


def test_start_session_stamps_the_current_time(owners: DatabaseManager) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(device_id="DEV-A")
        before = datetime.now(timezone.utc)
        uow.sessions.start_session(session.id)
        uow.sessions.complete_session(session.id)
        uow.commit()
    assert before <= session.started_at <= session.ended_at <= datetime.now(timezone.utc)
    assert session.duration_ms is not None and session.duration_ms >= 0


def test_failing_a_completed_session_re_marks_it_failed_and_keeps_its_timing(
    owners: DatabaseManager,
) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(device_id="DEV-A")
        uow.sessions.start_session(session.id, at=NOW - timedelta(seconds=1))
        uow.sessions.complete_session(session.id, at=NOW)
        uow.sessions.fail_session(
            session.id, error_code="E001", message="Connection timeout", at=NOW + timedelta(hours=1)
        )
        uow.commit()
    with UnitOfWork(owners) as uow:
        failed = uow.sessions.get_by_id(session.id)
        assert failed.status is SessionStatus.FAILED
        assert (failed.ended_at, failed.duration_ms) == (NOW, 1000)
        assert (failed.error_code, failed.error_message) == ("E001", "Connection timeout")


def test_failing_an_active_session_ends_it(owners: DatabaseManager) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(device_id="DEV-A")
        uow.sessions.start_session(session.id, at=NOW - timedelta(milliseconds=250))
        uow.sessions.fail_session(session.id, error_code="TLS", message="handshake", at=NOW)
        timed_out = uow.sessions.create_session(device_id="DEV-A")
        uow.sessions.start_session(timed_out.id)
        uow.sessions.timeout_session(timed_out.id, message="no answer")
        uow.commit()
    assert (session.status, session.ended_at, session.duration_ms) == (
        SessionStatus.FAILED,
        NOW,
        250,
    )
    assert timed_out.status is SessionStatus.TIMEOUT and timed_out.error_code == "TIMEOUT"


@pytest.mark.parametrize("ending", ["complete_session", "fail_session", "timeout_session"])
def test_an_ended_session_cannot_be_started_or_completed_again(
    owners: DatabaseManager, ending: str
) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(device_id="DEV-A")
        uow.sessions.start_session(session.id)
        getattr(uow.sessions, ending)(session.id)
        with pytest.raises(ValidationError, match=r"has already ended.*cannot be started"):
            uow.sessions.start_session(session.id)
        with pytest.raises(ValidationError, match=r"has already ended.*cannot be completed"):
            uow.sessions.complete_session(session.id)


def test_an_active_session_cannot_be_started_twice(owners: DatabaseManager) -> None:
    with UnitOfWork(owners) as uow:
        session = uow.sessions.create_session(device_id="DEV-A")
        uow.sessions.start_session(session.id)
        with pytest.raises(ValidationError, match="already active"):
            uow.sessions.start_session(session.id)


def test_lifecycle_calls_on_a_missing_session_raise_not_found(owners: DatabaseManager) -> None:
    missing = uuid.uuid4()
    with UnitOfWork(owners) as uow:
        for call in ("start_session", "complete_session", "fail_session", "set_tls_info"):
            with pytest.raises(NotFoundError, match=str(missing)):
                getattr(uow.sessions, call)(missing)


# -- lookups --------------------------------------------------------------------------------


def test_find_by_device_and_card_are_newest_first_with_a_limit(owners: DatabaseManager) -> None:
    created = []
    for n in range(4):
        created.append(
            new_session(
                owners,
                device_id="DEV-A" if n < 3 else "DEV-B",
                card_iccid="8901" if n % 2 == 0 else "8902",
                created_at=NOW + timedelta(seconds=n),
            )
        )
    with UnitOfWork(owners) as uow:
        assert [s.id for s in uow.sessions.find_by_device("DEV-A")] == created[2::-1]
        assert [s.id for s in uow.sessions.find_by_device("DEV-A", limit=2)] == created[2:0:-1]
        assert [s.id for s in uow.sessions.find_by_card("8902", limit=10)] == [
            created[3],
            created[1],
        ]
        assert uow.sessions.find_by_device("nobody") == []


def test_find_active_and_find_by_status(owners: DatabaseManager) -> None:
    active = new_session(owners, status=SessionStatus.ACTIVE)
    failed = new_session(owners, status=SessionStatus.FAILED)
    new_session(owners, status=SessionStatus.PENDING)
    with UnitOfWork(owners) as uow:
        assert [s.id for s in uow.sessions.find_active()] == [active]
        assert [s.id for s in uow.sessions.find_by_status(SessionStatus.FAILED)] == [failed]
        assert [s.id for s in uow.sessions.find_by_status("failed")] == [failed]
        with pytest.raises(ValidationError, match="PENDING, ACTIVE"):
            uow.sessions.find_by_status("lost")


def test_find_by_date_range_is_inclusive_and_by_start_time(owners: DatabaseManager) -> None:
    day = datetime(2024, 11, 15, 12, 0, tzinfo=timezone.utc)
    inside = new_session(owners, started_at=day)
    edge = new_session(owners, started_at=datetime(2024, 11, 30, tzinfo=timezone.utc))
    new_session(owners, started_at=datetime(2024, 10, 31, 23, 59, tzinfo=timezone.utc))
    new_session(owners)  # never started: no date
    with UnitOfWork(owners) as uow:
        found = uow.sessions.find_by_date_range(
            start=datetime(2024, 11, 1, tzinfo=timezone.utc),
            end=datetime(2024, 11, 30, tzinfo=timezone.utc),
        )
        assert [s.id for s in found] == [inside, edge]
        with pytest.raises(ValidationError, match="start is after end"):
            uow.sessions.find_by_date_range(start=day, end=day - timedelta(days=1))


# -- statistics -----------------------------------------------------------------------------


def test_statistics_on_an_empty_database_are_numbers(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        stats = uow.sessions.get_statistics(days=30)
    assert {
        key: stats[key] for key in ("total", "completed", "failed", "timeout")
    } == dict.fromkeys(("total", "completed", "failed", "timeout"), 0)
    assert stats["success_rate"] == 0.0 and stats["avg_duration_ms"] == 0.0
    assert f"{stats['success_rate']:.1f}% {stats['avg_duration_ms']:.0f}ms" == "0.0% 0ms"


def test_statistics_count_sessions_started_in_the_window(owners: DatabaseManager) -> None:
    recent = NOW - timedelta(days=1)
    for status, duration in [
        (SessionStatus.COMPLETED, 1000),
        (SessionStatus.COMPLETED, 2000),
        (SessionStatus.COMPLETED, 3000),
        (SessionStatus.FAILED, 500),
        (SessionStatus.TIMEOUT, 30000),
        (SessionStatus.ACTIVE, None),
    ]:
        new_session(owners, status=status, started_at=recent, duration_ms=duration)
    new_session(
        owners, status=SessionStatus.FAILED, started_at=NOW - timedelta(days=40), duration_ms=1
    )
    with UnitOfWork(owners) as uow:
        stats = uow.sessions.get_statistics(days=30)
        assert (stats["total"], stats["completed"], stats["failed"], stats["timeout"]) == (
            6,
            3,
            1,
            1,
        )
        assert stats["active"] == 1
        assert stats["success_rate"] == pytest.approx(60.0)  # 3 of the 5 that ended
        assert stats["avg_duration_ms"] == pytest.approx(36500 / 5)
        assert uow.sessions.get_statistics(days=60)["total"] == 7
        with pytest.raises(ValidationError, match="days"):
            uow.sessions.get_statistics(days=0)
