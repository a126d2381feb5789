"""Run records as rows: the plain create/read/update/delete of ``test_runs``, and the
run rows results need.

``uow.tests`` starts, finishes and reports runs; this repository gives the table the
same generic paths (create, get_by_id, find_by, update, delete, events) every other
table has, so a run record can be written and read like any row. A result names its
run by ``run_id``: every write path of results makes sure the run's row exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, literal, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..events import EventType
from ..exceptions import translated_errors
from ..models import TestResult, TestRun
from ..models.base import check_value
from ..sqlite_locking import lock_for_writing
from ..types import UTCDateTime, utcnow
from .base import BaseRepository


class TestRunRepository(BaseRepository[TestRun]):
    """Test runs by run id: span, environment and totals.

    Example::

        run = uow.test_runs.get_by_id("nightly-42")
    """

    __test__ = False  # not a pytest test class
    model = TestRun
    entity_type = "test_run"
    created_event = EventType.TEST_RUN_CREATED
    updated_event = EventType.TEST_RUN_UPDATED
    deleted_event = EventType.TEST_RUN_DELETED


def _unless_stored(session: Session, statement: Any) -> Any:
    """``statement`` (an INSERT into test_runs) made to skip a run that exists: ON
    CONFLICT DO NOTHING (PostgreSQL, SQLite), a no-op ON DUPLICATE KEY (MariaDB/MySQL).

    Two callers adding the same new run at once both go on, whichever inserts it.
    """
    if session.get_bind().dialect.name in ("postgresql", "sqlite"):
        return statement.on_conflict_do_nothing(index_elements=["run_id"])
    return statement.on_duplicate_key_update(run_id=statement.inserted.run_id)


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}.get(dialect, mysql_insert)
    table: Table = TestRun.__table__  # type: ignore[assignment]
    return insert(table)


def _execute(session: Session, statement: Any) -> None:
    lock_for_writing(session)
    with translated_errors(), session.begin_nested():
        session.flush()  # a Core statement does not autoflush: pending rows first
        session.execute(statement)


def add_run(session: Session, run_id: str, started_at: datetime) -> TestRun:
    """The run ``run_id``: the stored one, or a new one started at ``started_at``.

    Race-safe: two transactions writing the first results of one new run at once both
    get the run, with no duplicate key (the insert skips a run that exists, and the
    read after it locks the row, so it also sees one committed since the transaction's
    snapshot on MariaDB).
    """
    run = session.get(TestRun, run_id)
    if run is not None:
        return run
    table: Table = TestRun.__table__  # type: ignore[assignment]
    now = utcnow()
    row = {"run_id": run_id, "started_at": started_at, "created_at": now, "updated_at": now}
    row = {name: check_value(table.c[name], value) for name, value in row.items()}
    _execute(session, _unless_stored(session, _insert(session).values(row)))
    with translated_errors():
        run = session.get(TestRun, run_id, with_for_update={"read": True})
    assert run is not None  # inserted, or found, in this transaction
    return run


def add_missing_runs(session: Session) -> None:
    """A run row for every ``run_id`` results carry without one (results written in bulk
    or imported without their run), started at its first result."""
    now = literal(utcnow(), UTCDateTime())
    orphans = (
        select(
            TestResult.run_id,
            func.min(func.coalesce(TestResult.started_at, TestResult.created_at)),
            now,
            now,
        )
        .where(TestResult.run_id.not_in(select(TestRun.run_id)))
        .group_by(TestResult.run_id)
    )
    statement = _insert(session).from_select(
        ["run_id", "started_at", "created_at", "updated_at"], orphans
    )
    _execute(session, _unless_stored(session, statement))
