"""DatabaseConfig and DatabaseManager: URL resolution, drivers, masking, connecting, SQLite."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from cardlink.database import (
    ConfigurationError,
    ConnectionError,
    DatabaseConfig,
    DatabaseManager,
    UnitOfWork,
)
from conftest import backend_url

SPECIAL_PASSWORD = "p@ss:w/rd%"
SPECIAL_USER = "cardlink_a_special"
COMPONENTS = {
    "CARDLINK_DB_DRIVER": "mysql",
    "CARDLINK_DB_HOST": "db.example.com",
    "CARDLINK_DB_PORT": "3307",
    "CARDLINK_DB_NAME": "cardlink",
    "CARDLINK_DB_USER": "cardlink_user",
    "CARDLINK_DB_PASSWORD": "secure_password",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", *COMPONENTS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# -- URL resolution ---------------------------------------------------------------------


def test_the_default_is_the_sqlite_file_data_cardlink_db() -> None:
    config = DatabaseConfig()
    assert config.database_url == "sqlite:///data/cardlink.db"
    assert config.is_sqlite and not config.is_mysql and not config.is_postgresql
    assert config.sqlite_path == Path("data/cardlink.db")


def test_database_url_wins_over_the_components() -> None:
    env = {**COMPONENTS, "DATABASE_URL": "postgresql://u:pw@pg.example.com:5432/other"}
    config = DatabaseConfig(env=env)
    assert config.is_postgresql and config.url.host == "pg.example.com"
    assert config.url.database == "other"


def test_an_explicit_url_wins_over_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@pg/other")
    assert DatabaseConfig(database_url="sqlite:///x.db").is_sqlite


def test_the_components_build_the_guide_mysql_url() -> None:
    config = DatabaseConfig(env=COMPONENTS)
    url = config.url
    assert config.is_mysql and url.drivername == "mysql+pymysql"
    assert (url.host, url.port, url.database) == ("db.example.com", 3307, "cardlink")
    assert (url.username, url.password) == ("cardlink_user", "secure_password")
    assert config.database_url == "mysql+pymysql://cardlink_user:***@db.example.com:3307/cardlink"


def test_the_components_default_the_port_per_backend() -> None:
    postgres = DatabaseConfig(env={"CARDLINK_DB_DRIVER": "postgresql", "CARDLINK_DB_NAME": "c"})
    mysql = DatabaseConfig(env={"CARDLINK_DB_DRIVER": "mysql"})
    assert (postgres.url.port, postgres.url.host, postgres.url.database) == (5432, "localhost", "c")
    assert (mysql.url.port, mysql.url.database) == (3306, "cardlink")


def test_sqlite_from_components_uses_the_name_as_the_file() -> None:
    config = DatabaseConfig(env={"CARDLINK_DB_DRIVER": "sqlite", "CARDLINK_DB_NAME": "x/y.db"})
    assert config.sqlite_path == Path("x/y.db")


def test_a_bad_port_component_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CARDLINK_DB_PORT"):
        DatabaseConfig(env={"CARDLINK_DB_DRIVER": "mysql", "CARDLINK_DB_PORT": "abc"})


def test_a_password_with_special_characters_is_escaped_in_the_url() -> None:
    env = {**COMPONENTS, "CARDLINK_DB_PASSWORD": SPECIAL_PASSWORD}
    config = DatabaseConfig(env=env)
    assert config.url.password == SPECIAL_PASSWORD
    rendered = config.url.render_as_string(hide_password=False)
    assert "p%40ss%3Aw%2Frd%25" in rendered
    assert make_url(rendered).password == SPECIAL_PASSWORD
    assert make_url(rendered).host == "db.example.com"


def test_plain_backend_urls_get_the_drivers_the_extras_install() -> None:
    assert DatabaseConfig(database_url="mysql://u@h/d").url.drivername == "mysql+pymysql"
    assert DatabaseConfig(database_url="mariadb://u@h/d").url.drivername == "mariadb+pymysql"
    assert DatabaseConfig(database_url="mariadb://u@h/d").is_mysql
    assert DatabaseConfig(database_url="postgresql://u@h/d").url.drivername == "postgresql+psycopg"
    assert DatabaseConfig(database_url="postgres://u@h/d").is_postgresql
    explicit = DatabaseConfig(database_url="postgresql+psycopg://u@h/d")
    assert explicit.url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_plain_server_urls_just_work(server: str, tmp_path: Path) -> None:
    url = backend_url(server, tmp_path)
    assert make_url(url).drivername == server  # the conftest URL names no driver
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with manager, manager.engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


def test_from_sqlite_path_and_memory(tmp_path: Path) -> None:
    config = DatabaseConfig.from_sqlite_path(tmp_path / "a.db", echo=True)
    assert config.sqlite_path == tmp_path / "a.db" and config.echo
    memory = DatabaseConfig.from_sqlite_path(":memory:")
    assert memory.is_sqlite and memory.sqlite_path is None
    with DatabaseManager(memory) as manager:
        manager.create_tables()
        with UnitOfWork(manager) as uow:  # a second connection sees the same tables
            assert uow.devices.count() == 0


def test_unusable_urls_are_configuration_errors_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="unsupported database backend 'oracle'") as caught:
        DatabaseConfig(database_url="oracle://scott:tiger@h/d")
    assert "tiger" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="invalid database URL") as caught:
        DatabaseConfig(database_url="not a url with s3cret")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="unknown postgresql driver 'foo'"):
        DatabaseConfig(database_url="postgresql+foo://u:s3cret@h/d")


def test_pool_settings_are_checked_and_only_servers_get_a_pool() -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        DatabaseConfig(database_url="mysql://h/d", pool_size=-1)
    with pytest.raises(ConfigurationError, match="pool_timeout"):
        DatabaseConfig(database_url="mysql://h/d", pool_timeout=0)
    server = DatabaseConfig(
        database_url="mysql://h/d", pool_size=3, max_overflow=4
    ).engine_options()
    assert server["pool_size"] == 3 and server["max_overflow"] == 4
    assert "pool_size" not in DatabaseConfig().engine_options()


# -- missing drivers ----------------------------------------------------------------------


def test_a_url_naming_an_uninstalled_driver_names_the_extra() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseConfig(database_url="postgresql+asyncpg://u:s3cret@h/d")
    message = str(caught.value)
    assert "asyncpg" in message and "gp-ota-tester[postgresql]" in message
    assert "s3cret" not in message
    with pytest.raises(ConfigurationError, match=r"gp-ota-tester\[mysql\]"):
        DatabaseConfig(database_url="mysql+mysqldb://u@h/d")


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("postgresql://u@h/d", "psycopg", "postgresql"), ("mysql://u@h/d", "pymysql", "mysql")],
)
def test_a_plain_url_without_its_driver_installed_names_the_extra(
    url: str, module: str, extra: str
) -> None:
    # A fresh interpreter in which the driver cannot be imported, as if never installed.
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from cardlink.database import DatabaseConfig, ConfigurationError\n"
        f"try:\n    DatabaseConfig(database_url={url!r})\n"
        "except ConfigurationError as error:\n    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f"pip install 'gp-ota-tester[{extra}]'" in out and "is not installed" in out


# -- masking ------------------------------------------------------------------------------


def test_the_password_is_masked_in_repr_str_and_database_url() -> None:
    config = DatabaseConfig(database_url="postgresql://u:s3cret@h/d")
    for shown in (repr(config), str(config), config.database_url, str(config.url)):
        assert "s3cret" not in shown and "***" in shown
    manager = DatabaseManager(config)
    assert "s3cret" not in repr(manager)


def test_a_refused_login_is_a_connection_error_without_the_password(tmp_path: Path) -> None:
    url = make_url(backend_url("mysql", tmp_path)).set(password="Wr0ngS3cret")
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with pytest.raises(ConnectionError) as caught:
        manager.initialize()
    message = str(caught.value)
    assert "Wr0ngS3cret" not in message and "***" in message
    assert "Access denied" in message


def test_log_lines_never_carry_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, special_mysql_user: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with DatabaseManager(DatabaseConfig(database_url=special_mysql_user, echo=True)) as manager:
        manager.create_tables()
        with UnitOfWork(manager) as uow:
            uow.devices.count()
    assert caplog.records and SPECIAL_PASSWORD not in caplog.text
    assert "p%40ss" not in caplog.text
    assert any("connected to" in record.getMessage() for record in caplog.records)


# -- connecting with special-character passwords --------------------------------------------


@pytest.fixture
def special_mysql_user(tmp_path: Path) -> Iterator[str]:
    """A MariaDB account whose password is ``p@ss:w/rd%``; yields its (escaped) URL."""
    admin = make_url(backend_url("mysql", tmp_path))
    engine = create_engine(DatabaseConfig(database_url=admin).url, isolation_level="AUTOCOMMIT")
    hosts = ("localhost", "127.0.0.1", "%")
    with engine.connect() as connection:
        for host in hosts:
            connection.execute(text(f"DROP USER IF EXISTS '{SPECIAL_USER}'@'{host}'"))
            connection.execute(
                text(f"CREATE USER '{SPECIAL_USER}'@'{host}' IDENTIFIED BY :password"),
                {"password": SPECIAL_PASSWORD},
            )
            connection.execute(
                text(f"GRANT ALL ON `{admin.database}`.* TO '{SPECIAL_USER}'@'{host}'")
            )
    try:
        url = admin.set(username=SPECIAL_USER, password=SPECIAL_PASSWORD)
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            for host in hosts:
                connection.execute(text(f"DROP USER IF EXISTS '{SPECIAL_USER}'@'{host}'"))
        engine.dispose()


def components_of(url: str, driver: str) -> dict[str, str]:
    parsed = make_url(url)
    return {
        "CARDLINK_DB_DRIVER": driver,
        "CARDLINK_DB_HOST": str(parsed.host),
        "CARDLINK_DB_PORT": str(parsed.port),
        "CARDLINK_DB_NAME": str(parsed.database),
        "CARDLINK_DB_USER": str(parsed.username),
        "CARDLINK_DB_PASSWORD": SPECIAL_PASSWORD,
    }


def test_components_with_a_special_password_connect_to_mariadb(
    special_mysql_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in components_of(special_mysql_user, "mysql").items():
        monkeypatch.setenv(name, value)
    with DatabaseManager() as manager, manager.engine.connect() as connection:
        user = connection.execute(text("SELECT CURRENT_USER()")).scalar()
    assert str(user).startswith(f"{SPECIAL_USER}@")


def test_an_escaped_special_password_in_database_url_connects_to_mariadb(
    special_mysql_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "p%40ss%3Aw%2Frd%25" in special_mysql_user
    monkeypatch.setenv("DATABASE_URL", special_mysql_user)
    with DatabaseManager() as manager, manager.engine.connect() as connection:
        assert str(connection.execute(text("SELECT CURRENT_USER()")).scalar()).startswith(
            SPECIAL_USER
        )


def test_components_with_a_special_password_connect_to_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = make_url(backend_url("postgresql", tmp_path))
    engine = create_engine(DatabaseConfig(database_url=admin).url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP ROLE IF EXISTS "{SPECIAL_USER}"'))
        escaped = SPECIAL_PASSWORD.replace("'", "''")
        connection.execute(text(f"CREATE ROLE \"{SPECIAL_USER}\" LOGIN PASSWORD '{escaped}'"))
    try:
        url = admin.set(username=SPECIAL_USER).render_as_string(hide_password=False)
        for name, value in components_of(url, "postgresql").items():
            monkeypatch.setenv(name, value)
        with DatabaseManager() as manager, manager.engine.connect() as connection:
            assert connection.execute(text("SELECT current_user")).scalar() == SPECIAL_USER
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{SPECIAL_USER}"'))
        engine.dispose()


# -- DatabaseManager ------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_server_that_is_down_is_a_connection_error_with_masked_url_and_hint(scheme: str) -> None:
    manager = DatabaseManager(DatabaseConfig(database_url=f"{scheme}://u:s3cret@127.0.0.1:9/d"))
    with pytest.raises(ConnectionError) as caught:
        manager.initialize()
    message = str(caught.value)
    assert message.startswith("Unable to connect to database ")
    assert "u:***@127.0.0.1:9/d" in message and "s3cret" not in message
    assert "server running" in message and "driver extra" in message
    assert not manager.is_initialized


def test_sqlite_connections_enforce_foreign_keys_with_wal_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    config = DatabaseConfig.from_sqlite_path(tmp_path / "p.db", sqlite_busy_timeout_ms=12_345)
    with DatabaseManager(config) as manager, manager.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 12_345


def test_the_default_sqlite_folder_is_created_on_first_use(tmp_path: Path) -> None:
    assert not (tmp_path / "data").exists()
    with DatabaseManager() as manager:
        manager.create_tables()
    database = tmp_path / "data" / "cardlink.db"
    assert database.is_file()
    assert stat.S_IMODE(os.stat(database).st_mode) & 0o077 == 0  # readable by its owner only


def test_the_context_manager_initializes_and_closes(database_url: str) -> None:
    with DatabaseManager(DatabaseConfig(database_url=database_url)) as manager:
        assert manager.is_initialized
        manager.initialize()  # idempotent
    assert not manager.is_initialized
    manager.initialize()  # a closed manager can be used again
    assert manager.is_initialized
    manager.close()
    manager.close()


def test_create_tables_is_idempotent_and_drop_tables_removes_them(empty_database_url: str) -> None:
    with DatabaseManager(DatabaseConfig(database_url=empty_database_url)) as manager:
        manager.create_tables()
        manager.create_tables()
        names = set(inspect(manager.engine).get_table_names())
        assert {"devices", "cards", "sessions", "logs", "tests", "settings"} <= names
        manager.drop_tables()
        assert not {"devices", "cards", "sessions", "logs", "tests", "settings"} & set(
            inspect(manager.engine).get_table_names()
        )
