"""Faults: a writer killed mid-batch, a connection killed by the server, interrupted maintenance.

Whatever happens to a writer, a transaction is all-or-nothing: after a SIGKILL
the database opens, SQLite's ``integrity_check`` says ok, and the batch in
flight is entirely present or entirely absent. A connection killed from the
server side surfaces as ``ConnectionError``; the unit of work is rolled back
and the next one works in the same process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from cardlink.database import (
    CommLog,
    ConnectionError,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    OTASession,
    UnitOfWork,
)

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


def _kill_from_server(manager: DatabaseManager, uow: UnitOfWork) -> None:
    """Terminate the connection ``uow`` holds, from a separate admin connection."""
    is_postgresql = manager.config.is_postgresql
    own_id = "SELECT pg_backend_pid()" if is_postgresql else "SELECT CONNECTION_ID()"
    backend_id = int(uow.session.execute(text(own_id)).scalar_one())
    admin = create_engine(manager.config.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if is_postgresql:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_id})
            else:
                connection.execute(text(f"KILL {backend_id}"))
    finally:
        admin.dispose()


@servers_only
@pytest.mark.parametrize("next_step", ["commit", "query"])
def test_connection_killed_by_the_server_raises_connection_error_and_the_next_unit_works(
    manager: DatabaseManager, next_step: str
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="LOST-1", device_type=DeviceType.PHONE))
        _kill_from_server(manager, uow)
        with pytest.raises(ConnectionError, match="lost the connection"):
            if next_step == "commit":
                uow.commit()
            else:
                uow.devices.create(Device(id="LOST-2", device_type=DeviceType.MODEM))
    # Same process, same manager: the pool hands out a live connection again.
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0  # the killed unit of work was rolled back
        uow.devices.create(Device(id="AFTER", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["AFTER"]
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@servers_only
def test_idle_pooled_connection_killed_by_the_server_is_replaced_transparently(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="FIRST", device_type=DeviceType.PHONE))
        _kill_from_server(manager, uow)  # killed after use; the pool keeps the dead connection
    with UnitOfWork(manager) as uow:  # pool_pre_ping notices and reconnects
        uow.devices.create(Device(id="SECOND", device_type=DeviceType.PHONE))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [device.id for device in uow.devices.get_all()] == ["SECOND"]
