"""`cardlink-db`: every command of the guide, in guide order, on every backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cardlink.database as database
from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork
from cardlink.database.cli import cli
from cardlink.database.cli import console as cli_console
from conftest import forget_schema
from revisions import HEAD, INITIAL

REPO_ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(timezone.utc)


def invoke(url: str | None, *args: str, input: str | None = None, ok: bool = True) -> Result:
    """Run ``cardlink-db [--database-url URL] ARGS``; by default it must succeed."""
    prefix = ["--database-url", url] if url else []
    result = CliRunner().invoke(cli, [*prefix, *args], input=input)
    if ok:
        assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def seed(url: str, *, logs: int = 1234) -> dict[str, int]:
    """5 devices, 2 cards, 3 sessions (100, 40 and 0 days old), logs, 4 tests, 1 setting."""
    manager = DatabaseManager(DatabaseConfig(url))
    try:
        with UnitOfWork(manager) as uow:
            for number in range(5):
                uow.devices.create(
                    database.Device(id=f"RF8M{number}", device_type=database.DeviceType.PHONE)
                )
            for number in range(2):
                card = database.CardProfile(
                    iccid=f"890112345678901234{number}", psk_identity=f"c{number}"
                )
                uow.cards.create_with_psk(card, b"my_secret_psk_key_16")
            sessions = []
            for days in (100, 40, 0):
                session = database.OTASession(
                    id=uuid.uuid4(), device_id="RF8M0", started_at=NOW - timedelta(days=days)
                )
                uow.sessions.create(session)
                sessions.append((session.id, NOW - timedelta(days=days)))
            uow.logs.add_log_batch(
                {
                    "session_id": sessions[index % 3][0],
                    "direction": "command",
                    "raw_data": "00A4040000",
                    "timestamp": sessions[index % 3][1],
                }
                for index in range(logs)
            )
            for days in (0, 0, 50, 50):
                uow.tests.create(
                    database.TestResult(
                        run_id="r1",
                        suite_name="suite",
                        test_name=f"t{uuid.uuid4().hex[:6]}",
                        status="passed",
                        started_at=NOW - timedelta(days=days),
                    )
                )
            uow.settings.create(database.Setting(key="ota.port", value=8443))
            uow.commit()
    finally:
        manager.close()
    return {
        "devices": 5,
        "cards": 2,
        "sessions": 3,
        "http_exchanges": 0,
        "logs": logs,
        "test_runs": 1,
        "tests": 4,
        "settings": 1,
    }


def counts(url: str) -> dict[str, int]:
    return json.loads(invoke(url, "stats", "--json").stdout)["tables"]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as if a person sits at the terminal (prompts are allowed)."""
    monkeypatch.setattr(cli_console, "stdin_is_terminal", lambda: True)


def alembic(*args: str, url: str, ini: Path | None = None) -> str:
    command = [sys.executable, "-m", "alembic", *(["-c", str(ini)] if ini else []), *args]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def scratch_alembic_ini(tmp_path: Path) -> Path:
    """The repository's alembic.ini over a copy of the migrations (new revisions land there)."""
    location = tmp_path / "migrations"
    shutil.copytree(
        Path(database.__file__).parent / "migrations",
        location,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        (REPO_ROOT / "alembic.ini")
        .read_text()
        .replace("cardlink.database:migrations", str(location))
    )
    return ini


