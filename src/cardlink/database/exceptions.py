"""The exception tree of the database layer, and translation of driver errors into it.

No exception type of SQLAlchemy or of a database driver leaves the public API:
repositories, units of work and the manager run their database calls inside
:func:`translated_errors`, which turns them into the classes below and keeps the
original as ``__cause__``. (Not an engine ``handle_error`` hook: SQLAlchemy's own
reflection catches driver errors, and must keep seeing them.)

Errors are classified by cause, never by message text: PostgreSQL's SQLSTATE,
MySQL/MariaDB's errno, SQLite's (extended) result code, and SQLAlchemy's own
disconnect flag. Python 3.10's sqlite3 exceptions carry no result code; there a
SQLite error is classified by its exception class alone (``IntegrityError``,
``DataError``), and everything else is a plain ``DatabaseError``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy import exc as sa_exc


class DatabaseError(Exception):
    """Base class of every error raised by ``cardlink.database``."""


class NotFoundError(DatabaseError, LookupError):
    """A row looked up by its key does not exist."""


class IntegrityError(DatabaseError):
    """A constraint refused the write: duplicate key, foreign key, NOT NULL."""


class ConnectionError(DatabaseError):  # the guide's name, shadowing the builtin
    """The database cannot be reached, or the connection was lost or timed out."""


class DatabaseNotFoundError(ConnectionError):
    """The SQLite file does not exist, and the call only reads, so it was not created."""


class EncryptionError(DatabaseError):
    """A PSK key cannot be encrypted or decrypted (key missing, malformed or wrong)."""


class MigrationError(DatabaseError):
    """A schema migration failed or its target revision does not exist."""


class SchemaOutOfDateError(DatabaseError):
    """The database lacks a table or column this version needs: run ``cardlink-db migrate``."""


class RetryableError(DatabaseError):
    """The transaction lost a race (deadlock, serialization failure, lock wait timeout).

    The database rolled it back; running the whole unit of work again can succeed.
    """


class ValidationError(DatabaseError, ValueError):
    """Input was refused before it reached the database; the message names the field."""


class ConfigurationError(DatabaseError, ValueError):
    """The database configuration is unusable (bad URL, missing driver extra)."""


class _TranslatedErrors:
    """The context manager behind :func:`translated_errors`; stateless, so one serves all
    (a class, not ``@contextmanager``: it wraps every repository call, and needs no
    generator per call)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, sa_exc.PendingRollbackError):
            raise DatabaseError(
                "this unit of work was rolled back by an earlier error; "
                "call rollback() before reusing it"
            ) from None
        if isinstance(error, sa_exc.SQLAlchemyError):
            translated = translate_dbapi_error(error, url="the database")
            raise (translated or DatabaseError(_first_line(error))) from error


_TRANSLATED_ERRORS = _TranslatedErrors()


def translated_errors() -> _TranslatedErrors:
    """A ``with`` block in which any SQLAlchemy error becomes a ``DatabaseError``."""
    return _TRANSLATED_ERRORS


#: The kinds of constraint violation, named in ``IntegrityError`` messages.
_DUPLICATE = "duplicate key"
_FOREIGN_KEY = "foreign key violation"
_NOT_NULL = "missing required value"
_CHECK = "check constraint violation"
_CONSTRAINT = "constraint violation"

# PostgreSQL SQLSTATEs (Appendix A of its manual).
_PG_INTEGRITY = {"23505": _DUPLICATE, "23503": _FOREIGN_KEY, "23502": _NOT_NULL, "23514": _CHECK}
_PG_MISSING_OBJECT = frozenset({"42P01", "42703"})  # undefined_table, undefined_column
#: deadlock_detected, serialization_failure, lock_not_available (lock_timeout, NOWAIT)
_PG_RETRYABLE = frozenset({"40P01", "40001", "55P03"})
#: admin/crash shutdown, cannot connect now, too many connections, unknown database
_PG_CONNECTION = frozenset({"57P01", "57P02", "57P03", "53300", "3D000"})
_PG_CONNECTION_CLASSES = ("08", "28")  # connection exception, invalid authorization

