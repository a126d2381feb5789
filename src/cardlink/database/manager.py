"""DatabaseManager: owns the engine and its pool, hands out ORM sessions, creates the schema."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from . import maintenance, sqlite_locking
from .config import DatabaseConfig
from .crypto import PSKCipher
from .exceptions import (
    ConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    IntegrityError,
    translated_errors,
)
from .models import Base
from .schema_version import VERSION_TABLE, stamp_head, stamp_head_if_unversioned
from .sqlite_locking import write_transactions

logger = logging.getLogger(__name__)

#: A pooled server connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


class DatabaseManager:
    """Connects to the configured database and is the factory for units of work.

    Example::

        manager = DatabaseManager()
        manager.initialize()
        manager.create_tables()
    """

    def __init__(self, config: DatabaseConfig | None = None) -> None:
        self.config = config if config is not None else DatabaseConfig()
        self._engine: Engine | None = None
        self._session_factory: sessionmaker[Session] | None = None
        self._cipher: tuple[str, PSKCipher] | None = None

    # -- lifecycle ---------------------------------------------------------------

    def initialize(self, *, create: bool = True) -> None:
        """Create the engine and check that the database answers; idempotent.

        A missing SQLite file is created, unless ``create=False``: then
        ``DatabaseNotFoundError`` is raised and nothing is created (for work that
        only reads, so a mistyped path does not leave an empty database behind).
        """
        if self._engine is not None:
            return
        engine = self._build_engine(create=create)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, DatabaseError, OSError) as error:
            engine.dispose()
            raise ConnectionError(self._connection_hint(error)) from None
        self._engine = engine
        if self.config.is_sqlite:
            factory = sessionmaker(
                bind=engine, expire_on_commit=False, info={sqlite_locking.SQLITE_SESSION: True}
            )
            sqlite_locking.install(engine, factory)
        else:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
        self._session_factory = factory
        logger.info("connected to %s", self.config.database_url)

    def close(self) -> None:
        """Dispose of the pool; the manager can be initialized again later."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._session_factory = None

    def __enter__(self) -> DatabaseManager:
        self.initialize()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_initialized(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (initializing on first use)."""
        if self._engine is None:
            self.initialize()
        assert self._engine is not None
        return self._engine

    def create_session(self) -> Session:
        """A new ORM session; prefer :class:`UnitOfWork`, which also commits and rolls back."""
        if self._session_factory is None:
            self.initialize()
        assert self._session_factory is not None
        return self._session_factory()

    # -- schema ------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create every table and index that does not exist yet, and record the schema revision."""
        with translated_errors():
            Base.metadata.create_all(self.engine)
        stamp_head_if_unversioned(self.engine)

    def recreate_tables(self) -> None:
        """Drop and create every CardLink table (all rows are lost), then record the revision.

        Drop and create share one transaction, so on SQLite and PostgreSQL an error
        leaves the old tables and rows in place; MariaDB commits each DDL statement,
        which is why foreign tables that would block a DROP are looked for first.
        """
        with translated_errors(), write_transactions(), self.engine.begin() as connection:
            _refuse_foreign_references(connection)
            Base.metadata.drop_all(connection)
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
            Base.metadata.create_all(connection)
            stamp_head(connection)

    def drop_tables(self) -> None:
        """Drop every CardLink table (and the migration version table), in one transaction.

        A table outside CardLink whose foreign key points at one of ours would make a
        DROP fail half-way - and MariaDB commits each DROP - so it is looked for first:
        ``IntegrityError`` naming it, and nothing is dropped.
        """
        with translated_errors(), write_transactions(), self.engine.begin() as connection:
            _refuse_foreign_references(connection)
            Base.metadata.drop_all(connection)
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))

    # -- maintenance -------------------------------------------------------------

    def create_database(self) -> bool:
        """Create the configured database if it is missing (SQLite file or server database).

        Returns True if it was created. Call it before :meth:`initialize` on a server
        whose database may not exist yet. Example::

            manager.create_database()
            manager.create_tables()
        """
        return maintenance.create_database(self.config)

    def stats(self) -> maintenance.DatabaseStats:
        """Rows per table, size on disk, and sessions and test results of the last 24 hours."""
        return maintenance.stats(self)

    def purge(
        self,
        *,
        older_than: timedelta | datetime,
        tables: Iterable[str] = maintenance.PURGEABLE,
        dry_run: bool = False,
    ) -> maintenance.PurgeResult:
        """Delete logs, sessions or test results older than ``older_than``, in one transaction.

        Purging sessions deletes their logs too; ``dry_run=True`` only counts. Example::

            manager.purge(older_than=timedelta(days=90), tables=["logs"], dry_run=True)
        """
        return maintenance.purge(self, older_than=older_than, tables=tables, dry_run=dry_run)

    # -- secrets -----------------------------------------------------------------

    @property
    def cipher(self) -> PSKCipher:
        """The PSK cipher for the configured key(s); raises EncryptionError if none is set."""
        keys = self.config.encryption_key
        if self._cipher is None or self._cipher[0] != keys:
            self._cipher = (keys or "", PSKCipher(keys))
        return self._cipher[1]

    # -- internals ---------------------------------------------------------------

    def _build_engine(self, *, create: bool) -> Engine:
        config = self.config
        options = config.engine_options()
        sqlite_path = config.sqlite_path
        if config.is_sqlite and sqlite_path is None:
            options["poolclass"] = StaticPool
        if sqlite_path is not None:
            if create:
                maintenance.create_database(config)
            elif not sqlite_path.exists():
                raise DatabaseNotFoundError(
                    f"no database at {sqlite_path}; run `cardlink-db init` to create it"
                )
        engine = create_engine(config.url, **options)
        if config.is_sqlite:
            _configure_sqlite(engine, busy_timeout_ms=config.sqlite_busy_timeout_ms)
        else:
            _ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)
        if config.is_mysql:
            _no_read_timeout_once_connected(engine)
        return engine

    def _connection_hint(self, error: BaseException) -> str:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason = detail[0] if detail else type(error).__name__
        if _timed_out(error):
            return (
                f"Unable to connect to database {self.config.database_url}: the server did not "
                f"answer within the connect timeout of {self.config.connect_timeout:g} s "
                "(DatabaseConfig(connect_timeout=...) or CARDLINK_DB_CONNECT_TIMEOUT; is the "
                "server up, and is that its host and port?)"
            )
        if self.config.is_sqlite:
            hint = "is the folder writable and the file a SQLite database?"
        else:
            hint = (
                "is the server running and reachable, are the user, password and database "
                "name right, and is the driver extra installed?"
            )
        return f"Unable to connect to database {self.config.database_url}: {reason} ({hint})"

    def __repr__(self) -> str:
        state = "initialized" if self.is_initialized else "not initialized"
        return f"DatabaseManager({self.config.database_url!r}, {state})"


