"""The Python migration API over Alembic: upgrade, downgrade, current and pending revisions.

The Alembic environment and its revisions ship inside the package
(``cardlink.database:migrations``), so these functions work from an installed
wheel. Every function resolves the database the way the library does (an
explicit ``manager``, ``config`` or ``database_url``, else ``DATABASE_URL``,
the ``CARDLINK_DB_*`` variables, then the SQLite default).

Each revision runs in its own transaction. PostgreSQL and SQLite roll a failed
revision back completely; MySQL/MariaDB commit every DDL statement as it runs,
so a failed revision there can leave its earlier statements applied while the
version table still names the last good revision.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import JSON, Connection, inspect
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError

from . import schema_version
from .config import DatabaseConfig
from .exceptions import DatabaseError, MigrationError, translated_errors
from .manager import DatabaseManager
from .models import Base
from .schema_version import SCRIPT_LOCATION, VERSION_TABLE
from .sqlite_locking import write_transactions
from .types import GUID, UTCDateTime

#: Alembic keeps the running environment in module globals: one command at a time per process.
_ALEMBIC_LOCK = threading.RLock()


# -- public API ------------------------------------------------------------------------


def run_migrations(
    revision: str = "head",
    *,
    sql: bool = False,
    output: TextIO | None = None,
    database_url: str | None = None,
    config: DatabaseConfig | None = None,
    manager: DatabaseManager | None = None,
    script_location: str | None = None,
) -> str | None:
    """Upgrade the database to ``revision``; with ``sql=True`` return the SQL instead.

    The dry run starts at the database's current revision and touches nothing
    (the SQL is also written to ``output`` when given). Otherwise the revision
    now current is returned. Example::

        run_migrations()                      # to head
        print(run_migrations(sql=True))       # what would run
    """
    with _managed(database_url, config, manager, create=not sql) as db:
        alembic_config = _alembic_config(db, script_location)
        script = ScriptDirectory.from_config(alembic_config)
        _resolve(script, revision)
        with _connection(db) as connection:
            current = _current_heads(connection)
            if not current:
                _refuse_unversioned(connection)
        if sql:
            buffer = io.StringIO()
            alembic_config.output_buffer = buffer
            start = current[0] if len(current) == 1 else None
            _run_command(
                command.upgrade,
                alembic_config,
                f"{start}:{revision}" if start else revision,
                sql=True,
            )
            text = buffer.getvalue()
            if output is not None:
                output.write(text)
            return text
        _migrate(db, alembic_config, script, command.upgrade, revision)
        return get_current_revision(manager=db)


def downgrade(
    steps: int = 1,
    *,
    revision: str | None = None,
    database_url: str | None = None,
    config: DatabaseConfig | None = None,
    manager: DatabaseManager | None = None,
    script_location: str | None = None,
) -> str | None:
    """Step back ``steps`` revisions, or to ``revision`` (``"base"`` removes every table).

    Returns the revision now current (None at base). Example::

        downgrade(steps=1)
        downgrade(revision="base")
    """
    if revision is None and (not isinstance(steps, int) or steps < 1):
        raise MigrationError(f"steps must be a whole number >= 1, got {steps!r}")
    target = revision if revision is not None else f"-{steps}"
    with _managed(database_url, config, manager) as db:
        alembic_config = _alembic_config(db, script_location)
        script = ScriptDirectory.from_config(alembic_config)
        with _connection(db) as connection:
            current = _current_heads(connection)
        if not current:
            if revision in (None, "base"):
                return None
            raise MigrationError("the database has no migration version to downgrade from")
        if revision is not None:
            _resolve(script, revision)
        _migrate(db, alembic_config, script, command.downgrade, target)
        return get_current_revision(manager=db)


def get_current_revision(
    *,
    database_url: str | None = None,
    config: DatabaseConfig | None = None,
    manager: DatabaseManager | None = None,
) -> str | None:
    """The revision the database is at, or None when no migration version is recorded."""
    with _managed(database_url, config, manager) as db, _connection(db) as connection:
        heads = _current_heads(connection)
    return ", ".join(heads) if heads else None


def get_pending_revisions(
    *,
    database_url: str | None = None,
    config: DatabaseConfig | None = None,
    manager: DatabaseManager | None = None,
    script_location: str | None = None,
) -> list[str]:
    """Revisions between the database's current one and head, oldest first."""
    with _managed(database_url, config, manager) as db:
        script = ScriptDirectory.from_config(_alembic_config(db, script_location))
        with _connection(db) as connection:
            current = _current_heads(connection)
        return _pending(script, current)


