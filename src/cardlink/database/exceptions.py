"""The exception tree of the database layer, and translation of driver errors into it.

No exception type of SQLAlchemy or of a database driver leaves the public API:
repositories, units of work and the manager run their database calls inside
:func:`translated_errors`, which turns them into the classes below and keeps the
original as ``__cause__``. (Not an engine ``handle_error`` hook: SQLAlchemy's own
reflection catches driver errors, and must keep seeing them.)
"""

from __future__ import annotations

import re
from types import TracebackType

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


_DUPLICATE = re.compile(r"unique|duplicate", re.IGNORECASE)
_FOREIGN_KEY = re.compile(r"foreign key", re.IGNORECASE)
_MISSING_TABLE = re.compile(
    r"no such table|relation \"[^\"]+\" does not exist|Table '[^']+' doesn't exist", re.IGNORECASE
)
_NOT_NULL = re.compile(r"not[ -]null|cannot be null|doesn't have a default", re.IGNORECASE)


#: MariaDB/MySQL's ``CONSTRAINT ... failed`` (a CHECK), which PyMySQL raises as an OperationalError.
MYSQL_CHECK_FAILED = 4025


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


def describe_integrity_error(error: BaseException) -> str:
    """A short, secret-free sentence for a constraint violation."""
    detail = _first_line(error)
    if _FOREIGN_KEY.search(detail):
        kind = "foreign key violation"
    elif _DUPLICATE.search(detail):
        kind = "duplicate key"
    elif _NOT_NULL.search(detail):
        kind = "missing required value"
    else:
        kind = "constraint violation"
    return f"{kind}: {detail}"


def translate_dbapi_error(error: BaseException, *, url: str) -> DatabaseError | None:
    """Map a SQLAlchemy/DBAPI error to this package's tree (``None``: leave it)."""
    if isinstance(error, DatabaseError):
        return None
    if isinstance(error, sa_exc.IntegrityError) or is_check_violation(error):
        return IntegrityError(describe_integrity_error(error))
    if isinstance(error, sa_exc.TimeoutError):
        return ConnectionError(
            f"no free connection to {url}: the pool is exhausted and the wait timed out "
            f"({_first_line(error).split(' (Background')[0]}); raise pool_size/max_overflow/"
            "pool_timeout or close units of work sooner"
        )
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return ConnectionError(
            f"lost the connection to {url}: {_first_line(error)} "
            "(the unit of work was rolled back; the next one reconnects)"
        )
    if isinstance(error, sa_exc.DBAPIError) and _MISSING_TABLE.search(_first_line(error)):
        return DatabaseError(
            f"{url} has no CardLink tables yet ({_first_line(error)}): "
            "run manager.create_tables() or `cardlink-db init`"
        )
    if isinstance(error, sa_exc.OperationalError) and "database is locked" in str(error):
        return ConnectionError(
            f"{url} stayed locked by another writer past the busy timeout "
            "(DatabaseConfig.sqlite_busy_timeout_ms); retry, or raise the timeout"
        )
    if isinstance(error, sa_exc.OperationalError):
        return ConnectionError(f"database operation failed on {url}: {_first_line(error)}")
    if isinstance(error, sa_exc.DataError):
        return ValidationError(f"value refused by the database: {_first_line(error)}")
    if isinstance(error, sa_exc.DBAPIError):
        return DatabaseError(f"database error on {url}: {_first_line(error)}")
    return None