# MySQL/MariaDB server and client error numbers.
#: MariaDB/MySQL's ``CONSTRAINT ... failed`` (a CHECK), which PyMySQL raises as an OperationalError.
MYSQL_CHECK_FAILED = 4025
_MY_INTEGRITY = {
    1062: _DUPLICATE,  # ER_DUP_ENTRY
    1586: _DUPLICATE,  # ER_DUP_ENTRY_WITH_KEY_NAME
    1022: _DUPLICATE,  # ER_DUP_KEY
    1451: _FOREIGN_KEY,  # ER_ROW_IS_REFERENCED_2
    1452: _FOREIGN_KEY,  # ER_NO_REFERENCED_ROW_2
    1216: _FOREIGN_KEY,  # ER_NO_REFERENCED_ROW
    1217: _FOREIGN_KEY,  # ER_ROW_IS_REFERENCED
    1048: _NOT_NULL,  # ER_BAD_NULL_ERROR
    1364: _NOT_NULL,  # ER_NO_DEFAULT_FOR_FIELD
    3819: _CHECK,  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
    MYSQL_CHECK_FAILED: _CHECK,  # ER_CONSTRAINT_FAILED (MariaDB)
}
_MY_MISSING_OBJECT = frozenset({1146, 1054})  # ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR
#: ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_CHECKREAD (MariaDB snapshot isolation)
_MY_RETRYABLE = frozenset({1213, 1205, 1020})
#: too many connections, access denied, unknown database, shutdown, aborted/killed connection
_MY_CONNECTION = frozenset({1040, 1044, 1045, 1049, 1053, 1152, 1184, 1927, 4031})
_MY_CLIENT_ERRORS = range(2000, 3000)  # CR_*: the client could not reach or lost the server
#: data too long, out of range, truncated/incorrect value, invalid JSON
_MY_VALUE = frozenset({1406, 1264, 1265, 1292, 1366, 1367, 3140, 4038})

# SQLite result codes (https://sqlite.org/rescode.html); extended codes keep the primary
# code in their low byte.
_SQLITE_ERROR = 1  # generic: a missing table or column has no code of its own
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_CANTOPEN, _SQLITE_NOTADB = 14, 26
_SQLITE_TOOBIG, _SQLITE_CONSTRAINT, _SQLITE_MISMATCH, _SQLITE_RANGE = 18, 19, 20, 25
_SQLITE_INTEGRITY = {  # SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY, _FOREIGNKEY, _NOTNULL, _CHECK
    2067: _DUPLICATE,
    1555: _DUPLICATE,
    787: _FOREIGN_KEY,
    1299: _NOT_NULL,
    275: _CHECK,
}


def is_check_violation(error: BaseException) -> bool:
    """Whether ``error`` is MariaDB refusing a CHECK constraint (told by its errno)."""
    args = getattr(getattr(error, "orig", None), "args", ())
    if not isinstance(error, sa_exc.OperationalError) or not args:
        return False
    return bool(args[0] == MYSQL_CHECK_FAILED)


