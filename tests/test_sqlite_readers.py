"""SQLite: a reader never blocks a writer.

A unit of work that only reads takes no write lock, so in WAL mode a read left open
(a dashboard, an export, a REPL) never delays a writer in another thread or process.
A unit of work that reads and then writes takes the write lock before its first
write and never fails with "database is locked" on the way.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cardlink.database import (
    DatabaseConfig,
    DatabaseManager,
    DataExporter,
    Device,
    DeviceType,
    OTASession,
    UnitOfWork,
)

# Short on purpose: on today's main a writer waiting for a reader's lock fails after it.
BUSY_TIMEOUT_MS = 2000


def _managers(tmp_path: Path) -> tuple[DatabaseManager, DatabaseManager]:
    url = f"sqlite:///{tmp_path / 'readers.db'}"
    config = DatabaseConfig(database_url=url, sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS)
    reader = DatabaseManager(config)
    reader.create_tables()
    writer = DatabaseManager(config)
    writer.initialize()
    return reader, writer


def _add_device(manager: DatabaseManager, device_id: str) -> float:
    """Create one device in its own unit of work; returns how long the commit took."""
    started = time.monotonic()
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id=device_id, device_type=DeviceType.PHONE))
        uow.commit()
    return time.monotonic() - started


def _seed(manager: DatabaseManager) -> Any:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="SEED", device_type=DeviceType.PHONE))
        session = uow.sessions.create_session(device_id="SEED")
        uow.sessions.start_session(session.id)
        uow.logs.add_log(session.id, "command", "00A40000")
        uow.settings.set_value("seeded", True)
        uow.commit()
        return session.id


READS: dict[str, Callable[[UnitOfWork, Any], Any]] = {
    "devices.get_all": lambda uow, sid: uow.devices.get_all(),
    "devices.search": lambda uow, sid: uow.devices.search("S"),
    "cards.get_all": lambda uow, sid: uow.cards.get_all(),
    "sessions.get_by_id": lambda uow, sid: uow.sessions.get_by_id(sid),
    "sessions.get_statistics": lambda uow, sid: uow.sessions.get_statistics(),
    "sessions.find_active": lambda uow, sid: uow.sessions.find_active(),
    "logs.find_by_session": lambda uow, sid: uow.logs.find_by_session(sid),
    "tests.get_all": lambda uow, sid: uow.tests.get_all(),
    "settings.get_all_settings": lambda uow, sid: uow.settings.get_all_settings(),
    "settings.export_yaml": lambda uow, sid: uow.settings.export_yaml(),
    "export": lambda uow, sid: DataExporter(uow).write(io.StringIO()),
    "count": lambda uow, sid: uow.session.execute(text("SELECT count(*) FROM devices")).all(),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_read_left_open_does_not_block_a_writer(
    tmp_path: Path, encryption_key: str, read: str
) -> None:
    reader, writer = _managers(tmp_path)
    session_id = _seed(reader)
    try:
        with UnitOfWork(reader) as uow:
            READS[read](uow, session_id)  # the unit of work stays open, its read in progress
            waited = _add_device(writer, "WRITER")
    finally:
        reader.close()
        writer.close()
    assert waited < BUSY_TIMEOUT_MS / 1000 / 2


def test_a_read_left_open_in_another_thread_does_not_block_devices_create(
    tmp_path: Path, encryption_key: str
) -> None:
    reader, writer = _managers(tmp_path)
    opened, done = threading.Event(), threading.Event()

    def hold_a_read() -> None:
        with UnitOfWork(reader) as uow:
            uow.devices.get_all()
            opened.set()
            done.wait(10)

    holder = threading.Thread(target=hold_a_read)
    holder.start()
    try:
        assert opened.wait(10)
        waited = _add_device(writer, "WRITER")
    finally:
        done.set()
        holder.join()
        reader.close()
        writer.close()
    assert waited < BUSY_TIMEOUT_MS / 1000 / 2


def test_a_unit_of_work_that_read_before_another_writer_committed_can_still_write(
    tmp_path: Path, encryption_key: str
) -> None:
    reader, writer = _managers(tmp_path)
    session_id = _seed(reader)
    try:
        with UnitOfWork(reader) as uow:
            assert uow.devices.count() == 1  # a read snapshot is open
            _add_device(writer, "OTHER")  # another writer commits meanwhile
            uow.devices.create(Device(id="MINE", device_type=DeviceType.MODEM))
            uow.logs.add_log(session_id, "response", status_word="9000")
            uow.sessions.complete_session(session_id)
            uow.commit()
        with UnitOfWork(writer) as uow:
            assert {device.id for device in uow.devices.get_all()} == {"SEED", "OTHER", "MINE"}
            assert uow.sessions.get_by_id(session_id).status.value == "completed"
    finally:
        reader.close()
        writer.close()


def test_a_write_unit_of_work_nested_inside_an_open_read_one_in_the_same_thread_works(
    tmp_path: Path, encryption_key: str
) -> None:
    manager, other = _managers(tmp_path)
    other.close()
    session_id = _seed(manager)
    try:
        with UnitOfWork(manager) as outer:
            found = outer.sessions.get_by_id(session_id)
            with UnitOfWork(manager) as inner:
                inner.logs.add_log(found.id, "command", "80F20000")
                inner.commit()
            outer.devices.create(Device(id="AFTER", device_type=DeviceType.PHONE))
            outer.commit()
        with UnitOfWork(manager) as uow:
            assert len(uow.logs.find_by_session(session_id)) == 2
            assert uow.devices.find_by_id("AFTER") is not None
    finally:
        manager.close()


# -- another process writes while a read is held open and a large export runs -----------

EXPORT_ROWS = 200_000
HOLD_SECONDS = 5.0

# Runs in its own process: add_log + commit, one log per unit of work, until the deadline;
# prints each commit's duration and the logs it committed as JSON.
LOG_WRITER = r"""
import json, sys, time
from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork

