"""Test results and runs: runs as records, summaries, comparison, history and JUnit XML."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from ..events import EventType
from ..exceptions import NotFoundError, ValidationError
from ..models import TestResult, TestRun, TestStatus
from ..reports.inputs import FlakyTest, TrendPoint
from ..transfer.junit import JUnitCase, Source, read_junit_xml, write_junit_xml
from ..types import to_utc, utcnow
from . import test_history
from .base import BaseRepository, _slice
from .failing_exchanges import failing_exchanges
from .test_run import add_run

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
        attempt: int = 1,
        session_id: uuid.UUID | str | None = None,
        **fields: Any,
    ) -> TestResult:
        """Store one test case's result; ``duration_ms`` defaults to ended - started.

        ``attempt`` counts retries within the run (1 for the first try); ``session_id``
        links the OTA session the test drove. A run not started yet is created. Any
        other column of the model can be given by keyword.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValidationError(f"tests.attempt must be a whole number from 1, got {attempt!r}")
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
            attempt=attempt,
            session_id=session_id,
            **fields,
        )
        return self.create(result)

    def create(self, entity: TestResult) -> TestResult:
        """Store a result; its run is created if this is the run's first result."""
        if isinstance(entity, TestResult):
            self._ensure_run(entity.run_id, entity.started_at)
        return super().create(entity)

    def create_all(self, entities: Sequence[TestResult]) -> list[TestResult]:
        """Store several results in one flush; each run not stored yet is created."""
        stored = super().create_all(entities)
        first_starts: dict[str, datetime | None] = {}
        for result in stored:
            first_starts.setdefault(result.run_id, result.started_at)
        for run_id, started_at in first_starts.items():
            self._ensure_run(run_id, started_at)
        return stored

    # -- runs ----------------------------------------------------------------------

    def start_run(
        self, run_id: str, *, started_at: datetime | None = None, **environment: Any
    ) -> TestRun:
        """Record a run's start and environment (device, card, server_version, revision,
        tags ...); a run that exists already (results came first) gets them merged in."""
        return self._start(run_id, started_at, environment)

    def _start(
        self, run_id: str, started_at: datetime | None, environment: Mapping[str, Any]
    ) -> TestRun:
        run = self._ensure_run(run_id, started_at or utcnow())
        if started_at is not None:
            run.started_at = started_at
        if environment:
            run.environment = {**(run.environment or {}), **environment}
        return run

    def finish_run(self, run_id: str, *, ended_at: datetime | None = None) -> TestRun:
        """Stamp the run's end and count its totals (each test once, by its last attempt)."""
        run = self.get_run(run_id)
        if run is None:
            raise NotFoundError(f"test run {run_id!r} not found")
        self._uow.flush()
        point = test_history.run_totals(self.session, run_id)
        run.ended_at = ended_at or utcnow()
        counts = point.counts if point is not None else None
        run.total = counts.total if counts else 0
        run.passed = counts.passed if counts else 0
        run.failed = counts.failed if counts else 0
        run.skipped = counts.skipped if counts else 0
        run.error = counts.error if counts else 0
        run.duration_ms = point.duration_ms if point is not None else 0
        return run

    def get_run(self, run_id: str) -> TestRun | None:
        """The run record, or ``None``."""
        return self.session.get(TestRun, run_id)

    def previous_run(self, run_id: str) -> str | None:
        """The run started just before ``run_id`` (the report's default baseline)."""
        return test_history.previous_run(self.session, run_id)

    def _ensure_run(self, run_id: str, started_at: datetime | None) -> TestRun:
        if not isinstance(run_id, str) or not run_id.strip() or len(run_id) > 128:
            raise ValidationError(f"run_id must be text of 1 to 128 characters, got {run_id!r}")
        return add_run(self.session, run_id, started_at or utcnow())

    # -- history (computed in SQL) ---------------------------------------------------

    def history(self, suite: str, test_name: str, last: int = 20) -> list[TestResult]:
        """One test's result (last attempt) in each of its ``last`` newest runs, newest first."""
        return test_history.history(self.session, suite, test_name, _positive(last, "last"))

    def flaky(self, last_runs: int = 20) -> list[FlakyTest]:
        """Tests that flipped between pass and fail in the newest ``last_runs`` runs, or
        failed and then passed on a retry within one; with flip count and last flip."""
        return test_history.flaky(self.session, _positive(last_runs, "last_runs"))

    def trend(self, last_runs: int = 30) -> list[TrendPoint]:
        """Counts, pass rate and test time of the newest ``last_runs`` runs, oldest first."""
        return test_history.trend(self.session, _positive(last_runs, "last_runs"))

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
        """The run as JUnit XML (schema-valid): the run's environment in ``<properties>``,
        retries as ``flakyFailure``/``rerunFailure``, and for a failure linked to an OTA
        session its failing exchange (command, SW, meaning) in ``<system-out>``."""
        statement = (
            select(TestResult)
            .where(TestResult.run_id == run_id)
            .order_by(
                TestResult.suite_name, TestResult.test_name, TestResult.attempt, TestResult.id
            )
        )
        results = self._scalars(statement)
        if not results:
            raise NotFoundError(f"test run {run_id!r} has no results")
        linked = {
            result.session_id
            for result in results
            if result.session_id is not None and result.status in FAILING
        }
        exchanges = failing_exchanges(self.session, linked)
        run = self.get_run(run_id)
        cases = []
        for result in results:
            extra = result.test_metadata or {}
            exchange = exchanges.get(result.session_id) if result.session_id else None
            output = exchange.as_text() if exchange and result.status in FAILING else None
            cases.append(
                JUnitCase(
                    suite=result.suite_name,
                    name=result.test_name,
                    classname=result.suite_name,
                    status=result.status,
                    attempt=result.attempt,
                    duration_ms=result.duration_ms,
                    message=result.error_message,
                    details=_text_or_none(extra.get("details")),
                    output=output or _text_or_none(extra.get("output")),
                )
            )
        environment = run.environment if run is not None else None
        return write_junit_xml(cases, name=run_id, properties=environment)

    def import_junit(self, stream: Source, *, run_id: str, name: str | None = None) -> TestRun:
        """Load a JUnit XML file (pytest, Maven Surefire, gotestsum) as run ``run_id``.

        The properties every test shares become the run's environment. The whole file is
        read and checked before anything is written: a malformed file raises one-line
        :class:`ValidationError` and adds nothing; so does a run that has results already.
        """
        cases = read_junit_xml(stream, name=name)
        stored = self.session.scalar(
            select(func.count()).select_from(TestResult).where(TestResult.run_id == run_id)
        )
        if stored:
            raise ValidationError(
                f"test run {run_id!r} already has {stored} results; import under a new --run-id"
            )
        run = self._start(run_id, None, _shared_properties(cases))
        for junit_case in cases:
            extra = {
                key: value
                for key, value in (("details", junit_case.details), ("output", junit_case.output))
                if value
            }
            self.create_result(
                run_id,
                junit_case.classname or junit_case.suite,
                junit_case.name,
                junit_case.status,
                duration_ms=junit_case.duration_ms,
                error_message=junit_case.message,
                attempt=junit_case.attempt,
                metadata=extra or None,
            )
        return run

    def _statuses(self, run_id: str) -> dict[str, TestStatus]:
        statement = select(TestResult.suite_name, TestResult.test_name, TestResult.status).where(
            TestResult.run_id == run_id
        )
        return {
            f"{suite}::{test}": status for suite, test, status in self.session.execute(statement)
        }


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a whole number from 1, got {value!r}")
    return value


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _shared_properties(cases: list[JUnitCase]) -> dict[str, str]:
    """The properties every case carries with the same value (the suite's, in practice)."""
    if not cases:
        return {}
    shared: Mapping[str, str] = cases[0].properties
    common = dict(shared)
    for other in cases[1:]:
        common = {key: value for key, value in common.items() if other.properties.get(key) == value}
    return common


def _aware(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None and value.tzinfo is not None else value