def get_head_revision(*, script_location: str | None = None) -> str:
    """The newest revision shipped with this package."""
    return ", ".join(schema_version.script_directory(script_location).get_heads())


@dataclass(frozen=True)
class RevisionInfo:
    """One shipped revision, as ``history`` lists it."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def get_history(*, script_location: str | None = None) -> list[RevisionInfo]:
    """Every shipped revision, newest first (like ``alembic history``); needs no database."""
    config = Config()
    config.set_main_option("script_location", script_location or SCRIPT_LOCATION)
    script = ScriptDirectory.from_config(config)
    heads = set(script.get_heads())
    history = []
    for entry in script.walk_revisions():
        down = entry.down_revision
        history.append(
            RevisionInfo(
                revision=entry.revision,
                down_revision=down if isinstance(down, str) or down is None else ", ".join(down),
                message=(entry.doc or "").strip().splitlines()[0] if entry.doc else "",
                is_head=entry.revision in heads,
            )
        )
    return history


def stamp(
    revision: str = "head",
    *,
    database_url: str | None = None,
    config: DatabaseConfig | None = None,
    manager: DatabaseManager | None = None,
    script_location: str | None = None,
) -> str | None:
    """Record ``revision`` as the database's current one without running any migration.

    For a database whose schema is known to match (``alembic stamp``); returns
    the revision now recorded (None for ``"base"``). Example::

        stamp("head")
    """
    with _managed(database_url, config, manager) as db:
        alembic_config = _alembic_config(db, script_location)
        _resolve(ScriptDirectory.from_config(alembic_config), revision)
        _run_command(command.stamp, alembic_config, revision, purge=True)
        return get_current_revision(manager=db)


def is_unversioned(manager: DatabaseManager) -> bool:
    """True for a database holding CardLink tables but no migration version (pre-migrations)."""
    with _connection(manager) as connection:
        if _current_heads(connection):
            return False
        names = set(inspect(connection).get_table_names())
    return bool(names & set(Base.metadata.tables))


def stamp_head_if_unversioned(manager: DatabaseManager) -> bool:
    """Record the head revision if none is recorded yet (after ``create_all``); True if stamped."""
    return schema_version.stamp_head_if_unversioned(manager.engine)


# -- internals -------------------------------------------------------------------------


@contextmanager
def _managed(
    database_url: str | None,
    config: DatabaseConfig | None,
    manager: DatabaseManager | None,
    *,
    create: bool = False,
) -> Iterator[DatabaseManager]:
    """The manager to work with: the caller's (left open) or a new one (closed afterwards).

    A new one never creates a missing SQLite file: only an upgrade may (``create``).
    """
    if manager is not None:
        yield manager
        return
    owned = DatabaseManager(config if config is not None else DatabaseConfig(database_url))
    try:
        owned.initialize(create=create)
        yield owned
    finally:
        owned.close()


@contextmanager
def _connection(manager: DatabaseManager) -> Iterator[Connection]:
    with translated_errors(), manager.engine.connect() as connection:
        yield connection


def _current_heads(connection: Connection) -> tuple[str, ...]:
    heads = schema_version.current_heads(connection)
    with translated_errors():
        connection.rollback()
    return heads


def _refuse_unversioned(connection: Connection) -> None:
    names = set(inspect(connection).get_table_names())
    if names & set(Base.metadata.tables):
        raise MigrationError(
            "the database has CardLink tables but no migration version (created before "
            "migrations); run `cardlink-db init` (or `alembic stamp head`) to record its revision"
        )


def _alembic_config(manager: DatabaseManager, script_location: str | None) -> Config:
    """An in-memory Alembic config: env.py reads the manager from ``attributes``."""
    alembic_config = Config(attributes={"cardlink_manager": manager})
    alembic_config.set_main_option("script_location", script_location or SCRIPT_LOCATION)
    return alembic_config


def _resolve(script: ScriptDirectory, revision: str) -> None:
    """Refuse a target revision the scripts do not know, before touching the database."""
    if revision in ("head", "heads", "base") or revision.startswith(("+", "-")):
        return
    try:
        found = script.get_revisions(revision.split("@")[-1])
    except CommandError as error:
        raise MigrationError(f"target revision not found: {error}") from None
    if not found:
        raise MigrationError(f"target revision not found: {revision!r}")


def _pending(script: ScriptDirectory, current: tuple[str, ...]) -> list[str]:
    lower = current if current else None
    try:
        revisions = list(script.iterate_revisions("heads", lower))
    except CommandError as error:
        raise MigrationError(
            f"the database's revision is unknown to this version: {error}"
        ) from None
    return [rev.revision for rev in reversed(revisions) if rev.revision not in current]


def _migrate(
    manager: DatabaseManager,
    alembic_config: Config,
    script: ScriptDirectory,
    run: Callable[..., Any],
    target: str,
) -> None:
    """Run an upgrade/downgrade; on failure name the revision and where the database stopped.

    Each revision commits on its own, so after a failure the version table names
    the last good revision: the failed one is the next pending (upgrade) or that
    very revision (downgrade).
    """
    try:
        with _ALEMBIC_LOCK:
            run(alembic_config, target)
    except CommandError as error:
        raise MigrationError(f"cannot migrate to {target!r}: {error}") from None
    except (SQLAlchemyError, DatabaseError) as error:
        with _connection(manager) as connection:
            now = _current_heads(connection)
        if run is command.upgrade:
            pending = _pending(script, now)
            failed = pending[0] if pending else target
        else:
            failed = ", ".join(now) or target
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason = detail[0] if detail else type(error).__name__
        raise MigrationError(
            f"migration {failed} failed: {reason} "
            f"(the database is left at revision {', '.join(now) or 'base'})"
        ) from error


def _run_command(
    run: Callable[..., Any],
    alembic_config: Config,
    target: str,
    *,
    sql: bool = False,
    purge: bool = False,
) -> None:
    try:
        with _ALEMBIC_LOCK:
            if sql:
                run(alembic_config, target, sql=True)
            elif purge:
                run(alembic_config, target, purge=True)
            else:
                run(alembic_config, target)
    except CommandError as error:
        raise MigrationError(f"migration command failed: {error}") from None
    except SQLAlchemyError as error:
        raise MigrationError(f"migration command failed: {error}") from error


# -- used by env.py --------------------------------------------------------------------


@contextmanager
def migration_connection(manager: DatabaseManager) -> Iterator[Connection]:
    """A connection for running revisions; on SQLite foreign keys are off meanwhile.

    SQLite batch migrations copy and drop tables; with foreign keys on, dropping a
    parent table would cascade-delete its children's rows. Violations are checked
    before the connection is handed back.
    """
    # A revision writes: on SQLite its transaction takes the write lock when it begins.
    with write_transactions(), manager.engine.connect() as connection:
        if not manager.config.is_sqlite:
            yield connection
            return
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            yield connection
            problems = raw.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                table = problems[0][0]
                raise MigrationError(
                    f"the migration ran but left {len(problems)} row(s) with broken foreign "
                    f"keys (first in table {table!r}; list them with PRAGMA foreign_key_check)"
                )
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate hook: write the layer's column types as plain SQLAlchemy types.

    Revisions then never import application code, which may change after they are written.
    """
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from sqlalchemy.dialects import mysql")
        return 'sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")'
    if isinstance(obj, GUID):
        return "sa.Uuid()"
    if isinstance(obj, JSON):
        if not isinstance(obj.dialect_impl(postgresql.dialect()), postgresql.JSONB):
            return f"sa.JSON(none_as_null={obj.none_as_null!r})"
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return (
            f"sa.JSON(none_as_null={obj.none_as_null!r})"
            f'.with_variant(postgresql.JSONB(none_as_null={obj.none_as_null!r}), "postgresql")'
        )
    if isinstance(obj, SAEnum) and not obj.native_enum:
        return f"sa.String(length={obj.length})"
    return False


__all__ = [
    "SCRIPT_LOCATION",
    "VERSION_TABLE",
    "RevisionInfo",
    "downgrade",
    "get_current_revision",
    "get_head_revision",
    "get_history",
    "get_pending_revisions",
    "is_unversioned",
    "migration_connection",
    "render_item",
    "run_migrations",
    "stamp",
    "stamp_head_if_unversioned",
]
