"""Housekeeping as library calls: purge by age, statistics, and creating the database itself.

The command line only prints what these return. Every figure is computed by the
database (COUNT, SUM, catalog sizes); no rows are loaded into Python. Age rule:
a log's age is its ``timestamp``; a session's and a test result's age is
``started_at``, or ``created_at`` for one that never started.

Used through the manager::

    manager.purge(older_than=timedelta(days=90), tables=["logs"], dry_run=True)
    manager.stats().as_dict()
    manager.create_database()
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, create_engine, delete, func, inspect, or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from .config import DatabaseConfig
from .exceptions import (
    ConfigurationError,
    ConnectionError,
    DatabaseError,
    ValidationError,
    translated_errors,
)
from .models import Base, CommLog, OTASession, TestResult, TestRun
from .transfer.formats import TABLE_NAMES
from .types import utcnow

if TYPE_CHECKING:  # the manager imports this module
    from .manager import DatabaseManager

#: Tables a purge may delete from.
PURGEABLE = ("logs", "sessions", "tests")
#: "Recent activity" in :class:`DatabaseStats` counts this far back.
RECENT = timedelta(hours=24)
BYTES_PER_MB = 1024 * 1024


@dataclass(frozen=True)
class PurgeResult:
    """Rows a purge deleted (or, with ``dry_run``, would delete) per table, and its cutoff."""

    counts: dict[str, int]
    cutoff: datetime
    dry_run: bool

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class DatabaseStats:
    """Rows per table, size on disk and the last 24 hours' sessions and test results."""

    tables: dict[str, int]
    size_bytes: int
    sessions_last_24h: int
    tests_last_24h: int

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / BYTES_PER_MB, 2)

    def as_dict(self) -> dict[str, Any]:
        """The shape ``cardlink-db stats --json`` prints."""
        return {
            "tables": dict(self.tables),
            "database_size_mb": self.size_mb,
            "recent_activity": {
                "sessions_last_24h": self.sessions_last_24h,
                "tests_last_24h": self.tests_last_24h,
            },
        }


# -- tables ----------------------------------------------------------------------------


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


def missing_tables(manager: DatabaseManager) -> list[str]:
    """The CardLink tables the database lacks, in :data:`TABLE_NAMES` order."""
    _ready(manager)
    with translated_errors(), manager.engine.connect() as connection:
        present = existing_tables(connection)
    return [name for name in TABLE_NAMES if name not in present]


def table_counts(manager: DatabaseManager) -> dict[str, int | None]:
    """Rows per CardLink table (None for a missing one), for a status report."""
    _ready(manager)
    with translated_errors(), manager.engine.connect() as connection:
        return row_counts(connection)


def describe_tables(manager: DatabaseManager) -> dict[str, dict[str, Any]]:
    """Each existing CardLink table's columns (name, type, flags) and indexes, as reflected."""
    _ready(manager)
    details: dict[str, dict[str, Any]] = {}
    with translated_errors(), manager.engine.connect() as connection:
        inspector = inspect(connection)
        dialect = connection.dialect
        for name in sorted(existing_tables(connection), key=TABLE_NAMES.index):
            primary = set(inspector.get_pk_constraint(name).get("constrained_columns") or [])
            columns = []
            for column in inspector.get_columns(name):
                flags = ["PRIMARY KEY"] if column["name"] in primary else []
                if not column.get("nullable", True):
                    flags.append("NOT NULL")
                type_name = column["type"].compile(dialect=dialect)
                columns.append({"name": column["name"], "type": type_name, "flags": flags})
            indexes = [
                {
                    "name": index["name"],
                    "columns": [str(column) for column in index["column_names"]],
                    "unique": bool(index.get("unique")),
                }
                for index in inspector.get_indexes(name)
            ]
            details[name] = {"columns": columns, "indexes": indexes}
    return details


def _require_tables(connection: Connection, names: Iterable[str]) -> None:
    missing = sorted(set(names) - existing_tables(connection), key=TABLE_NAMES.index)
    if missing:
        raise DatabaseError(
            f"table(s) missing: {', '.join(missing)}; "
            "run manager.create_tables() or `cardlink-db init`"
        )


def _ready(manager: DatabaseManager) -> None:
    """Connect without creating anything: these calls only look at an existing database."""
    if not manager.is_initialized:
        manager.initialize(create=False)


# -- stats -----------------------------------------------------------------------------


