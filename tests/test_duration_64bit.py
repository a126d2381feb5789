"""``sessions.duration_ms`` is 64-bit: a session that started weeks ago can still end.

A 32-bit column overflowed after 24.8 days, so a cleanup job could not time out a
stale session. The revision that widens it keeps every row on the way up and down.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    select,
    update,
)

from cardlink.database import (
    Base,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    MigrationError,
    SessionStatus,
    UnitOfWork,
    downgrade,
    get_current_revision,
    run_migrations,
)
from cardlink.database.types import utcnow
from conftest import forget_schema
from revisions import revision_described_by

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000  # > 2**31 - 1

ENDINGS: dict[str, Callable[[UnitOfWork, Any], Any]] = {
    "complete": lambda uow, sid: uow.sessions.complete_session(sid),
    "fail": lambda uow, sid: uow.sessions.fail_session(sid, "E1", "gone"),
    "timeout": lambda uow, sid: uow.sessions.timeout_session(sid, "stale"),
}


def _session_started_days_ago(manager: DatabaseManager, days: int) -> Any:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="OLD", device_type=DeviceType.MODEM))
        session = uow.sessions.create_session(device_id="OLD")
        uow.sessions.start_session(session.id, at=utcnow() - timedelta(days=days))
        uow.commit()
        return session.id


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_a_session_started_thirty_days_ago_can_be_ended(
    manager: DatabaseManager, ending: str
) -> None:
    session_id = _session_started_days_ago(manager, 30)
    with UnitOfWork(manager) as uow:
        ENDINGS[ending](uow, session_id)
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = uow.sessions.get_by_id(session_id)
        assert stored.status is not SessionStatus.ACTIVE
        assert stored.duration_ms is not None and stored.duration_ms >= THIRTY_DAYS_MS
        stats = uow.sessions.get_statistics(days=31)
    assert stats["avg_duration_ms"] >= THIRTY_DAYS_MS


@pytest.fixture
def fresh(empty_database_url: str) -> Iterator[DatabaseManager]:
    db = DatabaseManager(DatabaseConfig(database_url=empty_database_url))
    db.initialize()
    yield db
    db.close()
    forget_schema(empty_database_url)


def _durations(manager: DatabaseManager) -> list[int | None]:
    sessions = Base.metadata.tables["sessions"]
    with manager.engine.connect() as connection:
        return list(connection.execute(select(sessions.c.duration_ms)).scalars())


def test_the_widening_revision_keeps_rows_up_and_down_and_refuses_to_truncate(
    fresh: DatabaseManager,
) -> None:
    widening, before_head = revision_described_by("duration_ms", "64-bit")
    assert isinstance(before_head, str)
    run_migrations(before_head, manager=fresh)
    # Through Core, with the columns of that revision: later ones add session columns.
    small = 24 * 3600 * 1000 + 1
    old_sessions = Table(
        "sessions",
        MetaData(),
        Column("id", Uuid()),
        Column("status", String(16)),
        Column("duration_ms", Integer),
        Column("created_at", DateTime),
        Column("updated_at", DateTime),
    )
    with fresh.engine.begin() as connection:
        now = utcnow().replace(tzinfo=None)
        connection.execute(
            insert(old_sessions).values(
                id=uuid.uuid4(),
                status="completed",
                duration_ms=small,
                created_at=now,
                updated_at=now,
            )
        )
    assert _durations(fresh) == [small]

    assert run_migrations(widening, manager=fresh) == widening
    assert _durations(fresh) == [small]
    sessions = Base.metadata.tables["sessions"]
    with fresh.engine.begin() as connection:
        connection.execute(update(sessions).values(duration_ms=THIRTY_DAYS_MS))
    assert _durations(fresh) == [THIRTY_DAYS_MS]

    if not fresh.config.is_sqlite:  # SQLite's INTEGER holds 64 bits at every revision
        with pytest.raises(MigrationError):
            downgrade(revision=before_head, manager=fresh)
        assert get_current_revision(manager=fresh) == widening
        assert _durations(fresh) == [THIRTY_DAYS_MS]
    with fresh.engine.begin() as connection:
        connection.execute(update(sessions).values(duration_ms=small))
    assert downgrade(revision=before_head, manager=fresh) == before_head
    assert _durations(fresh) == [small]
    assert run_migrations(widening, manager=fresh) == widening
    assert _durations(fresh) == [small]
