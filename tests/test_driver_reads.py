"""The hot reads that run on the driver's cursor (cardlink/database/driver.py) behave as an
ordinary SQLAlchemy execute would: listeners and SQL logging see them, driver errors come
out as this package's errors, and error hooks on the engine still run."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text

from cardlink.database import (
    CommDirection,
    DatabaseError,
    DatabaseManager,
    SchemaOutOfDateError,
    UnitOfWork,
)


def _session_with_logs(manager: DatabaseManager, count: int = 3) -> uuid.UUID:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="driver-read")
        uow.logs.add_log_batch([(session.id, CommDirection.COMMAND, "00A4")] * count)
        uow.commit()
        return session.id


def test_cursor_listeners_see_the_logs_query_and_get_the_same_logs(
    manager: DatabaseManager,
) -> None:
    session_id = _session_with_logs(manager)
    with UnitOfWork(manager) as uow:
        unwatched = [(log.id, log.timestamp) for log in uow.logs.find_by_session(session_id)]
    seen: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(manager.engine, "before_cursor_execute", remember)
    try:
        with UnitOfWork(manager) as uow:
            watched = [(log.id, log.timestamp) for log in uow.logs.find_by_session(session_id)]
    finally:
        event.remove(manager.engine, "before_cursor_execute", remember)
    assert watched == unwatched and len(watched) == 3
    assert any("FROM logs" in statement for statement in seen)
    if manager.config.is_sqlite:
        assert "BEGIN" in seen  # the unit of work's (deferred, read-only) BEGIN is seen too


def test_a_listener_on_the_unit_of_works_own_connection_sees_the_logs_query(
    manager: DatabaseManager,
) -> None:
    session_id = _session_with_logs(manager, count=2)
    seen: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with UnitOfWork(manager) as uow:
        event.listen(uow.session.connection(), "before_cursor_execute", remember)
        assert len(uow.logs.find_by_session(session_id)) == 2
    assert any("FROM logs" in statement for statement in seen)


def test_sql_logging_shows_the_logs_query(
    manager: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    session_id = _session_with_logs(manager, count=1)
    with (
        caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"),
        UnitOfWork(manager) as uow,
    ):
        assert len(uow.logs.find_by_session(session_id)) == 1
    assert any("FROM logs" in record.getMessage() for record in caplog.records)


def _rename_table(manager: DatabaseManager, old: str, new: str) -> None:
    rename = (
        f"RENAME TABLE {old} TO {new}"
        if manager.config.backend == "mysql"
        else f"ALTER TABLE {old} RENAME TO {new}"
    )
    with manager.engine.begin() as connection:
        connection.execute(text(rename))


def _hide_logs_table(manager: DatabaseManager) -> None:
    _rename_table(manager, "logs", "logs_hidden")


def _restore_logs_table(manager: DatabaseManager) -> None:
    _rename_table(manager, "logs_hidden", "logs")


def test_a_driver_error_in_the_logs_query_is_a_database_error_and_the_unit_goes_on(
    manager: DatabaseManager,
) -> None:
    session_id = _session_with_logs(manager, count=2)
    _hide_logs_table(manager)
    try:
        with UnitOfWork(manager) as uow:
            with pytest.raises(SchemaOutOfDateError, match="cardlink-db migrate"):
                uow.logs.find_by_session(session_id)
            uow.rollback()
            assert uow.sessions.get_by_id(session_id).session_type == "driver-read"
    finally:
        _restore_logs_table(manager)
    with UnitOfWork(manager) as uow:
        assert len(uow.logs.find_by_session(session_id)) == 2
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_an_error_hook_on_the_engine_sees_a_failed_logs_query(manager: DatabaseManager) -> None:
    session_id = _session_with_logs(manager, count=1)
    hooked: list[str] = []

    def on_error(context: Any) -> None:
        hooked.append(context.statement or "")

    event.listen(manager.engine, "handle_error", on_error)
    _hide_logs_table(manager)
    try:
        with UnitOfWork(manager) as uow, pytest.raises(DatabaseError):
            uow.logs.find_by_session(session_id)
    finally:
        event.remove(manager.engine, "handle_error", on_error)
        _restore_logs_table(manager)
    assert any("FROM logs" in statement for statement in hooked)
