"""Faults: a writer killed mid-batch, a connection killed by the server, interrupted maintenance.

Whatever happens to a writer, a transaction is all-or-nothing: after a SIGKILL
the database opens, SQLite's ``integrity_check`` says ok, and the batch in
flight is entirely present or entirely absent. A connection killed from the
server side surfaces as ``ConnectionError``; the unit of work is rolled back
and the next one works in the same process. A purge, an import or ``init
--force`` that fails half-way leaves every table and row as it was (database
triggers and foreign tables make the failures real, no mocks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select, text

from cardlink.database import (
    Base,
    CardProfile,
    CommLog,
    ConnectionError,
    DatabaseConfig,
    DatabaseManager,
    DataExporter,
    Device,
    DeviceType,
    OTASession,
    UnitOfWork,
)
from cardlink.database.manager import PING_AFTER_IDLE_SECONDS
from conftest import forget_schema

COMMITTED_LOGS = 500
BATCH_LOGS = 20_000

# Runs in the writer process: commits one batch, then starts a second one and says
# "INSIDE" at the chosen stage, so the test can SIGKILL it right there.
WRITER = r"""
import sys, time
from sqlalchemy import event
from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork

url, stage = sys.argv[1], sys.argv[2]
committed_logs, batch_logs = int(sys.argv[3]), int(sys.argv[4])
manager = DatabaseManager(DatabaseConfig(database_url=url))
manager.initialize()

def batch(session_id, count):
    return [(session_id, "response", f"9000{n:06d}", "OK", "9000", None, 1.5) for n in range(count)]

with UnitOfWork(manager) as uow:
    done = uow.sessions.create_session(device_id="DEV-1", session_type="committed")
    uow.logs.add_log_batch(batch(done.id, committed_logs))
    uow.commit()
print("COMMITTED", done.id, flush=True)

armed, signalled = [], []

def signal_inside(pause):
    if not armed or signalled:
        return
    signalled.append(True)
    print("INSIDE", flush=True)
    if pause:
        time.sleep(60)

def is_log_insert(statement):
    return statement.lstrip().upper().startswith("INSERT INTO LOGS")

# The batch is written inside a SAVEPOINT (by COPY on PostgreSQL, so no cursor event there).
engine = manager.engine
if stage == "insert":
    event.listen(engine, "savepoint", lambda conn, name: signal_inside(pause=False))
    event.listen(
        engine, "before_cursor_execute",
        lambda conn, cursor, statement, *rest: is_log_insert(statement) and signal_inside(False),
    )
elif stage == "after_insert":
    event.listen(engine, "release_savepoint", lambda conn, name, ctx: signal_inside(pause=True))
    event.listen(
        engine, "after_cursor_execute",
        lambda conn, cursor, statement, *rest: is_log_insert(statement) and signal_inside(True),
    )
elif stage == "commit":
    event.listen(engine, "commit", lambda conn: signal_inside(pause=False))

with UnitOfWork(manager) as uow:
    killed = uow.sessions.create_session(device_id="DEV-1", session_type="in flight")
    print("SESSION", killed.id, flush=True)
    uow.logs.add_log_batch(batch(killed.id, batch_logs))
    armed.append(True)  # the next savepoint, log INSERT or COMMIT belongs to the batch
    uow.commit()
print("FINISHED", flush=True)
time.sleep(60)
"""


def _seed_device(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="DEV-1", device_type=DeviceType.PHONE))
        uow.commit()


@pytest.mark.parametrize("stage", ["insert", "after_insert", "commit"])
def test_writer_killed_mid_batch_leaves_the_batch_all_or_nothing(
    manager: DatabaseManager, stage: str
) -> None:
    _seed_device(manager)
    url = manager.config.url.render_as_string(hide_password=False)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, stage, str(COMMITTED_LOGS), str(BATCH_LOGS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: dict[str, str] = {}
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            word, _, rest = line.strip().partition(" ")
            lines[word] = rest
            if word in ("INSIDE", "FINISHED"):
                break
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
        assert writer.stderr is not None
        errors = writer.stderr.read()
        writer.stdout.close()  # type: ignore[union-attr]
        writer.stderr.close()
    assert "INSIDE" in lines, errors
    assert writer.returncode == -signal.SIGKILL

    fresh = DatabaseManager(DatabaseConfig(database_url=manager.config.url))
    fresh.initialize()
    try:
        with fresh.engine.connect() as connection:
            if fresh.config.is_sqlite:
                assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            logs_by_session = dict(
                connection.execute(  # type: ignore[arg-type]
                    select(CommLog.session_id, func.count()).group_by(CommLog.session_id)
                ).all()
            )
            sessions = set(connection.execute(select(OTASession.id)).scalars())
    finally:
        fresh.close()
    committed = uuid.UUID(lines["COMMITTED"])
    in_flight = uuid.UUID(lines["SESSION"])
    assert logs_by_session[committed] == COMMITTED_LOGS
    if in_flight in sessions:  # the kill came after COMMIT reached the database
        assert logs_by_session[in_flight] == BATCH_LOGS
    else:
        assert in_flight not in logs_by_session
    if stage == "after_insert":  # killed before COMMIT was even sent
        assert in_flight not in sessions


# -- connections killed from the server side -------------------------------------------

servers_only = pytest.mark.parametrize("backend", ["postgresql", "mysql"])


def _backend_id(manager: DatabaseManager, uow: UnitOfWork) -> int:
    """The server's id for the connection ``uow`` holds."""
    own_id = "SELECT pg_backend_pid()" if manager.config.is_postgresql else "SELECT CONNECTION_ID()"
    return int(uow.session.execute(text(own_id)).scalar_one())


def _kill_backend(manager: DatabaseManager, backend_id: int) -> None:
    """Terminate a server connection by id, from a separate admin connection."""
    admin = create_engine(manager.config.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if manager.config.is_postgresql:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
            else:
                connection.execute(text(f"KILL {backend_id}"))
    finally:
        admin.dispose()


def _kill_from_server(manager: DatabaseManager, uow: UnitOfWork) -> None:
    """Terminate the connection ``uow`` holds, from a separate admin connection."""
    _kill_backend(manager, _backend_id(manager, uow))


@servers_only
@pytest.mark.parametrize("next_step", ["commit", "query", "log batch", "logs read"])
def test_connection_killed_by_the_server_raises_connection_error_and_the_next_unit_works(
    manager: DatabaseManager, next_step: str
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="LOST-1", device_type=DeviceType.PHONE))
        session = uow.sessions.create_session(device_id="LOST-1")
        _kill_from_server(manager, uow)
        with pytest.raises(ConnectionError, match="lost the connection"):
            if next_step == "commit":
                uow.commit()
            elif next_step == "query":
                uow.devices.create(Device(id="LOST-2", device_type=DeviceType.MODEM))
            elif next_step == "log batch":  # the bulk path (COPY on PostgreSQL)
                uow.logs.add_log_batch([(session.id, "command", "00A4")] * 100)
                uow.commit()
            else:  # find_by_session reads on the driver's cursor
                uow.logs.find_by_session(session.id)
    # Same process, same manager: the pool hands out a live connection again.
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0  # the killed unit of work was rolled back
        assert uow.logs.count() == 0
        uow.devices.create(Device(id="AFTER", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["AFTER"]
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@servers_only
def test_rollback_after_the_server_killed_the_connection_succeeds_and_the_unit_goes_on(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="LOST", device_type=DeviceType.PHONE))
        _kill_from_server(manager, uow)
        uow.rollback()  # the server already discarded the transaction: nothing to report
        uow.devices.create(Device(id="KEPT", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["KEPT"]


@servers_only
def test_idle_pooled_connection_killed_by_the_server_is_replaced_transparently(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="FIRST", device_type=DeviceType.PHONE))
        _kill_from_server(manager, uow)  # killed while this unit of work holds it
    with UnitOfWork(manager) as uow:  # the failed close already dropped it from the pool
        uow.devices.create(Device(id="SECOND", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["SECOND"]


@servers_only
def test_a_connection_dropped_while_idle_in_the_pool_is_pinged_and_replaced(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        backend_id = _backend_id(manager, uow)
    # The connection is back in the pool, healthy; now the server drops it.
    _kill_backend(manager, backend_id)
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)  # idle long enough to be pinged on checkout
    with UnitOfWork(manager) as uow:
        assert _backend_id(manager, uow) != backend_id
        uow.devices.create(Device(id="AFTER-IDLE", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["AFTER-IDLE"]
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


# -- maintenance interrupted by an error: the database stays as it was -------------------

OLD = datetime.now(timezone.utc) - timedelta(days=400)


def _rows(manager: DatabaseManager) -> dict[str, list[str]]:
    """Every row of every CardLink table, as text, for "unchanged" comparisons."""
    state = {}
    with manager.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            state[table.name] = sorted(
                repr(tuple(row)) for row in connection.execute(select(table))
            )
    return state


def _seed_old_data(manager: DatabaseManager) -> None:
    """A device, a card, old sessions with logs (one "guarded"), settings."""
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="DEV-1", device_type=DeviceType.PHONE))
        uow.cards.create_with_psk(CardProfile(iccid="8901"), b"0123456789abcdef")
        for kind in ("plain", "guarded", "plain"):
            session = uow.sessions.create_session(device_id="DEV-1", session_type=kind)
            uow.sessions.start_session(session.id, at=OLD)
            uow.logs.add_log_batch(
                [
                    (session.id, "command", f"00A4{n:04X}", None, None, None, 1.0, OLD)
                    for n in range(20)
                ]
            )
        uow.settings.set_value("log_retention_days", 30)
        uow.commit()


def _cli(manager: DatabaseManager, *arguments: str) -> Result:
    from cardlink.database.cli import cli

    url = manager.config.url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--database-url", url, *arguments])


_REFUSE_DELETE = {
    "sqlite": [
        "CREATE TRIGGER refuse_purge BEFORE DELETE ON sessions WHEN old.session_type = 'guarded' "
        "BEGIN SELECT RAISE(ABORT, 'purge refused by trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_purge() RETURNS trigger AS $$ BEGIN "
        "IF OLD.session_type = 'guarded' THEN RAISE EXCEPTION 'purge refused by trigger'; END IF; "
        "RETURN OLD; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_purge BEFORE DELETE ON sessions FOR EACH ROW "
        "EXECUTE FUNCTION refuse_purge()",
    ],
    "mysql": [
        "CREATE TRIGGER refuse_purge BEFORE DELETE ON sessions FOR EACH ROW BEGIN "
        "IF OLD.session_type = 'guarded' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'purge refused by trigger'; END IF; END"
    ],
}
_DROP_REFUSAL = {
    "sqlite": ["DROP TRIGGER IF EXISTS refuse_purge"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS refuse_purge ON sessions",
        "DROP FUNCTION IF EXISTS refuse_purge()",
    ],
    "mysql": ["DROP TRIGGER IF EXISTS refuse_purge"],
}


def test_a_purge_that_fails_half_way_deletes_nothing(manager: DatabaseManager) -> None:
    _seed_old_data(manager)
    backend = manager.config.backend
    with manager.engine.begin() as connection:
        for statement in _REFUSE_DELETE[backend]:
            connection.exec_driver_sql(statement)
    try:
        before = _rows(manager)
        # Logs go first, then the sessions: the second session's DELETE is refused.
        result = _cli(manager, "purge", "--older-than", "30", "--tables", "sessions,logs", "--yes")
        after = _rows(manager)
    finally:
        with manager.engine.begin() as connection:
            for statement in _DROP_REFUSAL[backend]:
                connection.exec_driver_sql(statement)
    assert result.exit_code == 1
    assert "purge refused by trigger" in result.output
    assert after == before


def test_an_import_that_fails_on_its_last_row_leaves_the_database_as_it_was(
    manager: DatabaseManager, tmp_path: Path
) -> None:
    _seed_old_data(manager)
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all("json"))
    for number in range(300):  # many good rows first, all in other tables
        document["tables"]["devices"].append(
            {"id": f"NEW-{number}", "device_type": "modem", "name": f"bulk {number}"}
        )
    document["tables"]["settings"].append(
        {"key": "broken", "value": 1, "created_at": "not a time"}  # refused at the very end
    )
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(document))
    before = _rows(manager)
    result = _cli(manager, "import", "--conflict", "overwrite", str(path))
    assert result.exit_code == 1
    assert "created_at" in result.output
    assert _rows(manager) == before


def test_an_import_refused_by_the_database_itself_leaves_it_as_it_was(
    manager: DatabaseManager, tmp_path: Path
) -> None:
    _seed_old_data(manager)
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all("json"))
    document["tables"]["devices"].append({"id": "NEW-1", "device_type": "modem"})
    document["tables"]["logs"].append(  # a log of a session that exists nowhere: foreign key
        {"session_id": str(uuid.uuid4()), "direction": "command", "timestamp": OLD.isoformat()}
    )
    path = tmp_path / "orphan.json"
    path.write_text(json.dumps(document))
    before = _rows(manager)
    result = _cli(manager, "import", "--conflict", "merge", str(path))
    assert result.exit_code == 1
    assert _rows(manager) == before


def test_init_force_blocked_by_a_foreign_table_drops_nothing(manager: DatabaseManager) -> None:
    _seed_old_data(manager)
    with manager.engine.begin() as connection:
        collation = ""
        if manager.config.is_mysql:  # a foreign key needs the referenced column's collation
            collation = (
                " COLLATE "
                + connection.exec_driver_sql(
                    "SELECT collation_name FROM information_schema.columns WHERE table_schema = "
                    "DATABASE() AND table_name = 'devices' AND column_name = 'id'"
                ).scalar_one()
            )
        connection.exec_driver_sql(
            "CREATE TABLE external_audit (id INTEGER PRIMARY KEY, "
            f"device_id VARCHAR(64){collation}, FOREIGN KEY (device_id) REFERENCES devices (id))"
        )
        connection.exec_driver_sql("INSERT INTO external_audit VALUES (1, 'DEV-1')")
    try:
        before = _rows(manager)
        result = _cli(manager, "init", "--force", "--yes")
        after = _rows(manager)
    finally:
        with manager.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE external_audit")
        forget_schema(manager.config.url.render_as_string(hide_password=False))
    assert result.exit_code == 1, result.output
    assert "external_audit" in result.output
    assert after == before


@pytest.mark.parametrize("backend", ["postgresql"])
def test_init_force_failing_while_creating_keeps_the_old_tables_and_rows(
    manager: DatabaseManager,
) -> None:
    """Drop and create share one transaction (SQLite too; MariaDB commits each DDL)."""
    _seed_old_data(manager)
    with manager.engine.begin() as connection:  # every CREATE TABLE fails, DROPs succeed
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse_create() RETURNS event_trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'create refused by event trigger'; END $$ LANGUAGE plpgsql"
        )
        connection.exec_driver_sql(
            "CREATE EVENT TRIGGER refuse_create ON ddl_command_start "
            "WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION refuse_create()"
        )
    try:
        before = _rows(manager)
        result = _cli(manager, "init", "--force", "--yes")
        after = _rows(manager)
    finally:
        with manager.engine.begin() as connection:
            connection.exec_driver_sql("DROP EVENT TRIGGER refuse_create")
            connection.exec_driver_sql("DROP FUNCTION refuse_create()")
    assert result.exit_code == 1, result.output
    assert "create refused by event trigger" in result.output
    assert after == before
