"""DatabaseConfig: where the database is, which driver reaches it, and how the pool behaves.

Resolution order: an explicit ``database_url``, then ``DATABASE_URL``, then the
``CARDLINK_DB_*`` components, then the SQLite default. Plain ``mysql://`` and
``postgresql://`` URLs get the driver the extras install (PyMySQL, psycopg 3).
The password never appears in a repr, str, log line or error message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .exceptions import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///data/cardlink.db"
#: Seconds a server may take to answer a new connection before it counts as unreachable.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: The driver each backend gets when the URL names none, and the extra that installs it.
_DRIVERS: dict[str, tuple[str, str, str]] = {
    # backend: (drivername, importable module, extra)
    "sqlite": ("sqlite", "sqlite3", ""),
    "postgresql": ("postgresql+psycopg", "psycopg", "postgresql"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgresql"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}
_MYSQL_STRICT = (
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))"
)
_DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432, "postgres": 5432}


def mask_url(url: URL | str) -> str:
    """The URL as text with its password replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def normalize_url(url: URL | str) -> URL:
    """Parse ``url`` and give plain backend names their default driver."""
    if isinstance(url, str):
        refuse_unencoded_at(url)
    try:
        parsed = url if isinstance(url, URL) else make_url(str(url).strip())
    except ArgumentError:
        raise ConfigurationError(
            "invalid database URL: expected e.g. sqlite:///data/cardlink.db, "
            "postgresql://user:pass@host/db or mysql://user:pass@host/db"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and parsed.host:
        raise ConfigurationError(
            f"invalid SQLite URL {mask_url(parsed)}: with two slashes "
            f"{parsed.host!r} is read as a host name; use "
            f"sqlite:///{parsed.host}/{parsed.database or ''} (three slashes) for a path "
            f"relative to the current folder, or sqlite:////{parsed.host}/"
            f"{parsed.database or ''} (four slashes) for an absolute path"
        )
    if backend not in _DRIVERS:
        raise ConfigurationError(
            f"unsupported database backend {backend!r} in {mask_url(parsed)}: "
            "use sqlite, postgresql or mysql (MariaDB)"
        )
    default_driver, _, extra = _DRIVERS[backend]
    if not driver:
        parsed = parsed.set(drivername=default_driver)
    _check_driver(parsed, backend=backend, default_driver=default_driver, extra=extra)
    return parsed


def refuse_unencoded_at(url: str) -> None:
    """Refuse a server URL with more than one ``@`` before its path: a raw ``@`` in the password.

    SQLAlchemy would read the password up to the first ``@`` and the rest of it as the
    host, which then shows unmasked in every error and in ``status``. The message
    repeats nothing of the URL.
    """
    scheme, separator, rest = url.strip().partition("://")
    if not separator or scheme.split("+")[0].lower() == "sqlite":
        return
    if rest.split("?", 1)[0].count("@") > 1:
        raise ConfigurationError(
            "the database URL has more than one '@' before its host, so part of the password "
            "would be read as the host name: percent-encode '@' in the password as %40 "
            "(or give the password in CARDLINK_DB_PASSWORD)"
        )


def connect_timeout_from(value: float | None, env: Mapping[str, str]) -> float:
    """The connect timeout in seconds: ``value``, else ``CARDLINK_DB_CONNECT_TIMEOUT``, else 10."""
    source = "connect_timeout"
    if value is None:
        text = env.get("CARDLINK_DB_CONNECT_TIMEOUT", "").strip()
        if not text:
            return DEFAULT_CONNECT_TIMEOUT
        source = "CARDLINK_DB_CONNECT_TIMEOUT"
        try:
            value = float(text)
        except ValueError:
            raise ConfigurationError(
                f"CARDLINK_DB_CONNECT_TIMEOUT must be a number of seconds, got {text[:32]!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86_400:
        raise ConfigurationError(
            f"{source} must be a number of seconds between 0 and 86400, got {value!r}"
        )
    return float(value)


def _check_driver(url: URL, *, backend: str, default_driver: str, extra: str) -> None:
    """Refuse a URL whose driver is unknown, asynchronous or not installed, naming the fix."""
    driver = url.get_driver_name()
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ConfigurationError(
            f"unknown {backend} driver {driver!r} in {mask_url(url)}: "
            f"use {backend}:// without a driver suffix"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise ConfigurationError(
            missing_driver_message(
                backend,
                driver,
                default=url.drivername == default_driver,
                extra=extra,
                module=getattr(error, "name", None) or driver,
            )
        ) from None
    if dialect.is_async:
        raise ConfigurationError(
            f"the {backend} driver {driver!r} is asynchronous, which this layer does not use: "
            f"use {backend}:// without a driver suffix (driver: gp-ota-tester[{extra}])"
        )


def missing_driver_message(
    backend: str, driver: str, *, default: bool, extra: str, module: str
) -> str:
    """One line naming the missing driver and the extra (or package) that installs it."""
    if not extra:
        return f"this Python has no {module!r} module, which {backend} needs: install a full Python"
    install = f"pip install 'gp-ota-tester[{extra}]'"
    if default:
        return f"the {backend} driver {driver} (module {module!r}) is not installed: {install}"
    return (
        f"the {backend} driver {driver} (module {module!r}) named in the URL is not installed: "
        f"install it, or drop '+{driver}' from the URL and {install}"
    )


#: The variables that describe a database by its parts; DRIVER is required with any other.
COMPONENT_VARIABLES = (
    "CARDLINK_DB_DRIVER",
    "CARDLINK_DB_HOST",
    "CARDLINK_DB_PORT",
    "CARDLINK_DB_NAME",
    "CARDLINK_DB_USER",
    "CARDLINK_DB_PASSWORD",
)


def _url_from_components(env: Mapping[str, str]) -> URL | None:
    driver = env.get("CARDLINK_DB_DRIVER")
    if not driver:
        given = [name for name in COMPONENT_VARIABLES if env.get(name)]
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                "CARDLINK_DB_DRIVER is missing: set it to sqlite, postgresql or mysql "
                "(or give DATABASE_URL)"
            )
        return None
    driver = driver.strip().lower()
    if driver == "sqlite":
        return make_url(f"sqlite:///{env.get('CARDLINK_DB_NAME', 'data/cardlink.db')}")
    port = env.get("CARDLINK_DB_PORT")
    try:
        port_number = int(port) if port else _DEFAULT_PORTS.get(driver)
    except ValueError:
        raise ConfigurationError(f"CARDLINK_DB_PORT must be a number, got {port!r}") from None
    return URL.create(
        drivername=driver,
        username=env.get("CARDLINK_DB_USER") or None,
        password=env.get("CARDLINK_DB_PASSWORD") or None,
        host=env.get("CARDLINK_DB_HOST", "localhost"),
        port=port_number,
        database=env.get("CARDLINK_DB_NAME", "cardlink"),
    )


def _with_password_from_env(url: URL, env: Mapping[str, str]) -> URL:
    """A server URL with a user but no password takes ``CARDLINK_DB_PASSWORD``.

    So a password need not sit in shell history or ``ps`` as part of ``--database-url``.
    """
    password = env.get("CARDLINK_DB_PASSWORD")
    if url.get_backend_name() == "sqlite" or not url.username or url.password or not password:
        return url
    return url.set(password=password)


class DatabaseConfig:
    """Connection settings for a :class:`DatabaseManager`.

    Example::

        config = DatabaseConfig(database_url="mysql://user:pass@localhost/cardlink")
        config.is_mysql  # True
    """

    def __init__(
        self,
        database_url: str | URL | None = None,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30,
        pool_recycle: int = 3600,
        echo: bool = False,
        sqlite_busy_timeout_ms: int = 30_000,
        encryption_key: str | None = None,
        env: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        #: Seconds a server may take to accept and answer a new connection (psycopg, PyMySQL).
        self.connect_timeout = connect_timeout_from(connect_timeout, environ)
        source: URL | str
        if database_url is not None:
            source = database_url
        elif environ.get("DATABASE_URL"):
            source = environ["DATABASE_URL"]
        else:
            source = _url_from_components(environ) or DEFAULT_DATABASE_URL
        self._url = _with_password_from_env(normalize_url(source), environ)
        for name, value in (("pool_size", pool_size), ("max_overflow", max_overflow)):
            if not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} must be a whole number >= 0, got {value!r}")
        if pool_timeout <= 0:
            raise ConfigurationError(f"pool_timeout must be positive, got {pool_timeout!r}")
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.pool_timeout = pool_timeout
        self.pool_recycle = pool_recycle
        self.echo = echo
        self.sqlite_busy_timeout_ms = sqlite_busy_timeout_ms
        self._encryption_key = encryption_key

    @classmethod
    def from_sqlite_path(cls, path: str | os.PathLike[str], **options: Any) -> DatabaseConfig:
        """Config for a SQLite file at ``path`` (``":memory:"`` for a private in-memory one)."""
        target = str(path)
        url = "sqlite://" if target == ":memory:" else f"sqlite:///{Path(target).expanduser()}"
        return cls(database_url=url, **options)

    @property
    def url(self) -> URL:
        """The SQLAlchemy URL (its ``str()`` masks the password)."""
        return self._url

    @property
    def database_url(self) -> str:
        """The database URL with its password masked, safe to print or log."""
        return mask_url(self._url)

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB counts as mysql)."""
        name = self._url.get_backend_name()
        return "mysql" if name == "mariadb" else name

    @property
    def backend_label(self) -> str:
        """Human name of the backend, as the status output prints it."""
        return {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL"}[self.backend]

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_mysql(self) -> bool:
        return self.backend == "mysql"

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for a server or an in-memory database."""
        if not self.is_sqlite or self._url.database in (None, "", ":memory:"):
            return None
        return Path(self._url.database)

    @property
    def encryption_key(self) -> str | None:
        """The configured Fernet key(s), else ``CARDLINK_ENCRYPTION_KEY`` read at call time."""
        return self._encryption_key or os.environ.get("CARDLINK_ENCRYPTION_KEY")

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for ``create_engine`` that suit the backend."""
        options: dict[str, Any] = {"echo": self.echo, "future": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False}
            return options
        options.update(
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            pool_timeout=self.pool_timeout,
            pool_recycle=self.pool_recycle,
        )
        if self.is_mysql:
            # Strict mode on every connection, whatever the server default: a value too long
            # or out of range is an error, never silently truncated or clipped.
            options["connect_args"] = {
                "charset": "utf8mb4",
                "init_command": _MYSQL_STRICT,
                # PyMySQL's connect_timeout covers only the TCP connect; its read_timeout
                # bounds the handshake of a server that accepts and never answers. The
                # manager lifts the read timeout once connected (queries may take long).
                "connect_timeout": self.connect_timeout,
                "read_timeout": self.connect_timeout,
            }
        else:
            # libpq takes whole seconds (and treats 1 as 2).
            options["connect_args"] = {"connect_timeout": max(1, math.ceil(self.connect_timeout))}
        return options

    def __repr__(self) -> str:
        return (
            f"DatabaseConfig(database_url={self.database_url!r}, pool_size={self.pool_size}, "
            f"max_overflow={self.max_overflow}, pool_timeout={self.pool_timeout}, echo={self.echo})"
        )

    __str__ = __repr__
