"""Queries for test results: runs, suites, summaries, run comparison and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from ..events import EventType
from ..exceptions import NotFoundError
from ..models import TestResult, TestStatus
from ..types import to_utc
from .base import BaseRepository, _slice

FAILING = (TestStatus.FAILED, TestStatus.ERROR)


class TestRepository(BaseRepository[TestResult]):
    """Test results grouped by run and suite."""

    __test__ = False  # not a pytest test class
    model = TestResult
    entity_type = "test_result"
    created_event = EventType.TEST_RESULT_CREATED
    updated_event = EventType.TEST_RESULT_UPDATED
    deleted_event = EventType.TEST_RESULT_DELETED

    def create_result(
        self,
        run_id: str,
        suite_name: str,
        test_name: str,
        status: TestStatus | str,
        *,
        device_id: str | None = None,
        card_iccid: str | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        duration_ms: int | None = None,
        error_message: str | None = None,
        assertions: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> TestResult:
        """Store one test case's result; ``duration_ms`` defaults to ended - started.

        Any other column of the model can be given by keyword.
        """
        if duration_ms is None and started_at is not None and ended_at is not None:
            elapsed = to_utc(ended_at) - to_utc(started_at)
            duration_ms = max(0, round(elapsed.total_seconds() * 1000))
        result = TestResult(
            run_id=run_id,
            suite_name=suite_name,
            test_name=test_name,
            status=status,
            device_id=device_id,
            card_iccid=card_iccid,
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=duration_ms,
            error_message=error_message,
            assertions=assertions,
            metadata=metadata,
            **fields,
        )
        return self.create(result)

    def find_by_run(self, run_id: str) -> list[TestResult]:
        """A run's results by suite, then test name."""
        statement = (
            select(TestResult)
            .where(TestResult.run_id == run_id)
            .order_by(TestResult.suite_name, TestResult.test_name, TestResult.id)
        )
        return self._scalars(statement)

    def find_by_suite(
        self, suite_name: str, limit: int | None = None, offset: int = 0
    ) -> list[TestResult]:
        """A suite's results across runs, newest first."""
        statement = (
            select(TestResult)
            .where(TestResult.suite_name == suite_name)
            .order_by(TestResult.started_at.desc(), TestResult.created_at.desc(), TestResult.id)
        )
        return self._scalars(_slice(statement, limit, offset))

    def find_failures(self, run_id: str) -> list[TestResult]:
        """A run's FAILED and ERROR results."""
        statement = (
            select(TestResult)
            .where(TestResult.run_id == run_id, TestResult.status.in_(FAILING))
            .order_by(TestResult.suite_name, TestResult.test_name, TestResult.id)
        )
        return self._scalars(statement)

    def get_run_summary(self, run_id: str) -> dict[str, Any]:
        """Counts per status, success rate (% passed of the tests that ran) and durations."""

        def tally(status: TestStatus) -> Any:
            return func.coalesce(func.sum(case((TestResult.status == status, 1), else_=0)), 0)

        statement = select(
            func.count(),
            tally(TestStatus.PASSED),
            tally(TestStatus.FAILED),
            tally(TestStatus.SKIPPED),
            tally(TestStatus.ERROR),
            func.coalesce(func.sum(TestResult.duration_ms), 0),
            func.min(TestResult.started_at),
            func.max(TestResult.ended_at),
        ).where(TestResult.run_id == run_id)
        row = self.session.execute(statement).one()
        total, passed, failed, skipped, error, duration = (int(value) for value in row[:6])
        ran = total - skipped
        return {
            "run_id": run_id,
            "total": total,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "error": error,
            "success_rate": 100.0 * passed / ran if ran else 0.0,
            "duration_ms": duration,
            "started_at": _aware(row[6]),
            "ended_at": _aware(row[7]),
        }

    def compare_runs(self, baseline_run_id: str, current_run_id: str) -> dict[str, list[str]]:
        """What changed from one run to the next; tests are named ``suite::test``.

        ``new_failures`` fail now and did not before (new tests included), ``fixed`` failed
        before and pass now, ``still_failing`` fail in both.
        """
        before = self._statuses(baseline_run_id)
        after = self._statuses(current_run_id)
        failing_before = {name for name, status in before.items() if status in FAILING}
        failing_after = {name for name, status in after.items() if status in FAILING}
        return {
            "new_failures": sorted(failing_after - failing_before),
            "fixed": sorted(
                name for name in failing_before if after.get(name) is TestStatus.PASSED
            ),
            "still_failing": sorted(failing_before & failing_after),
            "new_tests": sorted(after.keys() - before.keys()),
            "removed_tests": sorted(before.keys() - after.keys()),
        }

    def export_junit_xml(self, run_id: str) -> str:
        """The run as JUnit XML: one ``testsuite`` per suite, times in seconds."""
        results = self.find_by_run(run_id)
        if not results:
            raise NotFoundError(f"test run {run_id!r} has no results")
        root = ET.Element("testsuites", name=run_id)
        suites: dict[str, list[TestResult]] = {}
        for result in results:
            suites.setdefault(result.suite_name, []).append(result)
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        total_time = 0.0
        for suite_name, cases in suites.items():
            counts = {
                "tests": len(cases),
                "failures": sum(result.status is TestStatus.FAILED for result in cases),
                "errors": sum(result.status is TestStatus.ERROR for result in cases),
                "skipped": sum(result.status is TestStatus.SKIPPED for result in cases),
            }
            suite_time = sum((result.duration_ms or 0) for result in cases) / 1000
            started = [result.started_at for result in cases if result.started_at is not None]
            suite = ET.SubElement(root, "testsuite", name=suite_name, time=f"{suite_time:.3f}")
            for key, value in counts.items():
                suite.set(key, str(value))
            if started:
                suite.set(
                    "timestamp", min(started).replace(tzinfo=None).isoformat(timespec="seconds")
                )
            for result in cases:
                element = ET.SubElement(
                    suite,
                    "testcase",
                    classname=suite_name,
                    name=result.test_name,
                    time=f"{(result.duration_ms or 0) / 1000:.3f}",
                )
                message = result.error_message or ""
                if result.status is TestStatus.FAILED:
                    ET.SubElement(element, "failure", message=message).text = message
                elif result.status is TestStatus.ERROR:
                    ET.SubElement(element, "error", message=message).text = message
                elif result.status is TestStatus.SKIPPED:
                    ET.SubElement(element, "skipped", message=message)
            for key, value in counts.items():
                totals[key] += value
            total_time += suite_time
        for key, value in totals.items():
            root.set(key, str(value))
        root.set("time", f"{total_time:.3f}")
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

    def _statuses(self, run_id: str) -> dict[str, TestStatus]:
        statement = select(TestResult.suite_name, TestResult.test_name, TestResult.status).where(
            TestResult.run_id == run_id
        )
        return {
            f"{suite}::{test}": status for suite, test, status in self.session.execute(statement)
        }


def _aware(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None and value.tzinfo is not None else value
