"""Alembic migrations: the initial revision is the models' schema, on every backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

import cardlink.database as database
from cardlink.database import (
    Base,
    DatabaseConfig,
    DatabaseManager,
    DatabaseNotFoundError,
    MigrationError,
    downgrade,
    get_current_revision,
    get_pending_revisions,
    run_migrations,
)
from cardlink.database.migrate import (
    get_head_revision,
    is_unversioned,
    stamp_head_if_unversioned,
)
from cardlink.database.schema_version import script_directory
from conftest import forget_schema
from revisions import HEAD, INITIAL, REVISIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = ("devices", "cards", "sessions", "logs", "tests", "settings")


def packaged_scripts() -> ScriptDirectory:
    """Alembic's view of the revisions shipped with the package."""
    return script_directory()


@pytest.fixture
def fresh(empty_database_url: str) -> DatabaseManager:
    """A manager on a database with no tables; the schema is forgotten afterwards."""
    db = DatabaseManager(DatabaseConfig(database_url=empty_database_url))
    db.initialize()
    yield db
    db.close()
    forget_schema(empty_database_url)


def differences(manager: DatabaseManager) -> list[object]:
    with manager.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def row_counts(manager: DatabaseManager) -> dict[str, int]:
    with manager.engine.connect() as connection:
        return {
            name: connection.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in TABLES
        }


def insert_rows(manager: DatabaseManager) -> uuid.UUID:
    """A device, a card, a session with two logs, a test result and a setting."""
    session_id = uuid.uuid4()
    with database.UnitOfWork(manager) as uow:
        uow.devices.create(database.Device(id="RF8M33", device_type=database.DeviceType.PHONE))
        uow.cards.create(database.CardProfile(iccid="8901123456789012345", psk_identity="c1"))
        session = database.OTASession(
            id=session_id, device_id="RF8M33", card_iccid="8901123456789012345"
        )
        uow.sessions.create(session)
        for direction in (database.CommDirection.COMMAND, database.CommDirection.RESPONSE):
            uow.logs.create(
                database.CommLog(session_id=session_id, direction=direction, raw_data="00A4")
            )
        uow.tests.create(
            database.TestResult(run_id="r1", suite_name="s", test_name="t", status="passed")
        )
        uow.settings.create(database.Setting(key="k", value={"a": 1}))
        uow.commit()
    return session_id


def script_copy(tmp_path: Path, *revisions: str) -> str:
    """A copy of the packaged migrations plus extra revision files (source text)."""
    target = tmp_path / "migrations"
    source = Path(database.__file__).parent / "migrations"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for number, body in enumerate(revisions):
        (target / "versions" / f"extra_{number}.py").write_text(textwrap.dedent(body))
    return str(target)


ADD_COLUMN = """
    import sqlalchemy as sa
    from alembic import op

    revision = "b2"
    down_revision = "{head}"
    branch_labels = None
    depends_on = None


    def recreate():
        # SQLite copies the table (the parent of logs): no log may be lost on the way.
        return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


    def upgrade():
        with op.batch_alter_table("sessions", recreate=recreate()) as batch_op:
            batch_op.add_column(sa.Column("operator", sa.String(50)))


    def downgrade():
        with op.batch_alter_table("sessions", recreate=recreate()) as batch_op:
            batch_op.drop_column("operator")
"""

FAILING = """
    import sqlalchemy as sa
    from alembic import op

    revision = "c3"
    down_revision = "b2"
    branch_labels = None
    depends_on = None


    def upgrade():
        op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("SELECT * FROM no_such_table")


    def downgrade():
        op.drop_table("half_done")
"""


def test_a_fresh_migrated_database_has_exactly_the_models_schema(fresh: DatabaseManager) -> None:
    assert run_migrations(manager=fresh) == HEAD
    assert differences(fresh) == []
    assert get_current_revision(manager=fresh) == HEAD
    assert get_pending_revisions(manager=fresh) == []


def test_create_tables_stamps_head_so_nothing_is_pending(fresh: DatabaseManager) -> None:
    fresh.create_tables()
    assert get_current_revision(manager=fresh) == HEAD
    assert get_pending_revisions(manager=fresh) == []
    assert differences(fresh) == []


def test_upgrade_downgrade_to_base_and_upgrade_again(fresh: DatabaseManager) -> None:
    run_migrations(manager=fresh)
    assert downgrade(revision="base", manager=fresh) is None
    assert set(TABLES).isdisjoint(inspect(fresh.engine).get_table_names())
    assert get_pending_revisions(manager=fresh) == REVISIONS
    run_migrations(manager=fresh)
    assert differences(fresh) == []


def test_downgrade_by_steps_goes_back_one_revision(fresh: DatabaseManager) -> None:
    run_migrations(manager=fresh)
    before_head = REVISIONS[-2] if len(REVISIONS) > 1 else None
    assert downgrade(steps=1, manager=fresh) == before_head
    assert get_current_revision(manager=fresh) == before_head


def test_migrate_on_an_up_to_date_database_keeps_every_row(fresh: DatabaseManager) -> None:
    run_migrations(manager=fresh)
    insert_rows(fresh)
    before = row_counts(fresh)
    assert run_migrations(manager=fresh) == HEAD
    assert row_counts(fresh) == before == {name: 2 if name == "logs" else 1 for name in TABLES}


def test_a_new_revision_applied_over_data_keeps_every_row(
    fresh: DatabaseManager, tmp_path: Path
) -> None:
    location = script_copy(tmp_path, ADD_COLUMN.replace("{head}", HEAD))
    run_migrations(manager=fresh, script_location=location, revision=HEAD)
    session_id = insert_rows(fresh)
    before = row_counts(fresh)
    assert get_pending_revisions(manager=fresh, script_location=location) == ["b2"]

    assert run_migrations(manager=fresh, script_location=location) == "b2"
    assert row_counts(fresh) == before
    columns = {column["name"] for column in inspect(fresh.engine).get_columns("sessions")}
    assert "operator" in columns

    assert downgrade(steps=1, manager=fresh, script_location=location) == HEAD
    assert row_counts(fresh) == before
    with fresh.engine.connect() as connection:
        logs = connection.execute(select(Base.metadata.tables["logs"].c.session_id)).scalars().all()
    assert set(logs) == {session_id}
    assert differences(fresh) == []


def test_a_failed_revision_raises_migration_error_and_stays_at_the_last_good_one(
    fresh: DatabaseManager, tmp_path: Path
) -> None:
    location = script_copy(tmp_path, ADD_COLUMN.replace("{head}", HEAD), FAILING)
    insert_before = run_migrations(manager=fresh, script_location=location, revision=HEAD)
    assert insert_before == HEAD
    insert_rows(fresh)
    before = row_counts(fresh)

    with pytest.raises(MigrationError, match=r"migration c3 failed: .*at revision b2"):
        run_migrations(manager=fresh, script_location=location)

    assert get_current_revision(manager=fresh) == "b2"
    assert row_counts(fresh) == before
    half_done = "half_done" in inspect(fresh.engine).get_table_names()
    # MariaDB commits each DDL statement: the table created before the error stays.
    assert half_done is fresh.config.is_mysql
    if half_done:
        with fresh.engine.begin() as connection:
            connection.execute(text("DROP TABLE half_done"))


def test_an_unknown_target_revision_raises_migration_error(fresh: DatabaseManager) -> None:
    with pytest.raises(MigrationError, match="target revision not found"):
        run_migrations("ffffffff", manager=fresh)
    assert get_current_revision(manager=fresh) is None


def test_a_partial_revision_id_is_enough(fresh: DatabaseManager) -> None:
    assert run_migrations(INITIAL[:6], manager=fresh) == INITIAL
    assert run_migrations(HEAD[:6], manager=fresh) == HEAD


