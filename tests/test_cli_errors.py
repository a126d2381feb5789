"""`cardlink-db` failures: one red line with a hint, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect

from cardlink.database import ConnectionError, DatabaseConfig, DatabaseManager
from cardlink.database.cli import cli


def fails(*args: str, exit_code: int | None = None) -> str:
    """Run the command, expect failure; return its single stderr line."""
    result: Result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert result.stdout == "" or "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'errors.db'}"
    manager = DatabaseManager(DatabaseConfig(url))
    manager.create_tables()
    manager.close()
    return url


def test_a_bad_url_is_one_line_with_a_hint() -> None:
    line = fails("--database-url", "nosuchdb://x/y", "status")
    assert "unsupported database backend" in line and "hint" in line


def test_an_unparseable_url_is_one_line() -> None:
    assert "invalid database URL" in fails("--database-url", "::not a url::", "stats")


def test_a_server_that_is_down_is_one_line_with_a_hint() -> None:
    line = fails("--database-url", "postgresql://postgres@127.0.0.1:1/cardlink", "status")
    assert "Unable to connect" in line and "server running" in line
    assert "mysql://root@127.0.0.1:1/cardlink" not in line


def test_a_password_in_the_url_is_never_printed() -> None:
    line = fails("--database-url", "postgresql://me:s3cret@127.0.0.1:1/cardlink", "status")
    assert "s3cret" not in line


def test_an_unknown_table_is_refused(sqlite_url: str) -> None:
    line = fails("--database-url", sqlite_url, "export", "--tables", "devices,users", exit_code=2)
    assert "unknown table users" in line and "devices, cards" in line
    line = fails("--database-url", sqlite_url, "purge", "--older-than", "9", "--tables", "devices")
    assert "cannot purge table devices" in line


def test_an_unreadable_file_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    assert "No such file" in fails(
        "--database-url", sqlite_url, "import", str(tmp_path / "no.json")
    )
    assert "is a folder" in fails("--database-url", sqlite_url, "import", str(tmp_path))


def test_an_unknown_extension_asks_for_the_format(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "backup.txt"
    path.write_text("{}")
    assert "cannot tell the format" in fails("--database-url", sqlite_url, "import", str(path))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.json", '{"format": "cardlink-database-export", "tables": {"devices": [{'),
        ("broken.yaml", "format: [unclosed\n  - : :"),
        ("other.json", '{"hello": "world"}'),
        ("binary.json", "\udcff"),
    ],
)
def test_malformed_data_is_one_line_and_writes_nothing(
    sqlite_url: str, tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    fails("--database-url", sqlite_url, "import", str(path))
    stats = CliRunner().invoke(cli, ["--database-url", sqlite_url, "stats", "--json"])
    assert '"devices": 0' in stats.stdout


def test_a_migration_to_an_unknown_revision_is_one_line(sqlite_url: str) -> None:
    line = fails("--database-url", sqlite_url, "migrate", "--revision", "zzzz")
    assert "target revision not found" in line and "cardlink-db status" in line


def test_stats_on_a_database_without_tables_says_how_to_create_them(tmp_path: Path) -> None:
    line = fails("--database-url", f"sqlite:///{tmp_path / 'empty.db'}", "stats")
    assert "cardlink-db init" in line


def test_destructive_commands_refuse_without_a_terminal_or_yes(sqlite_url: str) -> None:
    line = fails("--database-url", sqlite_url, "init", "--force")
    assert "stdin is not a terminal" in line and "--yes" in line
    manager = DatabaseManager(DatabaseConfig(sqlite_url))
    assert "devices" in inspect(manager.engine).get_table_names()
    manager.close()


def test_debug_shows_the_underlying_exception() -> None:
    result = CliRunner().invoke(
        cli, ["--debug", "--database-url", "postgresql://postgres@127.0.0.1:1/x", "status"]
    )
    assert isinstance(result.exception, ConnectionError)


def test_the_console_script_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cardlink.database.cli", "--database-url", "nosuch://", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    debug = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardlink.database.cli",
            "--debug",
            "--database-url",
            "nosuch://",
            "status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr
