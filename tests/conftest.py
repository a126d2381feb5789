"""The backend matrix: every database test runs on SQLite, PostgreSQL and MySQL/MariaDB.

Server URLs come from ``CARDLINK_TEST_POSTGRESQL_URL`` / ``CARDLINK_TEST_MYSQL_URL``
(defaults: the local servers, database ``CARDLINK_TEST_DB_NAME``). Without that
name each run gets its own database, ``cardlink_test_<pid>_<random>``, created when
first needed and dropped when the session ends, so two checkouts or two CI runs on
one server never share one. A server that cannot be reached is skipped with a
visible reason, unless ``CARDLINK_TEST_REQUIRE`` names it (``postgresql,mysql`` or
``all``), in which case its tests fail. CI requires all.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cardlink.database import Base, DatabaseConfig, DatabaseManager, get_emitter, run_migrations
from cardlink.database.maintenance import create_database, drop_database

BACKENDS = ("sqlite", "postgresql", "mysql")
#: This run's own database name (dropped at the end), unless CARDLINK_TEST_DB_NAME names one.
_DB_NAME = os.environ.get("CARDLINK_TEST_DB_NAME") or (
    f"cardlink_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
)
_DROP_AT_END = not os.environ.get("CARDLINK_TEST_DB_NAME")
SERVER_URLS = {
    "postgresql": os.environ.get(
        "CARDLINK_TEST_POSTGRESQL_URL", f"postgresql://postgres@127.0.0.1:5432/{_DB_NAME}"
    ),
    "mysql": os.environ.get("CARDLINK_TEST_MYSQL_URL", f"mysql://root@127.0.0.1:3306/{_DB_NAME}"),
}
# Tables emptied between tests, children first.
_TABLES_CHILD_FIRST = (
    "logs",
    "http_exchanges",
    "tests",
    "test_runs",
    "sessions",
    "cards",
    "devices",
    "settings",
)


def _required() -> set[str]:
    value = os.environ.get("CARDLINK_TEST_REQUIRE", "")
    names = {part.strip() for part in value.split(",") if part.strip()}
    return set(BACKENDS) if "all" in names else names


#: Server databases this run created and drops when the session ends.
_created: list[str] = []


def _ensure_server_database(url: str) -> None:
    """Create the test database on the server if it does not exist yet."""
    if create_database(DatabaseConfig(database_url=url)) and _DROP_AT_END:
        _created.append(url)


def scratch_database(backend: str, tmp_path: Path, suffix: str) -> str:
    """A new, empty database next to the run's own (``<name>_<suffix>``), dropped at the end.

    SQLite: a file path in ``tmp_path`` that does not exist yet.
    """
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{suffix}.db'}"
    base = make_url(DatabaseConfig(backend_url(backend, tmp_path)).url)
    url = base.set(database=f"{base.database}_{suffix}").render_as_string(hide_password=False)
    config = DatabaseConfig(database_url=url)
    drop_database(config)
    create_database(config)
    if url not in _created:
        _created.append(url)
    return url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the server databases this run created (its own name and the scratch ones)."""
    for url in reversed(_created):
        try:
            drop_database(DatabaseConfig(database_url=url))
        except Exception as error:  # a server gone meanwhile must not hide the results
            print(f"could not drop test database {make_url(url).database}: {error}")
    _created.clear()


_server_state: dict[str, str | None] = {}


def _server_problem(backend: str) -> str | None:
    """None if the backend's test database is usable, else why not (checked once)."""
    if backend not in _server_state:
        try:
            _ensure_server_database(SERVER_URLS[backend])
            _server_state[backend] = None
        except Exception as error:  # any failure means: not reachable here
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            _server_state[backend] = f"{backend} server not reachable at " + (
                f"{make_url(SERVER_URLS[backend]).render_as_string(hide_password=True)}: {first}"
            )
    return _server_state[backend]


def backend_url(backend: str, tmp_path: Path) -> str:
    """A database URL for ``backend``; skips (or fails, if required) when it is unreachable."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'cardlink.db'}"
    problem = _server_problem(backend)
    if problem:
        if backend in _required():
            pytest.fail(f"{problem} (required by CARDLINK_TEST_REQUIRE)")
        pytest.skip(problem)
    return SERVER_URLS[backend]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its backend, so ``-m postgresql`` selects one."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        if backend in BACKENDS:
            item.add_marker(getattr(pytest.mark, backend))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: sqlite, postgresql or mysql."""
    return str(request.param)


@pytest.fixture
def encryption_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Fernet key in ``CARDLINK_ENCRYPTION_KEY``."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", key)
    return key


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> str:
    """URL of an empty database on the backend under test."""
    return backend_url(backend, tmp_path)


def _reset_schema(url: str) -> None:
    """Empty a server test database: drop every table, whatever created it."""
    engine = create_engine(DatabaseConfig(database_url=url).url)
    try:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            else:
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                names = [row[0] for row in connection.execute(text("SHOW TABLES"))]
                for name in names:
                    connection.execute(text(f"DROP TABLE `{name}`"))
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        engine.dispose()


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> str:
    """URL of a database with no tables at all (for schema and migration tests)."""
    url = backend_url(backend, tmp_path)
    if backend != "sqlite":
        _reset_schema(url)
        _schema_ready.discard(url)
    else:
        create_database(DatabaseConfig(database_url=url))  # an empty file: no tables
    return url


_schema_ready: set[str] = set()


@pytest.fixture
def manager(backend: str, tmp_path: Path, encryption_key: str) -> Iterator[DatabaseManager]:
    """An initialized manager on a clean database with every table, for the backend under test."""
    url = backend_url(backend, tmp_path)
    db = DatabaseManager(DatabaseConfig(database_url=url))
    db.initialize()
    if backend == "sqlite" or url not in _schema_ready:
        if backend != "sqlite":
            _reset_schema(url)
        db.create_tables()
        _schema_ready.add(url)
    else:
        with db.engine.begin() as connection:
            for table in _TABLES_CHILD_FIRST:
                connection.execute(Base.metadata.tables[table].delete())
    get_emitter().clear()
    try:
        yield db
    finally:
        get_emitter().clear()
        db.close()


def forget_schema(url: str) -> None:
    """Tell the ``manager`` fixture that a test changed the schema of ``url``."""
    _schema_ready.discard(url)


@contextmanager
def migrated_to(revision: str, url: str) -> Iterator[DatabaseManager]:
    """A manager on ``url`` (an empty database) migrated to ``revision``; closed after,
    with the schema forgotten, since it is not the one the ``manager`` fixture builds."""
    db = DatabaseManager(DatabaseConfig(database_url=url))
    db.initialize()
    run_migrations(revision, manager=db)
    try:
        yield db
    finally:
        db.close()
        forget_schema(url)