def test_the_dry_run_returns_the_sql_and_touches_nothing(fresh: DatabaseManager) -> None:
    sql = run_migrations(sql=True, manager=fresh)
    assert sql is not None and "CREATE TABLE devices" in sql and HEAD in sql
    assert inspect(fresh.engine).get_table_names() == []
    run_migrations(manager=fresh)
    assert "CREATE TABLE" not in (run_migrations(sql=True, manager=fresh) or "")


def test_tables_without_a_version_are_detected_and_stamping_fixes_them(
    fresh: DatabaseManager,
) -> None:
    Base.metadata.create_all(fresh.engine)  # a database made before migrations existed
    assert is_unversioned(fresh)
    with pytest.raises(MigrationError, match="cardlink-db init"):
        run_migrations(manager=fresh)
    assert stamp_head_if_unversioned(fresh) is True
    assert not is_unversioned(fresh)
    assert get_pending_revisions(manager=fresh) == []
    assert stamp_head_if_unversioned(fresh) is False


def test_the_api_resolves_the_database_like_the_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "env.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    with pytest.raises(DatabaseNotFoundError):  # a call that only reads creates nothing
        get_pending_revisions()
    assert not path.exists()
    run_migrations()  # an upgrade may create the file
    assert get_pending_revisions() == []
    assert get_current_revision() == HEAD
    assert get_current_revision(config=DatabaseConfig.from_sqlite_path(path)) == HEAD
    assert get_head_revision() == HEAD


def _alembic(*args: str, url: str, cwd: Path = REPO_ROOT, ini: Path | None = None) -> str:
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "-m", "alembic"]
    if ini is not None:
        command += ["-c", str(ini)]
    result = subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_guides_alembic_commands_work_from_the_repository_root(
    empty_database_url: str, tmp_path: Path
) -> None:
    forget_schema(empty_database_url)
    # Revision files go to a copy of the migrations, never into the package under test.
    location = script_copy(tmp_path)
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        (REPO_ROOT / "alembic.ini")
        .read_text()
        .replace("script_location = cardlink.database:migrations", f"script_location = {location}")
    )
    db = DatabaseManager(DatabaseConfig(database_url=empty_database_url))
    try:
        Base.metadata.create_all(db.engine)
        assert is_unversioned(db)
        assert HEAD in _alembic("history", url=empty_database_url)
        _alembic("stamp", "head", url=empty_database_url)
        assert get_current_revision(manager=db) == HEAD
        _alembic(
            "revision", "--autogenerate", "-m", "Add user column", url=empty_database_url, ini=ini
        )
        _alembic("revision", "-m", "Custom changes", url=empty_database_url, ini=ini)
        generated = sorted((Path(location) / "versions").glob("*_add_user_column.py"))
        assert len(generated) == 1
        body = generated[0].read_text()
        assert "def upgrade() -> None:" in body
        assert "op." not in body.split("def upgrade")[1].split("def downgrade")[0]
        assert len(list((Path(location) / "versions").glob("*_custom_changes.py"))) == 1
    finally:
        db.close()


def test_the_alembic_url_comes_from_the_cardlink_db_variables(tmp_path: Path) -> None:
    path = tmp_path / "parts.db"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(CARDLINK_DB_DRIVER="sqlite", CARDLINK_DB_NAME=str(path))
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert get_current_revision(database_url=f"sqlite:///{path}") == HEAD


def _can_build_offline() -> bool:
    """True if setuptools here builds wheels without the separate ``wheel`` package."""
    import importlib.util

    try:
        import setuptools
    except ImportError:  # a fresh venv of Python 3.12+ has none
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _see_the_dependencies_of_this_interpreter(python: Path) -> None:
    """Let a new venv import what this interpreter has installed (SQLAlchemy, Alembic...).

    Wherever they are: a venv's site-packages, or the system's (CI installs there).
    The new venv's own site-packages stays first, so its wheel wins over any
    ``cardlink`` found here; ``.pth`` files of these folders are not run, so an
    editable install of this checkout stays invisible.
    """
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folders = [path for path in sys.path if path.endswith(("site-packages", "dist-packages"))]
    (Path(found) / "_outer_dependencies.pth").write_text("\n".join(folders) + "\n")