url, session_id, start, deadline = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
manager = DatabaseManager(DatabaseConfig(database_url=url))
manager.initialize()
with UnitOfWork(manager) as uow:  # warm up: connect and compile before timing
    uow.sessions.get_by_id(session_id)
time.sleep(max(0.0, start - time.time()))
durations, written = [], []
number = 0
while time.time() < deadline:
    number += 1
    began = time.perf_counter()
    with UnitOfWork(manager) as uow:
        uow.logs.add_log(session_id, "command", f"{number:08X}")
        uow.commit()
    durations.append(time.perf_counter() - began)
    written.append(f"{number:08X}")
    time.sleep(0.005)
manager.close()
print(json.dumps({"durations": durations, "written": written}))
"""


def _fill(manager: DatabaseManager, session_id: Any) -> None:
    batch = [(session_id, "response", f"{n:06X}9000", "READ") for n in range(10_000)]
    for _ in range(EXPORT_ROWS // len(batch)):
        with UnitOfWork(manager) as uow:
            uow.logs.add_log_batch(batch)
            uow.commit()


def test_another_process_add_log_commits_fast_beside_a_held_read_and_a_200k_row_export(
    tmp_path: Path, encryption_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'busy_reader.db'}"
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.create_tables()
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="DEV", device_type=DeviceType.PHONE))
        uow.commit()
        session = OTASession(device_id="DEV")
        uow.sessions.create(session)
        uow.commit()
        session_id = session.id
    _fill(manager, session_id)

    start = time.time() + 3.0  # the writer process imports and connects meanwhile
    deadline = start + HOLD_SECONDS
    writer = subprocess.Popen(
        [sys.executable, "-c", LOG_WRITER, url, str(session_id), str(start), str(deadline)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exported: dict[str, int] = {}

    def export() -> None:
        with UnitOfWork(manager) as uow:
            exported.update(DataExporter(uow).write(io.StringIO(), tables=["logs"]))

    try:
        time.sleep(max(0.0, start - time.time()))
        with UnitOfWork(manager) as held:
            held.sessions.get_by_id(session_id)  # a read held open for HOLD_SECONDS
            exporter = threading.Thread(target=export)
            exporter.start()
            time.sleep(HOLD_SECONDS)
            exporter.join(120)
        output, errors = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, errors
    report = json.loads(output)
    durations = sorted(report["durations"])
    p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    print(
        f"add_log commits: {len(durations)}, p99 {p99 * 1e3:.1f} ms, "
        f"max {durations[-1] * 1e3:.1f} ms"
    )
    assert exported["logs"] >= EXPORT_ROWS
    assert len(durations) >= 50
    assert p99 < 0.100
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
        stored = {log.raw_data for log in logs if log.direction.value == "command"}
    manager.close()
    assert set(report["written"]) <= stored and len(report["written"]) == len(stored)


@pytest.mark.parametrize("command", [["status"], ["stats"], ["export"], ["stats", "--json"]])
def test_read_only_cli_commands_run_while_a_writer_holds_the_write_lock(
    tmp_path: Path, encryption_key: str, command: list[str]
) -> None:
    from test_cli import invoke

    reader, writer = _managers(tmp_path)
    reader.close()
    url = f"sqlite:///{tmp_path / 'readers.db'}"
    holder = UnitOfWork(writer)
    holder.devices.create(Device(id="UNCOMMITTED", device_type=DeviceType.PHONE))  # write lock
    try:
        started = time.monotonic()
        result = invoke(url, *command, ok=False)
        took = time.monotonic() - started
    finally:
        holder.close()
        writer.close()
    assert result.exit_code == 0, result.output
    assert "UNCOMMITTED" not in result.output
    assert took < 10
