"""The revision that adds test_runs, tests.attempt and tests.session_id, over real data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    inspect,
    select,
)

from cardlink.database import DatabaseManager, downgrade, run_migrations
from conftest import migrated_to
from revisions import HEAD, revision_described_by
from test_migrations import differences

REVISION, PREVIOUS = revision_described_by("test_runs table")
NOW = datetime(2026, 12, 1, 12, 0, 0)

#: The tables as the previous revision leaves them (only the columns these rows need).
_OLD = MetaData()
OLD_TESTS = Table(
    "tests",
    _OLD,
    Column("id", Uuid()),
    Column("run_id", String(128)),
    Column("suite_name", String(255)),
    Column("test_name", String(255)),
    Column("status", String(16)),
    Column("started_at", DateTime),
    Column("ended_at", DateTime),
    Column("duration_ms", Integer),
    Column("metadata", JSON),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
OLD_SESSIONS = Table(
    "sessions",
    _OLD,
    Column("id", Uuid()),
    Column("status", String(16)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)


@pytest.fixture
def previous(empty_database_url: str) -> Iterator[DatabaseManager]:
    """A database migrated to the revision before this one."""
    with migrated_to(PREVIOUS, empty_database_url) as db:
        yield db


def _rows(manager: DatabaseManager) -> list[tuple[object, ...]]:
    with manager.engine.connect() as connection:
        rows = connection.execute(
            select(
                OLD_TESTS.c.id,
                OLD_TESTS.c.run_id,
                OLD_TESTS.c.test_name,
                OLD_TESTS.c.status,
                OLD_TESTS.c.duration_ms,
                OLD_TESTS.c.metadata,
            ).order_by(OLD_TESTS.c.test_name)
        ).all()
    return [tuple(row) for row in rows]


def test_upgrade_gives_every_stored_run_its_row_and_downgrade_keeps_every_result(
    previous: DatabaseManager,
) -> None:
    statuses = {"a": "passed", "b": "failed", "c": "skipped", "d": "passed"}
    with previous.engine.begin() as connection:
        connection.execute(
            insert(OLD_SESSIONS).values(
                id=uuid.uuid4(), status="completed", created_at=NOW, updated_at=NOW
            )
        )
        for hour, (name, status) in enumerate(statuses.items()):
            connection.execute(
                insert(OLD_TESTS).values(
                    id=uuid.uuid4(),
                    run_id="run-2" if name == "d" else "run-1",
                    suite_name="ota",
                    test_name=name,
                    status=status,
                    started_at=NOW.replace(hour=hour),
                    ended_at=NOW.replace(hour=hour, minute=30),
                    duration_ms=100 * (hour + 1),
                    metadata={"n": hour},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    before = _rows(previous)

    assert run_migrations(REVISION, manager=previous) == REVISION
    assert _rows(previous) == before
    runs = Table("test_runs", MetaData(), autoload_with=previous.engine)
    with previous.engine.connect() as connection:
        stored = connection.execute(
            select(
                runs.c.run_id,
                runs.c.started_at,
                runs.c.ended_at,
                runs.c.total,
                runs.c.passed,
                runs.c.failed,
                runs.c.skipped,
                runs.c.duration_ms,
            ).order_by(runs.c.run_id)
        ).all()
        attempts = (
            connection.execute(
                select(Table("tests", MetaData(), autoload_with=connection).c.attempt)
            )
            .scalars()
            .all()
        )
    assert [tuple(row) for row in stored] == [
        ("run-1", NOW.replace(hour=0), NOW.replace(hour=2, minute=30), 3, 1, 1, 1, 600),
        ("run-2", NOW.replace(hour=3), NOW.replace(hour=3, minute=30), 1, 1, 0, 0, 400),
    ]
    assert attempts == [1, 1, 1, 1]
    columns = {column["name"] for column in inspect(previous.engine).get_columns("tests")}
    assert {"attempt", "session_id"} <= columns
    if HEAD == REVISION:
        assert differences(previous) == []  # the models' schema, exactly

    assert downgrade(revision=PREVIOUS, manager=previous) == PREVIOUS
    assert _rows(previous) == before
    assert "test_runs" not in inspect(previous.engine).get_table_names()
    columns = {column["name"] for column in inspect(previous.engine).get_columns("tests")}
    assert columns.isdisjoint({"attempt", "session_id"})
