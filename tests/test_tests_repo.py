"""TestRepository: results by run and suite, run summaries, run comparison and JUnit XML."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import junitparser
import pytest

from cardlink.database import (
    DatabaseManager,
    NotFoundError,
    TestStatus,
    UnitOfWork,
)

T0 = datetime(2024, 11, 29, 10, 0, tzinfo=timezone.utc)


def record(
    manager: DatabaseManager, run_id: str, results: dict[str, TestStatus], **extra: object
) -> None:
    """Store ``suite::test -> status`` results of one run, one second each."""
    with UnitOfWork(manager) as uow:
        for n, (name, status) in enumerate(results.items()):
            suite, _, test = name.partition("::")
            uow.tests.create_result(
                run_id=run_id,
                suite_name=suite,
                test_name=test,
                status=status,
                started_at=T0 + timedelta(seconds=n),
                ended_at=T0 + timedelta(seconds=n + 1),
                error_message="boom" if status in (TestStatus.FAILED, TestStatus.ERROR) else None,
                **extra,  # type: ignore[arg-type]
            )
        uow.commit()


RUN_1 = {
    "ota::test_connect": TestStatus.PASSED,
    "ota::test_download": TestStatus.FAILED,
    "ota::test_delete": TestStatus.ERROR,
    "psk::test_identity": TestStatus.SKIPPED,
    "psk::test_old": TestStatus.PASSED,
}
RUN_2 = {
    "ota::test_connect": TestStatus.FAILED,
    "ota::test_download": TestStatus.PASSED,
    "ota::test_delete": TestStatus.FAILED,
    "psk::test_identity": TestStatus.PASSED,
    "psk::test_new": TestStatus.ERROR,
}


def test_create_result_computes_the_duration_from_start_and_end(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        result = uow.tests.create_result(
            run_id="r",
            suite_name="s",
            test_name="t",
            status="passed",
            started_at=T0,
            ended_at=T0 + timedelta(milliseconds=1500),
            assertions={"connected": True},
            metadata={"env": "staging"},
        )
        explicit = uow.tests.create_result("r", "s", "u", TestStatus.FAILED, duration_ms=7)
        uow.commit()
    assert result.duration_ms == 1500 and explicit.duration_ms == 7
    with UnitOfWork(manager) as uow:
        stored = uow.tests.get_by_id(result.id)
        assert stored.status is TestStatus.PASSED and stored.metadata == {"env": "staging"}


def test_find_by_run_suite_and_failures(manager: DatabaseManager) -> None:
    record(manager, "run_1", RUN_1)
    record(manager, "run_2", RUN_2)
    with UnitOfWork(manager) as uow:
        assert [r.test_name for r in uow.tests.find_by_run("run_1")] == [
            "test_connect",
            "test_delete",
            "test_download",
            "test_identity",
            "test_old",
        ]
        suite = uow.tests.find_by_suite("psk", limit=2)
        assert len(suite) == 2 and all(r.suite_name == "psk" for r in suite)
        assert suite[0].started_at >= suite[1].started_at  # newest first
        assert len(uow.tests.find_by_suite("psk", limit=50)) == 4
        assert [(r.test_name, r.status) for r in uow.tests.find_failures("run_1")] == [
            ("test_delete", TestStatus.ERROR),
            ("test_download", TestStatus.FAILED),
        ]
        assert uow.tests.find_by_run("nothing") == []


def test_run_summary_counts_each_status_and_rates_passes_among_tests_that_ran(
    manager: DatabaseManager,
) -> None:
    record(manager, "run_1", RUN_1)
    with UnitOfWork(manager) as uow:
        summary = uow.tests.get_run_summary("run_1")
    assert {k: summary[k] for k in ("total", "passed", "failed", "skipped", "error")} == {
        "total": 5,
        "passed": 2,
        "failed": 1,
        "skipped": 1,
        "error": 1,
    }
    assert summary["success_rate"] == pytest.approx(50.0)  # 2 passed of the 4 that ran
    assert summary["duration_ms"] == 5000
    assert summary["started_at"] == T0 and summary["ended_at"] == T0 + timedelta(seconds=5)


def test_run_summary_of_an_unknown_run_is_all_zero(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        summary = uow.tests.get_run_summary("nothing")
    assert (summary["total"], summary["passed"], summary["success_rate"]) == (0, 0, 0.0)
    assert f"{summary['success_rate']:.1f}%" == "0.0%"


def test_compare_runs_names_regressions_fixes_and_changes(manager: DatabaseManager) -> None:
    record(manager, "run_1", RUN_1)
    record(manager, "run_2", RUN_2)
    with UnitOfWork(manager) as uow:
        comparison = uow.tests.compare_runs("run_1", "run_2")
    assert comparison == {
        "new_failures": ["ota::test_connect", "psk::test_new"],
        "fixed": ["ota::test_download"],
        "still_failing": ["ota::test_delete"],
        "new_tests": ["psk::test_new"],
        "removed_tests": ["psk::test_old"],
    }


def test_export_junit_xml_is_read_by_a_junit_consumer(
    manager: DatabaseManager, tmp_path: Path
) -> None:
    record(manager, "run_1", RUN_1)
    with UnitOfWork(manager) as uow:
        document = uow.tests.export_junit_xml("run_1")
        with pytest.raises(NotFoundError, match="nothing"):
            uow.tests.export_junit_xml("nothing")
    path = tmp_path / "results.xml"
    path.write_text(document)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"ota", "psk"}
    ota = suites["ota"]
    assert (ota.tests, ota.failures, ota.errors, ota.skipped, ota.time) == (3, 1, 1, 0, 3.0)
    cases = {case.name: case for case in ota}
    assert cases["test_connect"].is_passed and cases["test_connect"].time == 1.0
    [failure] = cases["test_download"].result
    assert isinstance(failure, junitparser.Failure) and failure.message == "boom"
    [error] = cases["test_delete"].result
    assert isinstance(error, junitparser.Error)
    [skipped] = next(case for case in suites["psk"] if case.name == "test_identity").result
    assert isinstance(skipped, junitparser.Skipped)
    assert cases["test_connect"].classname == "ota"
