"""Concurrent writers: nothing is lost, counts reconcile, waits are bounded and errors are clear.

SQLite: 4 processes x 2 threads write sessions and log batches into one file;
every writer waits for the write lock (``BEGIN IMMEDIATE`` + ``busy_timeout``,
``DatabaseConfig.sqlite_busy_timeout_ms``, 30 s by default) instead of seeing
"database is locked". Servers: more units of work than ``pool_size +
max_overflow`` wait for a connection and, past ``pool_timeout``, get a
``ConnectionError``; the pool is idle again afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from cardlink.database import (
    CommLog,
    ConnectionError,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    OTASession,
    RetryableError,
    UnitOfWork,
)

PROCESSES = 4
THREADS = 2
WRITE_SECONDS = 6.0
START_DELAY = 4.0  # time for every process to import and connect before writing starts

# Runs in each writer process: THREADS threads commit sessions and log batches until the
# deadline, then print what they committed (and any error that reached them) as JSON.
WRITER = r"""
import json, sys, threading, time, traceback
from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork

url, process, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start, deadline = float(sys.argv[4]), float(sys.argv[5])
manager = DatabaseManager(DatabaseConfig(database_url=url))
manager.initialize()
committed, errors, waits = [], [], [0.0]
time.sleep(max(0.0, start - time.time()))  # every process starts writing at the same moment

def write(thread):
    last_session, iteration = None, 0
    while time.time() < deadline and not errors:
        iteration += 1
        count = 1 + (iteration * 7 + process + thread) % 25
        began = time.monotonic()
        try:
            with UnitOfWork(manager) as uow:
                if last_session is None or iteration % 2:
                    session = uow.sessions.create_session(
                        device_id="DEV-1", session_type=f"p{process}t{thread}"
                    )
                    session_id, created = session.id, True
                else:
                    session_id, created = last_session, False
                batch = [(session_id, "command", f"00A4{n:04X}", "SELECT") for n in range(count)]
                uow.logs.add_log_batch(batch)
                uow.commit()
            committed.append([str(session_id), created, count])
            waits.append(time.monotonic() - began)
            last_session = session_id
        except Exception:
            errors.append(traceback.format_exc())

