"""examples/quickstart.py prints what the guide's Quick Start steps 1-6 print, on every backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import scratch_database

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"

#: The lines the guide's steps 1-6 print, on a database holding nothing else.
GUIDE_OUTPUT = [
    "Created device: RF8M33XXXXX",
    "Created card: 89011234567890123456",
    "Found 1 phone(s)",
    "  - Test Phone: Galaxy S21",
    "Sessions in last 7 days: 0",
    "Success rate: 0.0%",
    "Avg duration: 0ms",
    "Database exported to backup.json",
]


def run_quickstart(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CARDLINK_ENCRYPTION_KEY", "DATABASE_URL")
        and not key.startswith("CARDLINK_DB_")
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def fresh_server_database(backend: str, tmp_path: Path) -> str:
    """A new, empty database of our own on the server; returns its URL."""
    return scratch_database(backend, tmp_path, "quickstart")


def test_quickstart_on_the_default_sqlite_file_without_a_key_and_again(tmp_path: Path) -> None:
    first = run_quickstart(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == GUIDE_OUTPUT
    assert "CARDLINK_ENCRYPTION_KEY is not set" in first.stderr
    assert "throwaway key" in first.stderr
    assert (tmp_path / "data" / "cardlink.db").is_file()
    backup = (tmp_path / "backup.json").read_text()
    assert '"id": "RF8M33XXXXX"' in backup and "my_secret_psk_key_16" not in backup

    again = run_quickstart(tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == GUIDE_OUTPUT


def test_quickstart_with_a_key_set_says_nothing_on_stderr(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    done = run_quickstart(tmp_path, CARDLINK_ENCRYPTION_KEY=Fernet.generate_key().decode())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == GUIDE_OUTPUT and done.stderr == ""


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_quickstart_with_database_url_on_a_server_and_again(server: str, tmp_path: Path) -> None:
    url = fresh_server_database(server, tmp_path)
    for _ in range(2):
        done = run_quickstart(tmp_path, DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == GUIDE_OUTPUT
    assert not (tmp_path / "data").exists()


def test_quickstart_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    done = run_quickstart(tmp_path, DATABASE_URL="postgresql://u:s3cret@127.0.0.1:9/d")
    assert done.returncode == 1 and done.stdout == ""
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "Unable to connect to database" in line and "s3cret" not in done.stderr
