"""Errors are classified by cause (SQLSTATE, errno, SQLite result code), the same on every backend.

A database whose schema is behind the code raises ``SchemaOutOfDateError`` saying to
migrate; two transactions that deadlock give the loser a ``RetryableError``, and the
unit of work succeeds when run again. A killed connection staying ``ConnectionError``
is shown by ``test_faults.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Table, inspect, text

from cardlink.database import (
    Base,
    CommDirection,
    CommLog,
    ConnectionError,
    DatabaseConfig,
    DatabaseError,
    DatabaseManager,
    Device,
    DeviceType,
    RetryableError,
    SchemaOutOfDateError,
    TestResult,
    UnitOfWork,
    downgrade,
    run_migrations,
)
from cardlink.database.cli import cli
from cardlink.database.exceptions import SCHEMA_OUT_OF_DATE
from conftest import forget_schema
from revisions import REVISIONS
from test_every_column import repository

_LOGS = CommLog.__table__
_TEST_RESULTS = TestResult.__table__
assert isinstance(_LOGS, Table) and isinstance(_TEST_RESULTS, Table)


def _manager_one_step_behind(url: str, *, drop: str) -> DatabaseManager:
    """A manager on a database at head, then with one model column or table taken away.

    Stands for a database one revision behind the code: the code has the column (or
    table), the database does not.
    """
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.create_tables()
    with manager.engine.begin() as connection:
        if drop == "column":
            column = _LOGS.c.status_message
            connection.execute(text(f"ALTER TABLE {_LOGS.name} DROP COLUMN {column.name}"))
        else:
            _TEST_RESULTS.drop(connection)
    forget_schema(url)
    return manager


def _expect_schema_out_of_date(uow: UnitOfWork, call: Callable[[], object]) -> None:
    with pytest.raises(SchemaOutOfDateError) as caught:
        call()
    assert str(caught.value) == SCHEMA_OUT_OF_DATE
    assert "run `cardlink-db migrate`" in SCHEMA_OUT_OF_DATE
    assert not isinstance(caught.value, ConnectionError)
    uow.rollback()


def test_a_missing_column_is_schema_out_of_date_with_the_same_message_on_every_backend(
    empty_database_url: str, encryption_key: str
) -> None:
    manager = _manager_one_step_behind(empty_database_url, drop="column")
    try:
        with UnitOfWork(manager) as uow:
            uow.devices.create(Device(id="BEHIND", device_type=DeviceType.PHONE))
            session = uow.sessions.create_session(device_id="BEHIND")
            uow.commit()
            _expect_schema_out_of_date(uow, lambda: uow.logs.find_by_session(session.id))
            _expect_schema_out_of_date(
                uow,
                lambda: (
                    uow.logs.add_log(session.id, CommDirection.COMMAND, "00A40400"),
                    uow.commit(),
                ),
            )
            # The unit of work goes on after a rollback: the other tables are fine.
            assert uow.devices.get_by_id("BEHIND").device_type is DeviceType.PHONE
    finally:
        manager.close()


def test_a_missing_table_is_schema_out_of_date_with_the_same_message_on_every_backend(
    empty_database_url: str, encryption_key: str
) -> None:
    manager = _manager_one_step_behind(empty_database_url, drop="table")
    try:
        with UnitOfWork(manager) as uow:
            _expect_schema_out_of_date(uow, lambda: uow.tests.get_run_summary("run-1"))
            _expect_schema_out_of_date(uow, uow.tests.count)
    finally:
        manager.close()


def _tables_behind_the_models(manager: DatabaseManager) -> list[str]:
    """The model tables that the database lacks, or lacks a column of."""
    with manager.engine.connect() as connection:
        inspector = inspect(connection)
        stored = {
            name: {column["name"] for column in inspector.get_columns(name)}
            for name in inspector.get_table_names()
        }
    return sorted(
        name
        for name, table in Base.metadata.tables.items()
        if name not in stored or set(table.columns.keys()) - stored[name]
    )


@pytest.mark.skipif(len(REVISIONS) < 2, reason="only one revision: none to be behind")
def test_a_database_at_an_older_revision_is_schema_out_of_date(
    empty_database_url: str, encryption_key: str
) -> None:
    """The real thing: the newest older revision that lacks a column, read with today's models."""
    forget_schema(empty_database_url)
    manager = DatabaseManager(DatabaseConfig(database_url=empty_database_url))
    try:
        run_migrations(manager=manager)
        for revision in reversed(REVISIONS[:-1]):
            downgrade(revision=revision, manager=manager)
            behind = _tables_behind_the_models(manager)
            if behind:
                break
        else:
            pytest.skip("no older revision lacks a table or column, only types or constraints")
        with UnitOfWork(manager) as uow:
            for name in behind:
                _expect_schema_out_of_date(uow, repository(uow, name).get_all)
    finally:
        manager.close()


def test_the_cli_prints_the_migrate_hint_not_a_server_hint(
    empty_database_url: str, encryption_key: str
) -> None:
    _manager_one_step_behind(empty_database_url, drop="column").close()
    result = CliRunner().invoke(cli, ["--database-url", empty_database_url, "export"])
    assert result.exit_code != 0
    assert result.stderr.strip() == f"Error: {SCHEMA_OUT_OF_DATE}"
    assert "server running" not in result.stderr


def _rename_device(
    manager: DatabaseManager, first: str, second: str, meet: threading.Barrier
) -> None:
    """Rename ``first`` then ``second`` in one unit of work, meeting the other thread between."""
    with UnitOfWork(manager) as uow:
        uow.devices.get_by_id(first).name = f"by {first}-first"
        uow.flush()
        meet.wait(timeout=10)
        uow.devices.get_by_id(second).name = f"by {first}-first"
        uow.flush()
        uow.commit()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"], indirect=True)
def test_a_real_deadlock_is_a_retryable_error_and_running_the_unit_again_succeeds(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="A", device_type=DeviceType.PHONE))
        uow.devices.create(Device(id="B", device_type=DeviceType.MODEM))
        uow.commit()
    meet = threading.Barrier(2)
    outcomes: dict[str, BaseException | None] = {}

    def run(first: str, second: str) -> None:
        try:
            _rename_device(manager, first, second, meet)
            outcomes[first] = None
        except BaseException as error:  # reported to the test thread below
            outcomes[first] = error

    threads = [
        threading.Thread(target=run, args=("A", "B")),
        threading.Thread(target=run, args=("B", "A")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    failures = {name: error for name, error in outcomes.items() if error is not None}
    assert len(outcomes) == 2 and len(failures) == 1, outcomes
    (loser, error), *_ = failures.items()
    assert isinstance(error, RetryableError), repr(error)
    assert isinstance(error, DatabaseError) and not isinstance(error, ConnectionError)
    assert "run it again" in str(error)

    # Run the loser's unit of work again: it goes through now.
    _rename_device(manager, loser, "B" if loser == "A" else "A", threading.Barrier(1))
    with UnitOfWork(manager) as uow:
        names = {device.id: device.name for device in uow.devices.get_all()}
    assert names == {"A": f"by {loser}-first", "B": f"by {loser}-first"}
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