workers = [threading.Thread(target=write, args=(number,)) for number in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
manager.close()
print(json.dumps({"committed": committed, "errors": errors, "longest": max(waits)}))
"""


def _seed_device(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="DEV-1", device_type=DeviceType.PHONE, name="writer target"))
        uow.commit()


def test_concurrent_sqlite_writers_lose_nothing_and_never_see_database_is_locked(
    tmp_path: Path, encryption_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.create_tables()
    _seed_device(manager)
    start = time.time() + START_DELAY
    deadline = start + WRITE_SECONDS
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                url,
                str(process),
                str(THREADS),
                str(start),
                str(deadline),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for process in range(PROCESSES)
    ]
    reports = []
    for writer in writers:
        out, err = writer.communicate(timeout=START_DELAY + WRITE_SECONDS + 90)
        assert writer.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))

    errors = [error for report in reports for error in report["errors"]]
    assert errors == [], errors[0]
    expected_sessions: set[str] = set()
    expected_logs: dict[str, int] = {}
    for report in reports:
        for session_id, created, count in report["committed"]:
            if created:
                expected_sessions.add(session_id)
            expected_logs[session_id] = expected_logs.get(session_id, 0) + count
    # Every process got the lock (SQLite's busy wait is not a fair queue, but nobody starves
    # past the busy timeout: a unit of work waits at most sqlite_busy_timeout_ms).
    assert all(report["committed"] for report in reports), [len(r["committed"]) for r in reports]
    longest = max(report["longest"] for report in reports)
    assert longest < manager.config.sqlite_busy_timeout_ms / 1000

    with manager.engine.connect() as connection:
        stored_sessions = {str(row[0]) for row in connection.execute(select(OTASession.id))}
        stored_logs = {
            str(session_id): count
            for session_id, count in connection.execute(
                select(CommLog.session_id, func.count()).group_by(CommLog.session_id)
            )
        }
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    manager.close()
    assert stored_sessions == expected_sessions
    assert stored_logs == expected_logs
    assert sum(stored_logs.values()) == sum(expected_logs.values())


def test_sqlite_writer_waits_for_a_held_write_lock_instead_of_failing(
    tmp_path: Path, encryption_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.create_tables()
    other = DatabaseManager(DatabaseConfig(database_url=url))
    holder = UnitOfWork(other)
    holder.devices.create(Device(id="HOLDER", device_type=DeviceType.MODEM))  # takes the write lock
    released = threading.Timer(1.0, holder.commit)
    released.start()
    started = time.monotonic()
    try:
        with UnitOfWork(manager) as uow:
            uow.devices.create(Device(id="WAITER", device_type=DeviceType.PHONE))
            uow.commit()
        waited = time.monotonic() - started
    finally:
        released.join()
        holder.close()
        other.close()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 2
    manager.close()
    assert 0.5 <= waited < 10


def test_sqlite_writer_past_the_busy_timeout_gets_a_clear_retryable_error(
    tmp_path: Path, encryption_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    manager = DatabaseManager(DatabaseConfig(database_url=url, sqlite_busy_timeout_ms=300))
    manager.create_tables()
    other = DatabaseManager(DatabaseConfig(database_url=url))
    holder = UnitOfWork(other)
    holder.devices.create(Device(id="HOLDER", device_type=DeviceType.MODEM))
    started = time.monotonic()
    try:
        with UnitOfWork(manager) as uow, pytest.raises(RetryableError, match="locked"):
            uow.devices.create(Device(id="WAITER", device_type=DeviceType.PHONE))
        elapsed = time.monotonic() - started
    finally:
        holder.close()
        other.close()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0
    manager.close()
    assert elapsed < 10


# -- servers: pool exhaustion ---------------------------------------------------------


servers_only = pytest.mark.parametrize("backend", ["postgresql", "mysql"])


def _small_pool_manager(manager: DatabaseManager, *, pool_timeout: float) -> DatabaseManager:
    """A second manager on the same database with a pool of 2 + 1 overflow."""
    config = DatabaseConfig(
        database_url=manager.config.url, pool_size=2, max_overflow=1, pool_timeout=pool_timeout
    )
    manager = DatabaseManager(config)
    manager.initialize()
    return manager


def _hold_connection(uow: UnitOfWork) -> None:
    uow.session.execute(text("SELECT 1"))  # the session now holds a pooled connection


@servers_only
def test_units_of_work_beyond_the_pool_wait_for_a_free_connection(manager: DatabaseManager) -> None:
    small = _small_pool_manager(manager, pool_timeout=20)
    capacity = small.config.pool_size + small.config.max_overflow
    done: list[str] = []
    failures: list[BaseException] = []

    def work(number: int) -> None:
        try:
            with UnitOfWork(small) as uow:
                uow.devices.create(Device(id=f"POOL-{number}", device_type=DeviceType.PHONE))
                time.sleep(0.3)  # keep the connection busy so the extra units must queue
                uow.commit()
            done.append(f"POOL-{number}")
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(capacity * 2 + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(done) == capacity * 2 + 1
    with UnitOfWork(small) as uow:
        assert uow.devices.count() == capacity * 2 + 1
    assert small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    small.close()


@servers_only
def test_a_unit_of_work_past_pool_timeout_gets_connection_error_and_nothing_leaks(
    manager: DatabaseManager,
) -> None:
    small = _small_pool_manager(manager, pool_timeout=1)
    capacity = small.config.pool_size + small.config.max_overflow
    holders = [UnitOfWork(small) for _ in range(capacity)]
    try:
        for holder in holders:
            _hold_connection(holder)
        assert small.engine.pool.checkedout() == capacity  # type: ignore[attr-defined]
        started = time.monotonic()
        with UnitOfWork(small) as extra:
            with pytest.raises(ConnectionError, match=r"timed out|timeout") as raised:
                extra.devices.count()
            elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 10
        assert "pool" in str(raised.value)
    finally:
        for holder in holders:
            holder.close()
    assert small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with UnitOfWork(small) as uow:  # the pool serves again once connections come back
        uow.devices.create(Device(id="AFTER", device_type=DeviceType.PHONE))
        uow.commit()
    assert small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    small.close()


@servers_only
def test_a_crowd_beyond_the_pool_splits_into_finished_and_timed_out_and_nothing_leaks(
    manager: DatabaseManager,
) -> None:
    small = _small_pool_manager(manager, pool_timeout=0.5)
    capacity = small.config.pool_size + small.config.max_overflow
    outcomes: list[str] = []
    holding = threading.Barrier(capacity + 1)

    def work(number: int) -> None:
        try:
            with UnitOfWork(small) as uow:
                uow.devices.create(Device(id=f"CROWD-{number}", device_type=DeviceType.PHONE))
                holding.wait(timeout=10)  # the pool is full from here on
                time.sleep(1.5)  # far longer than pool_timeout
                uow.commit()
            outcomes.append("committed")
        except ConnectionError:
            outcomes.append("timed out")
        except BaseException as error:  # anything else fails the test below
            outcomes.append(f"{type(error).__name__}: {error}")

    first = [threading.Thread(target=work, args=(number,)) for number in range(capacity)]
    for thread in first:
        thread.start()
    holding.wait(timeout=10)
    extra = [threading.Thread(target=work, args=(capacity + n,)) for n in range(capacity)]
    for thread in extra:
        thread.start()
    for thread in first + extra:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in first + extra)  # no hang
    assert sorted(outcomes) == ["committed"] * capacity + ["timed out"] * capacity
    assert small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with UnitOfWork(small) as uow:
        assert uow.devices.count() == capacity
    small.close()