def stats(manager: DatabaseManager) -> DatabaseStats:
    """Rows per table, size on disk and recent activity; DatabaseError if a table is missing.

    Example::

        manager.stats().as_dict()["tables"]["logs"]
    """
    _ready(manager)
    with translated_errors(), manager.engine.connect() as connection:
        _require_tables(connection, TABLE_NAMES)
        counts = row_counts(connection)
        size = _size_bytes(manager.config, connection)
        since = utcnow() - RECENT
        sessions = connection.execute(select(func.count()).where(_age(OTASession) >= since))
        tests = connection.execute(select(func.count()).where(_age(TestResult) >= since))
        return DatabaseStats(
            tables={name: counts[name] or 0 for name in TABLE_NAMES},
            size_bytes=size,
            sessions_last_24h=sessions.scalar_one(),
            tests_last_24h=tests.scalar_one(),
        )


def _size_bytes(config: DatabaseConfig, connection: Connection) -> int:
    """Size on disk: the SQLite file plus its WAL, or the server's catalog figures."""
    if config.is_sqlite:
        path = config.sqlite_path
        if path is None:  # in memory
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(pages) * int(page_size)
        files = (str(path), f"{path}-wal")
        return sum(os.path.getsize(file) for file in files if os.path.exists(file))
    if config.is_postgresql:
        query = text("SELECT pg_database_size(current_database())")
    else:
        query = text(
            "SELECT COALESCE(SUM(data_length + index_length), 0) "
            "FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    return int(connection.execute(query).scalar_one())


# -- purge -----------------------------------------------------------------------------


def purge(
    manager: DatabaseManager,
    *,
    older_than: timedelta | datetime,
    tables: Iterable[str] = PURGEABLE,
    dry_run: bool = False,
) -> PurgeResult:
    """Delete logs, sessions or test results older than ``older_than``, in one transaction.

    ``older_than`` is an age (``timedelta``) or the cutoff moment itself. Purging
    sessions deletes their logs too. With ``dry_run=True`` nothing is deleted and
    the counts are what a purge would delete. Example::

        manager.purge(older_than=timedelta(days=90), tables=["logs"])
    """
    chosen = _purgeable(tables)
    cutoff = utcnow() - older_than if isinstance(older_than, timedelta) else older_than
    if cutoff.tzinfo is None:
        raise ValidationError("purge: older_than must be a timedelta or an aware datetime")
    _ready(manager)
    if dry_run:
        with translated_errors(), manager.engine.connect() as connection:
            _require_tables(connection, {*chosen, "logs"})
            counts = _plan(connection, chosen, cutoff)
    else:
        with translated_errors(), manager.engine.begin() as connection:
            _require_tables(connection, {*chosen, "logs"})
            counts = _delete(connection, chosen, cutoff)
    return PurgeResult(counts=counts, cutoff=cutoff, dry_run=dry_run)


def _purgeable(tables: Iterable[str]) -> set[str]:
    names = {tables} if isinstance(tables, str) else set(tables)
    names = {str(name).strip().lower() for name in names}
    unknown = sorted(names - set(PURGEABLE))
    if unknown or not names:
        raise ValidationError(
            f"cannot purge table {', '.join(unknown) or 'none given'}; "
            f"choose from {', '.join(PURGEABLE)}"
        )
    return names


def _age(model: Any) -> Any:
    """The moment a row's age counts from (see the module docstring)."""
    if model is CommLog:
        return CommLog.timestamp
    return func.coalesce(model.started_at, model.created_at)


def _log_condition(tables: set[str], cutoff: datetime) -> Any:
    """Logs to delete: old ones (``logs``) and those of old sessions (``sessions``)."""
    conditions = []
    if "logs" in tables:
        conditions.append(CommLog.timestamp < cutoff)
    if "sessions" in tables:
        old_sessions = select(OTASession.id).where(_age(OTASession) < cutoff)
        conditions.append(CommLog.session_id.in_(old_sessions))
    return or_(*conditions) if conditions else None


def _plan(connection: Connection, tables: set[str], cutoff: datetime) -> dict[str, int]:
    """How many rows a purge would delete, per table (sessions, logs, tests, test_runs)."""
    plan: dict[str, int] = {}
    if "sessions" in tables:
        query = select(func.count()).where(_age(OTASession) < cutoff)
        plan["sessions"] = connection.execute(query).scalar_one()
    condition = _log_condition(tables, cutoff)
    if condition is not None:
        plan["logs"] = connection.execute(select(func.count()).where(condition)).scalar_one()
    if "tests" in tables:
        query = select(func.count()).where(_age(TestResult) < cutoff)
        plan["tests"] = connection.execute(query).scalar_one()
        query = select(func.count()).select_from(TestRun).where(_emptied_run(cutoff))
        plan["test_runs"] = connection.execute(query).scalar_one()
    return plan


def _emptied_run(cutoff: datetime) -> Any:
    """Runs started before ``cutoff`` that keep no result from it on: a purge of tests
    leaves them empty (or found them so), and takes them too."""
    kept = select(TestResult.id).where(
        TestResult.run_id == TestRun.run_id, _age(TestResult) >= cutoff
    )
    return and_(_age(TestRun) < cutoff, ~kept.exists())


def _delete(connection: Connection, tables: set[str], cutoff: datetime) -> dict[str, int]:
    """Delete the rows of :func:`_plan` (logs before their sessions); counts per table."""
    deleted: dict[str, int] = {}
    condition = _log_condition(tables, cutoff)
    if condition is not None:
        statement = delete(CommLog).where(condition)
        deleted["logs"] = connection.execute(statement).rowcount
    for name, model in (("sessions", OTASession), ("tests", TestResult)):
        if name in tables:
            statement = delete(model).where(_age(model) < cutoff)
            deleted[name] = connection.execute(statement).rowcount
    if "tests" in tables:
        statement = delete(TestRun).where(_emptied_run(cutoff))
        deleted["test_runs"] = connection.execute(statement).rowcount
    order = ("sessions", "logs", "tests", "test_runs")
    return {name: deleted[name] for name in order if name in deleted}


# -- the database itself ---------------------------------------------------------------


def create_database(config: DatabaseConfig) -> bool:
    """Create the database ``config`` names if it does not exist; True if it was created.

    SQLite: the file (and its folder), readable by its owner only. PostgreSQL:
    ``CREATE DATABASE ... ENCODING 'UTF8'``, through the ``postgres`` database.
    MariaDB/MySQL: ``CREATE DATABASE ... utf8mb4``. The user needs the right to
    create databases; otherwise ``ConnectionError`` says why.
    """
    if config.is_sqlite:
        path = config.sqlite_path
        if path is None or path.exists():
            return False
        _create_sqlite_file(path)
        return True
    name = _server_database_name(config)
    if config.is_postgresql:
        statement = f"CREATE DATABASE {_quoted(config, name)} ENCODING 'UTF8'"
    else:
        statement = (
            f"CREATE DATABASE {_quoted(config, name)} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    with _admin_connection(config, f"cannot create database {name!r}") as connection:
        if _server_database_exists(connection, config, name):
            return False
        connection.execute(text(statement))
    return True


def drop_database(config: DatabaseConfig) -> bool:
    """Drop the database ``config`` names, if it exists; True if it was dropped.

    Meant for throw-away databases, such as a test run's own. SQLite: the file
    with its ``-wal`` and ``-shm`` companions. PostgreSQL closes the database's
    other connections first.
    """
    if config.is_sqlite:
        path = config.sqlite_path
        if path is None or not path.exists():
            return False
        for ending in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{ending}"):
                os.unlink(f"{path}{ending}")
        return True
    name = _server_database_name(config)
    with _admin_connection(config, f"cannot drop database {name!r}") as connection:
        if not _server_database_exists(connection, config, name):
            return False
        if config.is_postgresql:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        connection.execute(text(f"DROP DATABASE {_quoted(config, name)}"))
    return True


def _server_database_name(config: DatabaseConfig) -> str:
    name = config.url.database
    if not name:
        raise ConfigurationError(f"the URL {config.database_url} names no database")
    return name


def _quoted(config: DatabaseConfig, name: str) -> str:
    if config.is_postgresql:
        return '"' + name.replace('"', '""') + '"'
    return "`" + name.replace("`", "``") + "`"


def _server_database_exists(connection: Connection, config: DatabaseConfig, name: str) -> bool:
    if config.is_postgresql:
        query = text("SELECT 1 FROM pg_database WHERE datname = :name")
    else:
        query = text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name")
    return connection.execute(query, {"name": name}).first() is not None


@contextmanager
def _admin_connection(config: DatabaseConfig, doing: str) -> Iterator[Connection]:
    """An autocommit connection to the server's always-present database, not the target."""
    # information_schema is readable by every MariaDB/MySQL user.
    admin = "postgres" if config.is_postgresql else "information_schema"
    engine = create_engine(
        config.url.set(database=admin), isolation_level="AUTOCOMMIT", **_connect_options(config)
    )
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise ConnectionError(
            f"{doing} on {config.database_url}: {reason[0] if reason else type(error).__name__} "
            "(is the server running, and may this user create and drop databases?)"
        ) from None
    finally:
        engine.dispose()


def _connect_options(config: DatabaseConfig) -> dict[str, Any]:
    options = config.engine_options()
    return {"connect_args": options["connect_args"]} if "connect_args" in options else {}


def _create_sqlite_file(path: os.PathLike[str] | str) -> None:
    """Create the SQLite file's folder, and the file itself readable by its owner only."""
    target = os.fspath(path)
    folder = os.path.dirname(target)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not os.path.exists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
