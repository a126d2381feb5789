"""Every path that writes results gives their run its row, and purging results takes
the runs it empties: on every backend."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete

from cardlink.database import (
    DatabaseManager,
    DataExporter,
    DataImporter,
    TestResult,
    TestRun,
    TestStatus,
    UnitOfWork,
)
from cardlink.database.types import utcnow
from test_races import race

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)
P, F = TestStatus.PASSED, TestStatus.FAILED


def _result(
    run_id: str, name: str, hours: int = 0, *, started_at: datetime | None = None
) -> TestResult:
    return TestResult(
        run_id=run_id,
        suite_name="ota",
        test_name=name,
        status=P,
        started_at=started_at or T0 + timedelta(hours=hours),
    )


def _runs(manager: DatabaseManager) -> dict[str, datetime | None]:
    with UnitOfWork(manager) as uow:
        return {run.run_id: run.started_at for run in uow.test_runs.get_all()}


def test_a_batch_of_results_creates_the_runs_it_names(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.tests.create_all(
            [_result("batch-1", "a", 2), _result("batch-1", "b", 3), _result("batch-2", "a", 5)]
        )
        uow.commit()
    assert _runs(manager) == {
        "batch-1": T0 + timedelta(hours=2),
        "batch-2": T0 + timedelta(hours=5),
    }
    with UnitOfWork(manager) as uow:
        assert [point.run_id for point in uow.tests.trend()] == ["batch-1", "batch-2"]


def test_an_imported_document_of_results_alone_gets_their_runs(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        for hours, run_id in ((1, "nightly-1"), (2, "nightly-1"), (30, "nightly-2")):
            uow.tests.create(_result(run_id, f"t{hours}", hours))
        uow.commit()
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_selective(["tests"])
        uow.session.execute(delete(TestResult))
        uow.session.execute(delete(TestRun))
        uow.commit()

    with UnitOfWork(manager) as uow:  # a dry run leaves nothing behind, runs included
        DataImporter(uow).import_data(document, dry_run=True)
        uow.commit()
    assert _runs(manager) == {}
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document)
        uow.commit()
    assert _runs(manager) == {
        "nightly-1": T0 + timedelta(hours=1),
        "nightly-2": T0 + timedelta(hours=30),
    }
    with UnitOfWork(manager) as uow:
        assert uow.tests.previous_run("nightly-2") == "nightly-1"


def test_a_junit_import_creates_its_run(manager: DatabaseManager) -> None:
    xml = (
        b'<testsuite name="ota" tests="2"><testcase classname="ota" name="a" time="0.5"/>'
        b'<testcase classname="ota" name="b"><failure message="6A80"/></testcase></testsuite>'
    )
    with UnitOfWork(manager) as uow:
        uow.tests.import_junit(io.BytesIO(xml), run_id="junit-1")
        uow.commit()
    assert list(_runs(manager)) == ["junit-1"]
    with UnitOfWork(manager) as uow:
        assert uow.tests.trend()[0].counts.failed == 1


def test_purging_results_takes_the_runs_it_empties_and_keeps_the_others(
    manager: DatabaseManager,
) -> None:
    now = utcnow()
    with UnitOfWork(manager) as uow:
        uow.tests.start_run("old", started_at=now - timedelta(days=60))
        uow.tests.create(_result("old", "a", started_at=now - timedelta(days=60)))
        uow.tests.start_run("mixed", started_at=now - timedelta(days=45))
        uow.tests.create(_result("mixed", "a", started_at=now - timedelta(days=45)))
        uow.tests.create(_result("mixed", "b", started_at=now - timedelta(days=1)))
        uow.tests.start_run("starting", started_at=now - timedelta(hours=1))  # no results yet
        uow.commit()

    plan = manager.purge(older_than=timedelta(days=30), tables=["tests"], dry_run=True)
    assert plan.counts == {"tests": 2, "test_runs": 1}
    assert set(_runs(manager)) == {"old", "mixed", "starting"}
    done = manager.purge(older_than=timedelta(days=30), tables=["tests"])
    assert done.counts == {"tests": 2, "test_runs": 1}
    assert set(_runs(manager)) == {"mixed", "starting"}
    with UnitOfWork(manager) as uow:
        assert [result.test_name for result in uow.tests.find_by_run("mixed")] == ["b"]


def test_two_connections_writing_the_first_results_of_a_new_run_both_succeed(
    manager: DatabaseManager,
) -> None:
    def first(uow: UnitOfWork) -> None:
        uow.tests.create_result("race-1", "ota", "first", F)
        uow.flush()  # the run's row is written; the second now waits on it (or the lock)

    error = race(
        manager,
        first,
        lambda uow: uow.tests.create_result("race-1", "ota", "second", P),
    )
    assert error is None
    assert list(_runs(manager)) == ["race-1"]
    with UnitOfWork(manager) as uow:
        assert sorted(r.test_name for r in uow.tests.find_by_run("race-1")) == ["first", "second"]