def _timed_out(error: BaseException) -> bool:
    """Whether connecting failed on the connect timeout, told by exception type, not text.

    psycopg raises ``ConnectionTimeout``; PyMySQL wraps the socket's ``TimeoutError``
    (as ``original_exception``, or as the context of its "lost connection" error).
    """
    timeouts: tuple[type[BaseException], ...] = (TimeoutError,)
    psycopg = sys.modules.get("psycopg")  # loaded if it is the driver in use
    if psycopg is not None:
        timeouts += (psycopg.errors.ConnectionTimeout,)
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, timeouts):
            return True
        pending += [
            getattr(current, "orig", None),
            getattr(current, "original_exception", None),
            current.__cause__,
            current.__context__,
        ]
    return False


def _refuse_foreign_references(connection: Connection) -> None:
    """``IntegrityError`` if a table that is not CardLink's has a foreign key to one of ours."""
    ours = set(Base.metadata.tables)
    inspector = inspect(connection)
    blockers = []
    for name in sorted(set(inspector.get_table_names()) - ours - {VERSION_TABLE}):
        for foreign_key in inspector.get_foreign_keys(name):
            if foreign_key.get("referred_table") in ours:
                blockers.append(f"{name} -> {foreign_key['referred_table']}")
    if blockers:
        raise IntegrityError(
            f"cannot drop the CardLink tables: other tables point at them ({', '.join(blockers)}); "
            "nothing was dropped (drop those tables or their foreign keys first)"
        )


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection with a round trip before use, unless it was in use just now.

    A connection the server dropped while it sat in the pool (restart, idle timeout,
    KILL) is replaced before the caller sees it. Pinging one returned less than
    ``idle_seconds`` ago would add a round trip to every short unit of work for a
    connection that was just working; a connection lost inside that window fails its
    first statement with ``ConnectionError`` and the pool replaces it (the same
    trade-off as HikariCP's alive-bypass window).
    """
    dialect = engine.dialect
    clock = time.monotonic
    stamp = "cardlink_idle_since"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info[stamp] = clock()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[stamp] = clock()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(stamp)
        if since is not None and clock() - since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool discards this connection and hands out a fresh one.
                raise DisconnectionError(f"pooled connection was dropped: {error}") from error
            raise


def _no_read_timeout_once_connected(engine: Engine) -> None:
    """PyMySQL: drop the read timeout that bounded the handshake, so a long query may run.

    PyMySQL has no public way to change it on an open connection; ``_read_timeout`` is
    the attribute its ``read_timeout`` argument sets, and it applies it before each read.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        if hasattr(dbapi_connection, "_read_timeout"):
            dbapi_connection._read_timeout = None


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    """Foreign keys on, WAL, a busy timeout; ``sqlite_locking`` decides how transactions begin."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SAVEPOINTs need it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
