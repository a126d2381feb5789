"""The SQL behind ``status``, ``stats`` and ``purge``: counts, sizes and age-based deletes.

Every figure is computed by the database (COUNT, SUM, catalog sizes); no rows are
loaded into Python. Age rule: a log's age is its ``timestamp``; a session's and a
test result's age is ``started_at``, or ``created_at`` for one that never started.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, inspect, or_, select, text

from ..manager import DatabaseManager
from ..models import Base, CommLog, OTASession, TestResult

#: The CardLink tables, in the order the guide lists them.
TABLE_NAMES = ("devices", "cards", "sessions", "logs", "tests", "settings")
#: Tables ``purge`` may delete from.
PURGEABLE = ("logs", "sessions", "tests")


def existing_tables(connection: Connection) -> set[str]:
    """The CardLink tables that exist in the database."""
    return set(inspect(connection).get_table_names()) & set(TABLE_NAMES)


def row_counts(connection: Connection) -> dict[str, int | None]:
    """Rows per CardLink table; None for a table that does not exist."""
    present = existing_tables(connection)
    counts: dict[str, int | None] = {}
    for name in TABLE_NAMES:
        if name in present:
            table = Base.metadata.tables[name]
            counts[name] = connection.execute(select(func.count()).select_from(table)).scalar_one()
        else:
            counts[name] = None
    return counts


def database_size_bytes(manager: DatabaseManager, connection: Connection) -> int:
    """Size on disk: the SQLite file plus its WAL, or the server's catalog figures."""
    config = manager.config
    if config.is_sqlite:
        path = config.sqlite_path
        if path is None:  # in memory
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(pages) * int(page_size)
        return sum(
            os.path.getsize(file) for file in (str(path), f"{path}-wal") if os.path.exists(file)
        )
    if config.is_postgresql:
        query = text("SELECT pg_database_size(current_database())")
    else:
        query = text(
            "SELECT COALESCE(SUM(data_length + index_length), 0) "
            "FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    return int(connection.execute(query).scalar_one())


def _age(model: Any) -> Any:
    """The moment a row's age counts from (see the module docstring)."""
    if model is CommLog:
        return CommLog.timestamp
    return func.coalesce(model.started_at, model.created_at)


def recent_activity(connection: Connection, *, since: datetime) -> dict[str, int]:
    """Sessions and test results whose time (started, else created) is at or after ``since``."""
    sessions = select(func.count()).where(_age(OTASession) >= since)
    tests = select(func.count()).where(_age(TestResult) >= since)
    return {
        "sessions_last_24h": connection.execute(sessions).scalar_one(),
        "tests_last_24h": connection.execute(tests).scalar_one(),
    }


def _log_condition(tables: set[str], cutoff: datetime) -> Any:
    """Logs to delete: old ones (``logs``) and those of old sessions (``sessions``)."""
    conditions = []
    if "logs" in tables:
        conditions.append(CommLog.timestamp < cutoff)
    if "sessions" in tables:
        old_sessions = select(OTASession.id).where(_age(OTASession) < cutoff)
        conditions.append(CommLog.session_id.in_(old_sessions))
    return or_(*conditions) if conditions else None


def purge_plan(connection: Connection, tables: set[str], cutoff: datetime) -> dict[str, int]:
    """How many rows a purge of ``tables`` older than ``cutoff`` would delete, per table."""
    plan: dict[str, int] = {}
    if "sessions" in tables:
        plan["sessions"] = connection.execute(
            select(func.count()).where(_age(OTASession) < cutoff)
        ).scalar_one()
    condition = _log_condition(tables, cutoff)
    if condition is not None:
        plan["logs"] = connection.execute(select(func.count()).where(condition)).scalar_one()
    if "tests" in tables:
        plan["tests"] = connection.execute(
            select(func.count()).where(_age(TestResult) < cutoff)
        ).scalar_one()
    return plan


def purge(connection: Connection, tables: set[str], cutoff: datetime) -> dict[str, int]:
    """Delete the rows of :func:`purge_plan` (logs before their sessions); counts per table."""
    deleted: dict[str, int] = {}
    condition = _log_condition(tables, cutoff)
    if condition is not None:
        deleted["logs"] = connection.execute(
            delete(CommLog).where(condition).execution_options(synchronize_session=False)
        ).rowcount
    for name, model in (("sessions", OTASession), ("tests", TestResult)):
        if name in tables:
            statement = delete(model).where(_age(model) < cutoff)
            deleted[name] = connection.execute(
                statement.execution_options(synchronize_session=False)
            ).rowcount
    return {name: deleted[name] for name in ("sessions", "logs", "tests") if name in deleted}
