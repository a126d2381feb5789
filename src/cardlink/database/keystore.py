"""The PSK key store a TLS-PSK server asks on every handshake: identity -> decrypted key.

``PSKKeyStore(manager)`` is process-level and thread-safe. Each call is one short
read: a single SELECT on a connection in autocommit mode, so the read is its own
transaction and ends with the statement. On SQLite that is a WAL reader, which
never takes or waits for the write lock (a unit of work's ``BEGIN IMMEDIATE``
would), so a handshake never delays a writer and a writer never delays a
handshake. The connections come from the key store's own pool, a copy of the
engine's (``Pool.recreate()``: same driver settings and connect hooks), so the
key store never takes connections from the units of work; each thread's call
borrows an idle one and hands it back, and one found dead is replaced once.

The three answers always agree: an identity "exists" exactly when a card holds it
together with a PSK key, ``get_key`` then returns that key, and the identity is in
``get_all_identities()``. Anything that cannot be a stored identity (None, '',
text longer than the column, NUL, a lone surrogate, bytes that are not UTF-8) is
simply unknown: ``None`` / ``False``, never an exception. Identities compare
exactly, also on MariaDB, whose collation would call ``'id'`` and ``'id '`` equal.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Dialect, Select, String, Table, bindparam, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql
from sqlalchemy.pool import PoolProxiedConnection, StaticPool

from .exceptions import ConnectionError, translated_errors
from .models import CardProfile

if TYPE_CHECKING:
    from .manager import DatabaseManager

_CARDS = cast(Table, CardProfile.__table__)
_IDENTITY = _CARDS.c.psk_identity
_TOKEN = _CARDS.c.psk_key_encrypted
#: Longest identity the column holds; a longer one names no card.
MAX_IDENTITY_LENGTH = int(cast(String, _IDENTITY.type).length or 0)


def stored_identity(identity: object) -> str | None:
    """``identity`` as it would be stored, or None if no card can hold it (never raises)."""
    if isinstance(identity, bytes | bytearray):
        try:
            identity = bytes(identity).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(identity, str) or not 0 < len(identity) <= MAX_IDENTITY_LENGTH:
        return None
    if "\x00" in identity:
        return None
    try:
        identity.encode("utf-8")  # a lone surrogate cannot be sent to any driver
    except UnicodeEncodeError:
        return None
    return identity


def key_lookup() -> Select[Any]:
    """(identity, token) of the card holding ``:identity`` with a key (the unique index)."""
    return select(_IDENTITY, _TOKEN).where(
        _CARDS.c.psk_identity == bindparam("identity", None, type_=String()), _TOKEN.is_not(None)
    )


def identities_query(dialect_name: str) -> Select[Any]:
    """Every identity held with a key, sorted by code point in SQL on every backend."""
    if dialect_name == "postgresql":
        order: Any = _IDENTITY.collate("C")
    elif dialect_name in ("mysql", "mariadb"):
        order = sql_cast(_IDENTITY, mysql.BINARY())
    else:
        order = _IDENTITY  # SQLite compares text byte-wise already
    return (
        select(_IDENTITY)
        .where(_IDENTITY.is_not(None), func.length(_IDENTITY) > 0, _TOKEN.is_not(None))
        .order_by(order)
    )


def matching_token(rows: Any, identity: str) -> str | None:
    """The token of the row whose identity is exactly ``identity`` (MariaDB pads spaces)."""
    for found, token in rows:
        if found == identity:
            return cast(str, token)
    return None


class _Prepared:
    """A statement compiled once for a dialect, run on a DBAPI cursor."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql = compiled.string
        self.names = list(compiled.positiontup or []) if compiled.positional else None
        self.fixed = compiled.construct_params()

    def parameters(self, **values: Any) -> Any:
        merged = {**self.fixed, **values}
        if self.names is None:
            return merged
        return tuple(merged[name] for name in self.names)

    def one_parameter(self, name: str) -> Callable[[Any], Any]:
        """A fast ``value -> parameters`` for a statement whose only bind is ``name``."""
        if self.names is not None:
            assert self.names == [name], self.names
            return lambda value: (value,)
        assert list(self.fixed) == [name], list(self.fixed)
        return lambda value: {name: value}