def test_every_guide_command_runs_in_guide_order(
    empty_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encryption_key: str,
    terminal: None,
) -> None:
    url = empty_database_url
    forget_schema(url)
    monkeypatch.chdir(tmp_path)
    ini = scratch_alembic_ini(tmp_path)

    # Migrations
    assert HEAD in invoke(url, "migrate").output
    assert "Nothing to migrate" in invoke(url, "migrate", "--revision", INITIAL[:6]).output
    assert invoke(url, "migrate", "--dry-run").output.startswith("-- nothing to migrate")
    alembic("revision", "--autogenerate", "-m", "Add user column", url=url, ini=ini)
    alembic("revision", "-m", "Custom changes", url=url, ini=ini)

    # CLI Commands: initialization and migrations
    assert "Initialized database" in invoke(url, "init").output
    assert "Recreated" in invoke(url, "init", "--force", input="y\n").output
    expected = seed(url)
    invoke(url, "migrate")
    invoke(url, "migrate", "--revision", INITIAL[:6])
    invoke(url, "migrate", "--dry-run")

    # Status
    status = invoke(url, "status").stdout
    assert f"Current Revision: {HEAD}\nPending Migrations: 0\n\nTables:\n" in status
    assert "  devices: 5 rows\n" in status and "  logs: 1,234 rows\n" in status
    assert "Columns:" in invoke(url, "status", "--verbose").stdout

    # Export
    document = json.loads(invoke(url, "export").stdout)
    assert document["schema_revision"] == HEAD
    invoke(url, "export", "--output", "backup.json")
    invoke(url, "export", "--format", "yaml", "--output", "backup.yaml")
    selective = json.loads(invoke(url, "export", "--tables", "devices,cards").stdout)
    assert "sessions" not in json.dumps(selective.get("tables", selective))
    assert Path("backup.json").stat().st_size > 0 and Path("backup.yaml").stat().st_size > 0

    # Import
    assert "0 created" in invoke(url, "import", "backup.json").output
    invoke(url, "import", "--format", "yaml", "backup.yaml")
    invoke(url, "import", "--conflict", "skip", "backup.json")
    assert "updated" in invoke(url, "import", "--conflict", "overwrite", "backup.json").output
    invoke(url, "import", "--conflict", "merge", "backup.json")
    assert "Dry run" in invoke(url, "import", "--dry-run", "backup.json").output
    assert counts(url) == expected

    # Purge: logs older than 90 days, then sessions (with their logs) older than 30 days
    purged = invoke(url, "purge", "--older-than", "90", "--tables", "logs", input="y\n").output
    assert "Deleted 412 logs" in purged
    purged = invoke(url, "purge", "--older-than", "30", "--tables", "sessions,logs", input="y\n")
    assert "Deleted 2 sessions, 411 logs" in purged.output
    assert (
        "Nothing to purge"
        in invoke(url, "purge", "--older-than", "90", "--tables", "logs", "--yes").output
    )

    # Statistics
    assert "Database Statistics" in invoke(url, "stats").stdout
    stats = json.loads(invoke(url, "stats", "--json").stdout)
    assert stats["tables"] == {**expected, "sessions": 1, "logs": 411}
    assert stats["recent_activity"] == {"sessions_last_24h": 1, "tests_last_24h": 2}

    # Best practices: test and back up before migrating
    invoke(url, "migrate", "--dry-run")
    invoke(url, "migrate")
    invoke(url, "export", "--output", "backup_before_migration.json")
    invoke(url, "migrate")

    # Troubleshooting
    invoke(url, "status")
    assert HEAD in alembic("history", url=url)
    alembic("stamp", "head", url=url)
    invoke(url, "import", "--conflict", "skip", "backup.json")
    invoke(url, "init", "--force", input="y\n")
    assert counts(url) == dict.fromkeys(expected, 0)
    invoke(url, "import", "backup.json")
    assert counts(url) == expected


def test_stats_json_pipes_into_json_tool_through_the_installed_script(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pipe.db'}"
    script = shutil.which("cardlink-db")
    assert script is not None, "the console script is not installed"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([script, "init"], env=env, check=True, capture_output=True, timeout=60)
    piped = subprocess.run(
        f'"{script}" stats --json | "{sys.executable}" -m json.tool',
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    report = json.loads(piped.stdout)
    assert set(report) == {"tables", "database_size_mb", "recent_activity"}
    assert set(report["tables"]) == set(database.TABLE_NAMES)
    assert set(report["recent_activity"]) == {"sessions_last_24h", "tests_last_24h"}
    assert isinstance(report["database_size_mb"], float) and report["database_size_mb"] > 0


def test_every_command_has_help_with_an_example() -> None:
    assert cli.commands, "no commands registered"
    for name in cli.commands:
        result = invoke(None, name, "--help")
        assert "Example:" in result.output, name
        assert f"cardlink-db {name}" in result.output, name
    assert "Example:" in invoke(None, "--help").output


def test_version_is_printed() -> None:
    assert invoke(None, "--version").output.startswith("cardlink-db, version ")