def _first_line(error: BaseException) -> str:
    """The driver's own message, first line only, without SQLAlchemy's SQL echo."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _cause(error: BaseException) -> tuple[str, Any]:
    """(backend, code) of a driver error: ``("postgresql", "23505")``, ``("mysql", 1062)``,
    ``("sqlite", 2067)``; the code is None when the driver gives none."""
    original = getattr(error, "orig", None)
    if original is None:
        return "", None
    module = type(original).__module__.split(".")[0]
    if module in ("psycopg", "psycopg2"):
        return "postgresql", getattr(original, "sqlstate", None) or getattr(
            original, "pgcode", None
        )
    if module in ("pymysql", "MySQLdb", "mysql", "mariadb"):
        code = original.args[0] if original.args else None
        return "mysql", code if isinstance(code, int) else None
    if module == "sqlite3":
        return "sqlite", getattr(original, "sqlite_errorcode", None)  # None before Python 3.11
    return "", None


def _integrity_kind(error: BaseException) -> str:
    backend, code = _cause(error)
    if backend == "postgresql" and code is not None:
        return _PG_INTEGRITY.get(code, _CONSTRAINT)
    if backend == "mysql" and code is not None:
        return _MY_INTEGRITY.get(code, _CONSTRAINT)
    if backend == "sqlite" and code is not None:
        return _SQLITE_INTEGRITY.get(code, _CONSTRAINT)
    return _CONSTRAINT


def is_duplicate_key(error: BaseException) -> bool:
    """Whether ``error`` is a unique or primary key violation (told by SQLSTATE/errno/code)."""
    return _integrity_kind(error) == _DUPLICATE


def describe_integrity_error(error: BaseException) -> str:
    """A short, secret-free sentence for a constraint violation, its kind found by code."""
    return f"{_integrity_kind(error)}: {_first_line(error)}"


def _category(error: BaseException) -> str | None:
    """What caused a driver error, by its code: ``integrity``, ``schema``, ``retryable``,
    ``connection``, ``value``, or None when the code says nothing more specific."""
    backend, code = _cause(error)
    if code is None:
        # psycopg gives no SQLSTATE when the server never answered (refused, unreachable).
        lost = backend == "postgresql" and isinstance(error, sa_exc.OperationalError)
        return "connection" if lost else None
    if backend == "postgresql":
        if code.startswith("23"):
            return "integrity"
        if code in _PG_MISSING_OBJECT:
            return "schema"
        if code in _PG_RETRYABLE:
            return "retryable"
        if code in _PG_CONNECTION or code.startswith(_PG_CONNECTION_CLASSES):
            return "connection"
        if code.startswith("22"):  # data exception
            return "value"
    elif backend == "mysql":
        if code in _MY_INTEGRITY:
            return "integrity"
        if code in _MY_MISSING_OBJECT:
            return "schema"
        if code in _MY_RETRYABLE:
            return "retryable"
        if code in _MY_CONNECTION or code in _MY_CLIENT_ERRORS:
            return "connection"
        if code in _MY_VALUE:
            return "value"
    elif backend == "sqlite":
        primary = code & 0xFF
        if primary == _SQLITE_CONSTRAINT:
            return "integrity"
        if primary == _SQLITE_ERROR:
            # SQLite has no code of its own for a missing table or column, only this
            # generic one. The layer's statements are generated from the models, so a
            # database lacking what they name is what raises it (a statement past one of
            # SQLite's limits, such as too many variables, would be reported the same way).
            return "schema"
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return "retryable"
        if primary in (_SQLITE_CANTOPEN, _SQLITE_NOTADB):
            return "connection"
        if primary in (_SQLITE_TOOBIG, _SQLITE_MISMATCH, _SQLITE_RANGE):
            return "value"
    return None


#: Said by every ``SchemaOutOfDateError``, the same on every backend.
SCHEMA_OUT_OF_DATE = (
    "the database schema is behind this version of CardLink (a table or column it needs is "
    "missing): run `cardlink-db migrate`, or `cardlink-db init` (manager.create_tables()) "
    "if the database has no tables yet"
)


def translate_dbapi_error(error: BaseException, *, url: str) -> DatabaseError | None:
    """Map a SQLAlchemy/DBAPI error to this package's tree (``None``: leave it)."""
    if isinstance(error, DatabaseError):
        return None
    if isinstance(error, sa_exc.TimeoutError):
        return ConnectionError(
            f"no free connection to {url}: the pool is exhausted and the wait timed out "
            f"({_first_line(error).split(' (Background')[0]}); raise pool_size/max_overflow/"
            "pool_timeout or close units of work sooner"
        )
    if isinstance(error, sa_exc.DisconnectionError) or (
        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
    ):
        return ConnectionError(
            f"lost the connection to {url}: {_first_line(error)} "
            "(the unit of work was rolled back; the next one reconnects)"
        )
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    category = _category(error)
    if category == "integrity" or (category is None and isinstance(error, sa_exc.IntegrityError)):
        return IntegrityError(describe_integrity_error(error))
    if category == "schema":
        return SchemaOutOfDateError(SCHEMA_OUT_OF_DATE)
    if category == "retryable":
        return RetryableError(_retry_message(error, url))
    if category == "connection":
        return ConnectionError(f"the connection to {url} failed: {_first_line(error)}")
    if category == "value" or (category is None and isinstance(error, sa_exc.DataError)):
        return ValidationError(f"value refused by the database: {_first_line(error)}")
    return DatabaseError(f"database error on {url}: {_first_line(error)}")


def _retry_message(error: BaseException, url: str) -> str:
    backend, _ = _cause(error)
    if backend == "sqlite":
        reason = (
            "stayed locked by another writer past the busy timeout "
            "(DatabaseConfig.sqlite_busy_timeout_ms)"
        )
    else:
        reason = f"lost a race with another transaction: {_first_line(error)}"
    return f"{url} {reason}; roll the unit of work back and run it again"