class PSKKeyStore:
    """Identity -> PSK key for a TLS-PSK server, callable from many threads at once.

    Example::

        store = PSKKeyStore(manager)
        key = store.get_key("card-001")        # bytes, or None for an unknown identity
        store.close()                           # or use it as a context manager
    """

    def __init__(self, manager: DatabaseManager) -> None:
        self._manager = manager
        engine = manager.engine
        self._dialect = engine.dialect
        self._shared = isinstance(engine.pool, StaticPool)  # in-memory SQLite: one connection
        self._pool = engine.pool if self._shared else engine.pool.recreate()
        self._lookup = _Prepared(key_lookup(), self._dialect)
        self._lookup_parameters = self._lookup.one_parameter("identity")
        self._listing = _Prepared(identities_query(self._dialect.name), self._dialect)
        self._idle: list[PoolProxiedConnection] = []
        self._closed = False

    # -- the TLS server's three questions ------------------------------------------------

    def get_key(self, identity: object) -> bytes | None:
        """The decrypted PSK key of the card holding ``identity``, or None if none does.

        ``EncryptionError`` if the stored key opens under no configured Fernet key.
        """
        wanted = stored_identity(identity)
        if wanted is None:
            return None
        token = matching_token(self._fetch(self._lookup, self._lookup_parameters(wanted)), wanted)
        return None if token is None else self._manager.cipher.decrypt(token)

    def identity_exists(self, identity: object) -> bool:
        """Whether a card holds ``identity`` together with a PSK key."""
        wanted = stored_identity(identity)
        if wanted is None:
            return False
        rows = self._fetch(self._lookup, self._lookup_parameters(wanted))
        return matching_token(rows, wanted) is not None

    def get_all_identities(self) -> list[str]:
        """Every identity held with a PSK key, sorted (by code point, on every backend)."""
        return [row[0] for row in self._fetch(self._listing, self._listing.parameters())]

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the key store's connections; calls after this raise ``ConnectionError``."""
        self._closed = True
        self._release_idle()
        if not self._shared:
            self._pool.dispose()

    def __enter__(self) -> PSKKeyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"PSKKeyStore({self._manager.config.database_url!r}, {state})"

    # -- internals ------------------------------------------------------------------------

    def _fetch(self, prepared: _Prepared, parameters: Any) -> list[Any]:
        """Rows of one autocommit SELECT; a connection found dead is replaced once."""
        for attempt in (1, 2):
            connection = self._borrow()
            cursor = connection.cursor()
            try:
                cursor.execute(prepared.sql, parameters)
                rows = cursor.fetchall()
            except self._dialect.loaded_dbapi.Error as error:
                lost = self._dialect.is_disconnect(error, connection.dbapi_connection, cursor)
                if lost:
                    connection.invalidate(error)
                    connection.close()
                else:
                    cursor.close()
                    self._give_back(connection)
                if lost and attempt == 1:
                    continue
                wrapped = sa_exc.DBAPIError.instance(
                    prepared.sql,
                    parameters,
                    error,
                    self._dialect.loaded_dbapi.Error,
                    connection_invalidated=lost,
                    dialect=self._dialect,
                )
                with translated_errors():
                    raise wrapped from error
            cursor.close()
            self._give_back(connection)
            return list(rows)
        raise AssertionError("unreachable")  # pragma: no cover

    def _borrow(self) -> PoolProxiedConnection:
        if self._closed:
            raise ConnectionError("this PSKKeyStore is closed; create a new one")
        try:
            return self._idle.pop()  # atomic: no lock on the hot path
        except IndexError:
            pass
        with translated_errors():
            connection = self._pool.connect()
            if not self._shared:
                # Each statement its own transaction: nothing is held between handshakes.
                dbapi_connection = connection.dbapi_connection
                assert dbapi_connection is not None
                self._dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
        return connection

    def _give_back(self, connection: PoolProxiedConnection) -> None:
        self._idle.append(connection)
        if self._closed:  # close() ran meanwhile: it may have missed this one
            self._release_idle()

    def _release_idle(self) -> None:
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return
            connection.close()
