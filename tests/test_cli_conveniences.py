"""`cardlink-db` as a new user meets it: typos, empty databases, and the peers' conveniences."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cardlink.database import TABLE_NAMES, DatabaseConfig, DatabaseManager, UnitOfWork
from cardlink.database.cli import cli
from cardlink.database.cli import console as cli_console
from cardlink.database.maintenance import create_database
from cardlink.database.transfer.formats import FORMAT_VERSION
from conftest import forget_schema
from test_cli import HEAD, counts, invoke, seed
from test_migrations import REVISIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


def one_line_error(result: Result) -> str:
    """The single ``Error: ...`` line of a failed command (no traceback, no driver class)."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fresh_url(empty_database_url: str) -> str:
    yield empty_database_url
    forget_schema(empty_database_url)


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    """A valid export (of an empty database) to feed ``import``."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    invoke(url, "init")
    path = tmp_path / "backup.json"
    invoke(url, "export", "--output", str(path))
    return path


#: Every command that needs the CardLink tables, with the arguments it needs.
NEEDS_TABLES = {
    "stats": ["stats"],
    "stats --json": ["stats", "--json"],
    "export to stdout": ["export"],
    "export to a file": ["export", "--output", "{tmp}/out.json"],
    "import": ["import", "{backup}"],
    "import --dry-run": ["import", "--dry-run", "{backup}"],
    "purge": ["purge", "--older-than", "1", "--tables", "logs", "--yes"],
    "purge --dry-run": ["purge", "--older-than", "1", "--tables", "logs", "--dry-run"],
    "rotate-key": ["rotate-key", "--yes"],
    "downgrade": ["downgrade", "--revision", "base", "--yes"],
    "stamp": ["stamp", "head"],
    "sessions": ["sessions"],
    "trace import": ["trace", "import", "{backup}", "--session", "{session}"],
    "trace export": ["trace", "export", "{session}", "--output", "{tmp}/out.json"],
    "timeline": ["timeline", "{session}"],
    "report": ["report", "nightly-1", "--output", "{tmp}/report.html"],
    "report sessions": ["report", "sessions", "--output", "{tmp}/sessions.html"],
    "tests import": ["tests", "import", "{backup}", "--run-id", "nightly-1"],
}
#: And the commands that only read a database that must exist.
READS = {
    **NEEDS_TABLES,
    "status": ["status"],
    "status --json": ["status", "--json"],
    "current": ["current"],
    "migrate --dry-run": ["migrate", "--dry-run"],
}


def _arguments(template: list[str], tmp_path: Path, backup: Path) -> list[str]:
    session = "3f2b8c1e-0000-4000-8000-000000000000"
    return [part.format(tmp=tmp_path, backup=backup, session=session) for part in template]


@pytest.mark.parametrize("command", NEEDS_TABLES)
def test_every_command_on_a_database_without_tables_fails_in_one_line_naming_init(
    command: str, fresh_url: str, backup: Path, tmp_path: Path, encryption_key: str
) -> None:
    args = _arguments(NEEDS_TABLES[command], tmp_path, backup)
    result = CliRunner().invoke(cli, ["--database-url", fresh_url, *args])
    line = one_line_error(result)
    assert "cardlink-db init" in line and "create_tables" not in line
    assert result.stdout == ""  # not even a partial export header
    assert not (tmp_path / "out.json").exists()
    manager = DatabaseManager(DatabaseConfig(fresh_url))
    try:
        assert manager.stats  # the database is still there, still without tables
        assert invoke(fresh_url, "current").stdout.strip() == "none"
    finally:
        manager.close()


@pytest.mark.parametrize("command", READS)
def test_every_reading_command_on_a_mistyped_sqlite_path_creates_nothing(
    command: str, backup: Path, tmp_path: Path, encryption_key: str
) -> None:
    path = tmp_path / "nope" / "x.db"
    args = _arguments(READS[command], tmp_path, backup)
    result = CliRunner().invoke(cli, ["--database-url", f"sqlite:///{path}", *args])
    line = one_line_error(result)
    assert line == f"Error: no database at {path}; run `cardlink-db init` to create it"
    assert not (tmp_path / "nope").exists()
    assert not (tmp_path / "out.json").exists()


def test_init_and_migrate_may_create_the_sqlite_file(tmp_path: Path) -> None:
    for command in ("init", "migrate"):
        path = tmp_path / command / "new.db"
        invoke(f"sqlite:///{path}", command)
        assert path.is_file()
        assert invoke(f"sqlite:///{path}", "current").stdout.strip() == f"{HEAD} (head)"


def test_a_two_slash_sqlite_url_shows_the_three_and_four_slash_forms(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    line = one_line_error(
        CliRunner().invoke(cli, ["--database-url", "sqlite://data/cardlink.db", "status"])
    )
    assert "sqlite:///data/cardlink.db" in line and "sqlite:////data/cardlink.db" in line
    assert not (tmp_path / "data").exists()


def test_partial_component_settings_are_one_line_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CARDLINK_DB_HOST", "db.example")
    monkeypatch.setenv("CARDLINK_DB_NAME", "cardlink")
    line = one_line_error(CliRunner().invoke(cli, ["status"]))
    assert "CARDLINK_DB_HOST, CARDLINK_DB_NAME are set but CARDLINK_DB_DRIVER is missing" in line


def test_purge_dry_run_prints_the_counts_and_changes_nothing(
    fresh_url: str, encryption_key: str
) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=300)
    before = counts(fresh_url)
    result = invoke(
        fresh_url, "purge", "--older-than", "30", "--tables", "sessions,logs", "--dry-run"
    )
    assert "  sessions: 2 rows\n  logs: 200 rows\n" in result.stdout
    assert "Dry run: nothing was deleted" in result.stdout
    assert counts(fresh_url) == before


@pytest.mark.parametrize("name", ["backup.json.gz", "backup.yaml.gz"])
def test_a_gz_backup_is_written_compressed_and_read_back(
    name: str, fresh_url: str, tmp_path: Path, encryption_key: str
) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=50)
    target = tmp_path / name
    invoke(fresh_url, "export", "--output", str(target))
    assert target.read_bytes()[:2] == b"\x1f\x8b"
    text = gzip.decompress(target.read_bytes()).decode()
    assert ("format: cardlink-database-export" in text) == name.startswith("backup.yaml")
    expected = counts(fresh_url)
    invoke(fresh_url, "init", "--force", "--yes")
    imported = invoke(fresh_url, "import", str(target))
    assert "66 created" in imported.stdout
    assert counts(fresh_url) == expected


def test_an_explicit_format_with_a_gz_name_still_compresses(fresh_url: str, tmp_path: Path) -> None:
    invoke(fresh_url, "init")
    target = tmp_path / "b.json.gz"
    invoke(fresh_url, "export", "--format", "json", "--output", str(target))
    assert json.loads(gzip.decompress(target.read_bytes()))["format_version"] == FORMAT_VERSION


def test_status_json_is_machine_readable(fresh_url: str) -> None:
    report = json.loads(invoke(fresh_url, "status", "--json").stdout)
    assert report["current_revision"] is None and report["head_revision"] == HEAD
    assert report["missing_tables"] == list(TABLE_NAMES)
    assert "cardlink-db init" in report["advice"]
    invoke(fresh_url, "init")
    report = json.loads(invoke(fresh_url, "status", "--json").stdout)
    assert report["current_revision"] == HEAD and report["pending_migrations"] == []
    assert report["tables"]["devices"] == 0 and report["advice"] is None
    assert report["backend"] in ("sqlite", "postgresql", "mysql")
    verbose = json.loads(invoke(fresh_url, "status", "--json", "--verbose").stdout)
    assert {column["name"] for column in verbose["schema"]["devices"]["columns"]} >= {"id"}


def test_stats_json_keeps_its_shape(fresh_url: str) -> None:
    invoke(fresh_url, "init")
    report = json.loads(invoke(fresh_url, "stats", "--json").stdout)
    assert set(report) == {"tables", "database_size_mb", "recent_activity"}
    assert set(report["recent_activity"]) == {"sessions_last_24h", "tests_last_24h"}
    assert list(report["tables"]) == list(TABLE_NAMES)


def test_progress_shows_a_total_and_an_eta(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption_key: str
) -> None:
    invoke(fresh_url, "init")
    seed(fresh_url, logs=30)
    monkeypatch.setattr(cli_console, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli_console, "PROGRESS_DELAY_SECONDS", 0.0)
    target = tmp_path / "backup.json.gz"
    exported = invoke(fresh_url, "export", "--output", str(target)).stderr
    assert "Exporting" in exported and "/46" in exported and "ETA" in exported
    imported = invoke(fresh_url, "import", "--conflict", "overwrite", str(target)).stderr
    assert "Importing" in imported and "rows" in imported and "ETA" in imported
    assert f"/{target.stat().st_size / 1000:.1f} kB" in imported or "bytes" in imported


def test_no_color_turns_the_red_error_line_plain(tmp_path: Path) -> None:
    args = ["--database-url", f"sqlite:///{tmp_path / 'no.db'}", "stats"]
    coloured = CliRunner().invoke(cli, args, color=True)
    assert "\x1b[31m" in coloured.stderr
    plain = CliRunner().invoke(cli, args, color=True, env={"NO_COLOR": "1"})
    assert plain.stderr.startswith("Error: no database") and "\x1b[" not in plain.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_before_and_after_the_subcommand(where: str, tmp_path: Path) -> None:
    url = ["--database-url", f"sqlite:///{tmp_path / 'no.db'}"]
    args = [*url, "--debug", "stats"] if where == "before" else [*url, "stats", "--debug"]
    result = CliRunner().invoke(cli, args)
    assert type(result.exception).__name__ == "DatabaseNotFoundError"  # the traceback, not a line
    assert "--debug" in CliRunner().invoke(cli, ["stats", "--help"]).stdout


MERGE_HELP = "merge (update only the fields the file has; a null there is written)"


def test_conflict_merge_help_behaviour_and_readme_agree(fresh_url: str, tmp_path: Path) -> None:
    help_text = " ".join(CliRunner().invoke(cli, ["import", "--help"]).stdout.split())
    assert MERGE_HELP in help_text
    assert "a null there is written" in README
    invoke(fresh_url, "init")
    manager = DatabaseManager(DatabaseConfig(fresh_url))
    try:
        with UnitOfWork(manager) as uow:
            from cardlink.database import Device, DeviceType

            uow.devices.create(
                Device(id="D1", device_type=DeviceType.PHONE, name="Old", model="S21")
            )
            uow.commit()
        document = json.loads(invoke(fresh_url, "export", "--tables", "devices").stdout)
        row = document["tables"]["devices"][0]
        row["name"] = None  # present and null: written
        del row["model"]  # absent: kept
        path = tmp_path / "merge.json"
        path.write_text(json.dumps(document))
        invoke(fresh_url, "import", "--conflict", "merge", str(path))
        with UnitOfWork(manager) as uow:
            device = uow.devices.get_by_id("D1")
            assert device.name is None and device.model == "S21"
    finally:
        manager.close()


def test_shell_completion_is_shown_in_the_readme_and_works() -> None:
    line = 'eval "$(_CARDLINK_DB_COMPLETE=bash_source cardlink-db)"'
    assert line in README
    result = CliRunner().invoke(
        cli, [], prog_name="cardlink-db", env={"_CARDLINK_DB_COMPLETE": "bash_source"}
    )
    assert "_cardlink_db_completion" in result.stdout and "complete " in result.stdout


def test_the_password_may_come_from_cardlink_db_password_and_is_never_printed(
    backend: str, tmp_path: Path, database_url: str
) -> None:
    assert "CARDLINK_DB_PASSWORD" in " ".join(CliRunner().invoke(cli, ["--help"]).stdout.split())
    if backend != "postgresql":
        pytest.skip("only the PostgreSQL test server accepts any password (trust auth)")
    result = CliRunner().invoke(
        cli, ["--database-url", database_url, "status"], env={"CARDLINK_DB_PASSWORD": "s3cret"}
    )
    assert result.exit_code == 0, result.output
    assert ":***@" in result.stdout and "s3cret" not in result.output


def test_yaml_saved_as_json_says_to_use_format_yaml(fresh_url: str, tmp_path: Path) -> None:
    invoke(fresh_url, "init")
    path = tmp_path / "backup.json"
    invoke(fresh_url, "export", "--format", "yaml", "--output", str(path))
    line = one_line_error(
        CliRunner().invoke(cli, ["--database-url", fresh_url, "import", str(path)])
    )
    assert line == f"Error: {path}: this looks like YAML; use --format yaml"
    invoke(fresh_url, "import", "--format", "yaml", str(path))


def test_an_export_into_a_missing_folder_names_the_path_given(
    fresh_url: str, tmp_path: Path
) -> None:
    invoke(fresh_url, "init")
    target = tmp_path / "missing" / "backup.json"
    line = one_line_error(
        CliRunner().invoke(cli, ["--database-url", fresh_url, "export", "-o", str(target)])
    )
    assert str(target) in line and ".tmp" not in line and "does not exist" in line


def test_downgrade_asks_and_history_current_and_stamp_work_like_alembic(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke(fresh_url, "init")
    refused = one_line_error(
        CliRunner().invoke(cli, ["--database-url", fresh_url, "downgrade", "--revision", "base"])
    )
    assert "pass --yes" in refused
    monkeypatch.setattr(cli_console, "stdin_is_terminal", lambda: True)
    cancelled = CliRunner().invoke(
        cli, ["--database-url", fresh_url, "downgrade", "--revision", "base"], input="n\n"
    )
    assert cancelled.exit_code == 1 and "nothing was changed" in cancelled.stderr
    assert invoke(fresh_url, "current").stdout.strip() == f"{HEAD} (head)"
    asked = invoke(fresh_url, "downgrade", "--revision", "base", input="y\n")
    assert f"Downgraded {HEAD} -> base" in asked.stdout
    assert invoke(fresh_url, "current").stdout.strip() == "none"
    history = invoke(None, "history").stdout
    for older, newer in zip(["<base>", *REVISIONS[:-1]], REVISIONS, strict=True):
        assert f"{older} -> {newer}" in history
    assert f" -> {HEAD} (head), " in history
    invoke(fresh_url, "migrate")
    assert invoke(fresh_url, "stamp", "base").stdout.strip().endswith("at revision base")
    assert invoke(fresh_url, "current").stdout.strip() == "none"
    assert invoke(fresh_url, "stamp", "head").stdout.strip().endswith(f"at revision {HEAD}")
    line = one_line_error(
        CliRunner().invoke(cli, ["--database-url", fresh_url, "migrate", "--revision", "base"])
    )
    assert "cardlink-db downgrade --revision base" in line


def test_the_packaged_alembic_config_works_from_any_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alembic.db'}"
    invoke(url, "init")
    ini = invoke(None, "alembic-ini").stdout.strip()
    assert Path(ini).is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "DATABASE_URL": url, "ALEMBIC_CONFIG": ini}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "current"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{HEAD} (head)" in done.stdout


def test_create_database_makes_a_missing_sqlite_file_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    config = DatabaseConfig(f"sqlite:///{tmp_path / 'made' / 'by.db'}")
    assert create_database(config) is True and create_database(config) is False
    assert (tmp_path / "made" / "by.db").stat().st_mode & 0o077 == 0


def test_the_cli_modules_hold_no_sql_and_every_command_has_an_example() -> None:
    import ast

    import cardlink.database.cli as package

    for module in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                assert node.module == "sqlalchemy.exc", f"{module.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("sqlalchemy") for alias in node.names)
    for name, command in cli.commands.items():
        assert "Example:" in (command.help or ""), name


def test_a_truncated_gz_backup_is_one_line(fresh_url: str, tmp_path: Path) -> None:
    invoke(fresh_url, "init")
    target = tmp_path / "backup.json.gz"
    invoke(fresh_url, "export", "--output", str(target))
    target.write_bytes(target.read_bytes()[:-12])
    line = one_line_error(
        CliRunner().invoke(cli, ["--database-url", fresh_url, "import", str(target)])
    )
    assert "not whole gzip data" in line
    assert counts(fresh_url)["devices"] == 0
