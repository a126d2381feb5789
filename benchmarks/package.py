"""The package side of the benchmark: the same work through cardlink.database, as in the guide."""

from __future__ import annotations

from typing import Any

from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork


def open_manager(url: Any) -> DatabaseManager:
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.initialize()
    return manager


def reset_schema(url: Any) -> None:
    """Drop and create every table through the package, so both sides share one schema."""
    manager = open_manager(url)
    try:
        manager.drop_tables()
        manager.create_tables()
    finally:
        manager.close()


def insert_logs(manager: DatabaseManager, rows: list[tuple], *, chunk: int) -> int:
    """W1: ``add_log_batch`` + ``flush_batch`` + ``commit``, one unit of work per chunk."""
    for start in range(0, len(rows), chunk):
        with UnitOfWork(manager) as uow:
            uow.logs.add_log_batch(rows[start : start + chunk])
            uow.logs.flush_batch()
            uow.commit()
    return len(rows)


def find_by_session(manager: DatabaseManager, session_id: Any) -> list[Any]:
    """W2: one session's logs, opening a unit of work per call as the guide does."""
    with UnitOfWork(manager) as uow:
        return uow.logs.find_by_session(session_id)


def statistics(manager: DatabaseManager) -> dict[str, Any]:
    """W3: the 30-day session statistics."""
    with UnitOfWork(manager) as uow:
        return uow.sessions.get_statistics(days=30)
