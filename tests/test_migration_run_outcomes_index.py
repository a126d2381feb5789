"""The revision that indexes a run's outcomes for the history queries, over real data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Uuid, insert, inspect

from cardlink.database import (
    DatabaseManager,
    UnitOfWork,
    downgrade,
    run_migrations,
)
from conftest import migrated_to
from revisions import HEAD, revision_described_by
from test_migrations import differences

REVISION, PREVIOUS = revision_described_by("index of a run's outcomes")
NOW = datetime(2026, 12, 1, 12, 0, 0)

#: The tests table as the previous revision leaves it (only the columns these rows need).
OLD_TESTS = Table(
    "tests",
    MetaData(),
    Column("id", Uuid()),
    Column("run_id", String(128)),
    Column("suite_name", String(255)),
    Column("test_name", String(255)),
    Column("status", String(16)),
    Column("attempt", Integer),
    Column("duration_ms", Integer),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
OLD_RUNS = Table(
    "test_runs",
    MetaData(),
    Column("run_id", String(128)),
    Column("started_at", DateTime),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)


@pytest.fixture
def previous(empty_database_url: str) -> Iterator[DatabaseManager]:
    """A database migrated to the revision before this one, holding two runs."""
    with migrated_to(PREVIOUS, empty_database_url) as db:
        rows = {
            "run-1": [("flipper", "passed", 1), ("retried", "failed", 1), ("retried", "passed", 2)],
            "run-2": [("flipper", "failed", 1), ("retried", "passed", 1)],
        }
        with db.engine.begin() as connection:
            for hour, (run_id, results) in enumerate(rows.items()):
                connection.execute(
                    insert(OLD_RUNS).values(
                        run_id=run_id,
                        started_at=NOW.replace(hour=hour),
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
                for name, status, attempt in results:
                    connection.execute(
                        insert(OLD_TESTS).values(
                            id=uuid.uuid4(),
                            run_id=run_id,
                            suite_name="ota",
                            test_name=name,
                            status=status,
                            attempt=attempt,
                            duration_ms=100 * attempt,
                            created_at=NOW,
                            updated_at=NOW,
                        )
                    )
        yield db


def _indexes(manager: DatabaseManager) -> dict[str, list[str | None]]:
    return {
        str(index["name"]): list(index["column_names"])
        for index in inspect(manager.engine).get_indexes("tests")
    }


def _answers(manager: DatabaseManager) -> tuple[object, ...]:
    with UnitOfWork(manager) as uow:
        flaky = [(t.test_name, t.flips, t.last_flip_run) for t in uow.tests.flaky()]
        trend = [(p.run_id, p.counts, p.duration_ms) for p in uow.tests.trend()]
        history = [(r.run_id, r.status) for r in uow.tests.history("ota", "retried")]
    return flaky, trend, history


def test_upgrade_indexes_the_outcomes_and_downgrade_puts_the_run_index_back(
    previous: DatabaseManager,
) -> None:
    assert "ix_tests_run_id" in _indexes(previous)
    before = _answers(previous)

    assert run_migrations(REVISION, manager=previous) == REVISION
    indexes = _indexes(previous)
    assert indexes["ix_tests_run_id_outcomes"] == [
        "run_id",
        "suite_name",
        "test_name",
        "attempt",
        "status",
        "duration_ms",
    ]
    assert "ix_tests_run_id" not in indexes
    assert _answers(previous) == before
    assert before[0] == [("flipper", 1, "run-2"), ("retried", 1, "run-1")]
    if HEAD == REVISION:
        assert differences(previous) == []  # the models' schema, exactly

    assert downgrade(revision=PREVIOUS, manager=previous) == PREVIOUS
    indexes = _indexes(previous)
    assert indexes["ix_tests_run_id"] == ["run_id"]
    assert "ix_tests_run_id_outcomes" not in indexes
    with previous.engine.connect() as connection:
        assert len(connection.execute(OLD_TESTS.select()).all()) == 5
