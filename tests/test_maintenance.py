"""Purge, stats and database creation as library calls, on every backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from cardlink.database import (
    ConfigurationError,
    DatabaseConfig,
    DatabaseError,
    DatabaseManager,
    DatabaseNotFoundError,
    ValidationError,
    get_current_revision,
    get_pending_revisions,
)
from cardlink.database.maintenance import create_database, drop_database
from conftest import scratch_database
from test_cli import seed


def url_of(manager: DatabaseManager) -> str:
    return manager.config.url.render_as_string(hide_password=False)


def test_purge_deletes_rows_older_than_the_age_and_reports_them(manager: DatabaseManager) -> None:
    seed(url_of(manager), logs=300)  # sessions 100, 40 and 0 days old; logs spread over them
    result = manager.purge(older_than=timedelta(days=30), tables=["logs", "tests"])
    assert result.counts == {"logs": 200, "tests": 2, "test_runs": 0} and result.total == 202
    assert not result.dry_run
    assert manager.stats().tables["logs"] == 100
    assert manager.stats().tables["sessions"] == 3


def test_purging_sessions_takes_their_logs_too(manager: DatabaseManager) -> None:
    seed(url_of(manager), logs=300)
    result = manager.purge(older_than=timedelta(days=50), tables=("sessions",))
    assert result.counts == {"sessions": 1, "logs": 100}
    assert manager.stats().tables["sessions"] == 2


def test_purge_dry_run_counts_what_would_go_and_changes_nothing(manager: DatabaseManager) -> None:
    seed(url_of(manager), logs=300)
    before = manager.stats().tables
    plan = manager.purge(older_than=timedelta(days=30), tables=["sessions", "logs"], dry_run=True)
    assert plan.dry_run and plan.counts == {"sessions": 2, "logs": 200}
    assert manager.stats().tables == before
    done = manager.purge(older_than=plan.cutoff, tables=["sessions", "logs"])
    assert done.counts == plan.counts


def test_purge_refuses_an_unknown_table_and_a_naive_cutoff(manager: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match="cannot purge table devices"):
        manager.purge(older_than=timedelta(days=1), tables=["devices"])
    with pytest.raises(ValidationError, match="aware datetime"):
        manager.purge(older_than=manager.purge(older_than=timedelta(0)).cutoff.replace(tzinfo=None))


def test_stats_reports_rows_size_and_the_last_day(manager: DatabaseManager) -> None:
    seed(url_of(manager), logs=30)
    report = manager.stats()
    assert report.tables == {
        "devices": 5,
        "cards": 2,
        "sessions": 3,
        "http_exchanges": 0,
        "logs": 30,
        "test_runs": 1,
        "tests": 4,
        "settings": 1,
    }
    assert report.sessions_last_24h == 1 and report.tests_last_24h == 2
    assert report.size_bytes > 0
    shape = report.as_dict()
    assert set(shape) == {"tables", "database_size_mb", "recent_activity"}
    assert shape["recent_activity"] == {"sessions_last_24h": 1, "tests_last_24h": 2}


def test_stats_and_purge_on_a_database_without_tables_name_the_fix(
    empty_database_url: str,
) -> None:
    manager = DatabaseManager(DatabaseConfig(empty_database_url))
    try:
        with pytest.raises(DatabaseError, match=r"table\(s\) missing: devices.*cardlink-db init"):
            manager.stats()
        with pytest.raises(DatabaseError, match=r"table\(s\) missing: .*logs"):
            manager.purge(older_than=timedelta(days=1), tables=["logs"], dry_run=True)
        with manager.engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
    finally:
        manager.close()


def test_create_database_creates_a_missing_one_once(backend: str, tmp_path: Path) -> None:
    url = scratch_database(backend, tmp_path, "created")
    config = DatabaseConfig(url)
    drop_database(config)
    assert DatabaseManager(config).create_database() is True
    assert create_database(config) is False
    manager = DatabaseManager(config)
    try:
        manager.initialize(create=False)  # it exists now
        manager.create_tables()
        assert manager.stats().tables["devices"] == 0
    finally:
        manager.close()
    assert drop_database(config) is True
    assert drop_database(config) is False


def test_read_only_calls_refuse_a_missing_sqlite_file_and_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "x.db"
    url = f"sqlite:///{path}"
    manager = DatabaseManager(DatabaseConfig(url))
    message = f"no database at {path}; run `cardlink-db init` to create it"
    with pytest.raises(DatabaseNotFoundError) as caught:
        manager.stats()
    assert str(caught.value) == message
    with pytest.raises(DatabaseNotFoundError):
        manager.purge(older_than=timedelta(days=1), tables=["logs"], dry_run=True)
    with pytest.raises(DatabaseNotFoundError):
        get_current_revision(database_url=url)
    with pytest.raises(DatabaseNotFoundError):
        get_pending_revisions(database_url=url)
    with pytest.raises(DatabaseNotFoundError):
        manager.initialize(create=False)
    assert not (tmp_path / "nope").exists()
    manager.initialize()  # a writer may create it
    assert path.is_file()
    manager.close()


def test_a_two_slash_sqlite_url_is_a_configuration_error_showing_both_forms() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseConfig("sqlite://data/cardlink.db")
    message = str(caught.value)
    assert "sqlite:///data/cardlink.db" in message and "sqlite:////data/cardlink.db" in message


@pytest.mark.parametrize(
    "env",
    [
        {"CARDLINK_DB_HOST": "db.example", "CARDLINK_DB_NAME": "cardlink"},
        {"CARDLINK_DB_NAME": "cardlink"},
        {"CARDLINK_DB_PASSWORD": "s3cret"},
    ],
)
def test_partial_component_settings_name_what_is_missing(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseConfig(env=env)
    message = str(caught.value)
    assert "CARDLINK_DB_DRIVER is missing" in message
    assert all(name in message for name in env)
    assert "s3cret" not in message


def test_the_password_may_come_from_the_environment_beside_a_password_less_url() -> None:
    env = {"CARDLINK_DB_PASSWORD": "p@ss:w/rd%"}
    config = DatabaseConfig("postgresql://me@db.example/cardlink", env=env)
    assert config.url.password == "p@ss:w/rd%"
    assert "p@ss" not in repr(config) and "p@ss" not in config.database_url
    # A password in the URL wins; a URL without a user takes none.
    assert DatabaseConfig("postgresql://me:x@h/c", env=env).url.password == "x"
    assert DatabaseConfig("postgresql://h/c", env=env).url.password is None
