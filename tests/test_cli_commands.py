"""`cardlink-db` commands in detail: status, init, migrate, purge and export behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from cardlink.database import Base, DatabaseConfig, DatabaseManager
from cardlink.database.cli import cli
from cardlink.database.cli import console as cli_console
from cardlink.database.maintenance import create_database, drop_database
from conftest import backend_url, forget_schema, scratch_database
from revisions import HEAD, REVISIONS
from test_cli import counts, invoke, seed


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_console, "stdin_is_terminal", lambda: True)


@pytest.fixture
def fresh_url(empty_database_url: str) -> str:
    yield empty_database_url
    forget_schema(empty_database_url)


def test_status_of_an_empty_database_lists_missing_tables(fresh_url: str) -> None:
    status = invoke(fresh_url, "status").stdout
    assert f"Current Revision: none\nPending Migrations: {len(REVISIONS)}\n" in status
    assert "  devices: missing" in status
    assert "cardlink-db migrate" in status


def test_status_reports_tables_without_a_version_and_init_fixes_it(fresh_url: str) -> None:
    manager = DatabaseManager(DatabaseConfig(fresh_url))
    Base.metadata.create_all(manager.engine)  # made before migrations existed
    manager.close()
    status = invoke(fresh_url, "status").stdout
    assert "Current Revision: none" in status
    assert f"run `cardlink-db init` to record the current schema as revision {HEAD}" in status
    migrate = invoke(fresh_url, "migrate", ok=False)
    assert migrate.exit_code == 1 and "cardlink-db init" in migrate.stderr
    invoke(fresh_url, "init")
    status = invoke(fresh_url, "status").stdout
    assert f"Current Revision: {HEAD}\nPending Migrations: 0\n" in status
    assert "Warning" not in status


def test_status_verbose_lists_columns_and_indexes(fresh_url: str) -> None:
    invoke(fresh_url, "init")
    status = invoke(fresh_url, "status", "--verbose").stdout
    devices = status.split("  devices: 0 rows\n")[1].split("  cards:")[0]
    assert "    Columns:\n" in devices and "      id: VARCHAR(64) PRIMARY KEY NOT NULL" in devices
    assert "    Indexes:\n" in devices and "      ix_devices_device_type: device_type" in devices


def test_migrate_dry_run_prints_sql_and_creates_nothing(fresh_url: str) -> None:
    sql = invoke(fresh_url, "migrate", "--dry-run").stdout
    assert "CREATE TABLE devices" in sql and "CREATE TABLE logs" in sql
    manager = DatabaseManager(DatabaseConfig(fresh_url))
    assert inspect(manager.engine).get_table_names() == []
    manager.close()
    assert f"Migrated base -> {HEAD}" in invoke(fresh_url, "migrate").stdout


def test_init_creates_a_missing_server_database(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'deep' / 'folder' / 'new.db'}"
        invoke(url, "init")
        assert (tmp_path / "deep" / "folder" / "new.db").exists()
        return
    url = scratch_database(backend, tmp_path, "init")
    config = DatabaseConfig(url)
    drop_database(config)
    assert "Initialized database" in invoke(url, "init").stdout
    assert f"Current Revision: {HEAD}" in invoke(url, "status").stdout
    assert not create_database(config)  # it is there now


def test_status_masks_the_password(backend: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        pytest.skip("only the PostgreSQL test server accepts any password (trust auth)")
    url = make_url(DatabaseConfig(backend_url(backend, tmp_path)).url).set(password="s3cret")
    result = invoke(url.render_as_string(hide_password=False), "status")
    assert "s3cret" not in result.output and ":***@" in result.stdout


def test_purge_answered_no_deletes_nothing(
    fresh_url: str, encryption_key: str, terminal: None
) -> None:
    invoke(fresh_url, "init")
    expected = seed(fresh_url, logs=30)
    result = invoke(
        fresh_url, "purge", "--older-than", "30", "--tables", "sessions", input="n\n", ok=False
    )
    assert result.exit_code == 1 and "cancelled" in result.stderr
    assert "  sessions: 2 rows\n  logs: 20 rows\n" in result.stdout
    assert counts(fresh_url) == expected


def test_purge_of_test_results_uses_their_start_time(fresh_url: str, encryption_key: str) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=3)
    result = invoke(fresh_url, "purge", "--older-than", "30", "--tables", "tests", "--yes")
    assert "Deleted 2 tests" in result.stdout
    assert counts(fresh_url)["tests"] == 2
    assert counts(fresh_url)["sessions"] == 3


def test_purge_without_terminal_or_yes_refuses(fresh_url: str, encryption_key: str) -> None:
    invoke(fresh_url, "init")
    expected = seed(fresh_url, logs=3)
    result = invoke(fresh_url, "purge", "--older-than", "1", "--tables", "logs", ok=False)
    assert result.exit_code == 1 and "stdin is not a terminal" in result.stderr
    assert counts(fresh_url) == expected


def test_stats_counts_recent_activity_by_start_time(fresh_url: str, encryption_key: str) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=6)
    report = json.loads(invoke(fresh_url, "stats", "--json").stdout)
    assert report["recent_activity"] == {"sessions_last_24h": 1, "tests_last_24h": 2}
    assert report["tables"]["logs"] == 6
    assert report["database_size_mb"] > 0


def test_export_to_a_file_is_quiet_apart_from_its_summary(
    fresh_url: str, encryption_key: str, tmp_path: Path
) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=10)
    target = tmp_path / "out" / "backup.yaml"
    target.parent.mkdir()
    result = CliRunner().invoke(cli, ["--database-url", fresh_url, "export", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Exported 26 rows (devices 5, cards 2, sessions 3, http_exchanges 0, logs 10, test_runs 1"
    )
    assert target.read_text().startswith("format: cardlink-database-export")
    assert [path.name for path in target.parent.iterdir()] == ["backup.yaml"]
    assert target.stat().st_mode & 0o077 == 0


def test_slow_work_shows_progress_on_a_terminal(
    fresh_url: str, encryption_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=30)
    monkeypatch.setattr(cli_console, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli_console, "PROGRESS_DELAY_SECONDS", 0.0)
    target = tmp_path / "backup.json"
    exported = invoke(fresh_url, "export", "--output", str(target))
    assert "Exporting" in exported.stderr
    imported = invoke(fresh_url, "import", "--conflict", "overwrite", str(target))
    assert "Importing" in imported.stderr
    assert (
        "Purging"
        in invoke(fresh_url, "purge", "--older-than", "1", "--tables", "logs", "--yes").stderr
    )