def test_migrations_run_from_an_installed_wheel(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    wheels = tmp_path / "wheels"
    # Offline when the local setuptools can build wheels itself; else pip fetches the backend.
    offline = ["--no-build-isolation"] if _can_build_offline() else []
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *offline,
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    _see_the_dependencies_of_this_interpreter(python)
    wheel = next(wheels.glob("*.whl"))
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--ignore-installed",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    url = f"sqlite:///{tmp_path / 'wheel.db'}"
    # The installed wheel, not a source tree that PYTHONPATH may point at.
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": ""}
    where = subprocess.run(
        [str(python), "-c", "import cardlink.database as d; print(d.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where
    script = venv / "bin" / "cardlink-db"
    migrate = subprocess.run(
        [str(script), "migrate"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    status = subprocess.run(
        [str(script), "status"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
    assert f"Current Revision: {HEAD}" in status.stdout
    assert "Pending Migrations: 0" in status.stdout
    assert get_current_revision(database_url=url) == HEAD
    assert make_url(url).database in status.stdout

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args), cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done

    # Alembic's own commands, through the config the package ships, from any folder.
    ini = run(str(script), "alembic-ini").stdout.strip()
    assert ini.startswith(str(venv)) and Path(ini).is_file()
    assert HEAD in run(str(python), "-m", "alembic", "-c", ini, "history").stdout
    assert f"{HEAD} (head)" in run(str(python), "-m", "alembic", "-c", ini, "current").stdout
    # And the same through cardlink-db.
    assert f"-> {HEAD} (head)" in run(str(script), "history").stdout
    assert run(str(script), "downgrade", "--revision", "base", "--yes").stdout.strip() == (
        f"Downgraded {HEAD} -> base"
    )
    assert run(str(script), "current").stdout.strip() == "none"
    run(str(script), "migrate")
    assert run(str(script), "current").stdout.strip() == f"{HEAD} (head)"


def test_concurrent_stamps_record_head_once(empty_database_url: str) -> None:
    forget_schema(empty_database_url)
    managers = [DatabaseManager(DatabaseConfig(empty_database_url)) for _ in range(4)]
    Base.metadata.create_all(managers[0].engine)
    barrier = threading.Barrier(len(managers))
    failures: list[BaseException] = []

    def create(manager: DatabaseManager) -> None:
        barrier.wait()
        try:
            stamp_head_if_unversioned(manager)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=create, args=(manager,)) for manager in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        with managers[0].engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [row[0] for row in versions] == [HEAD]
    finally:
        for manager in managers:
            manager.close()


def test_autogenerate_writes_plain_types_that_recreate_the_schema(
    fresh: DatabaseManager, tmp_path: Path
) -> None:
    location = Path(script_copy(tmp_path))
    for revision in (location / "versions").glob("*.py"):
        revision.unlink()
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        (REPO_ROOT / "alembic.ini")
        .read_text()
        .replace("script_location = cardlink.database:migrations", f"script_location = {location}")
    )
    draft_url = f"sqlite:///{tmp_path / 'draft.db'}"
    _alembic(
        "revision", "--autogenerate", "--rev-id", "r1", "-m", "everything", url=draft_url, ini=ini
    )
    body = (location / "versions" / "r1_everything.py").read_text()
    assert "cardlink" not in body
    assert "sa.Uuid()" in body and "mysql.DATETIME(fsp=6)" in body and "postgresql.JSONB" in body

    run_migrations(manager=fresh, script_location=str(location))
    assert differences(fresh) == []
