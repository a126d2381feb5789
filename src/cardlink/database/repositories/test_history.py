"""A test's history across runs, flaky tests and the pass-rate trend, computed in SQL.

Runs are ordered by their start (then their id); a test counts once per run, by its
last attempt. PASSED is a pass, FAILED and ERROR are fails; SKIPPED takes no part in
flips. The queries use window functions (SQLite 3.25+, PostgreSQL, MariaDB 10.2+).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Subquery, and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from ..models import TestResult, TestRun, TestStatus
from ..reports.inputs import FlakyTest, StatusCounts, TrendPoint
from ..types import to_utc

FAILING = (TestStatus.FAILED, TestStatus.ERROR)
P, F, S, E = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED, TestStatus.ERROR


def _tally(status: TestStatus, column: Any = TestResult.status) -> Any:
    return func.coalesce(func.sum(case((column == status, 1), else_=0)), 0)


def recent_runs(session: Session, last: int, until: str | None = None) -> Subquery:
    """The newest ``last`` runs (those up to run ``until``, if given), ``recency`` 1 the newest.

    The window (at most ``last`` run ids) is read first and named in the query: joined
    as a window-function subquery, SQLite re-ran it for every result row.
    """
    order = (TestRun.started_at.desc(), TestRun.created_at.desc(), TestRun.run_id.desc())
    ranked = select(
        TestRun.run_id, TestRun.started_at, func.row_number().over(order_by=order).label("n")
    ).subquery()
    statement = select(ranked.c.run_id, ranked.c.started_at).order_by(ranked.c.n)
    if until is not None:
        newest = select(ranked.c.n).where(ranked.c.run_id == until).scalar_subquery()
        statement = statement.where(ranked.c.n >= newest)
    window = list(session.scalars(statement.limit(last)).all())
    recency = case(
        {run_id: number for number, run_id in enumerate(window, start=1)},
        value=TestRun.run_id,
        else_=0,
    )
    return (
        select(TestRun.run_id, TestRun.started_at, recency.label("recency"))
        .where(TestRun.run_id.in_(window))
        .subquery("recent_runs")
    )


def last_attempts(runs: Any) -> Subquery:
    """Each result of the runs ``runs`` names (one run id, or a subquery with a ``run_id``
    column) with ``nth`` 1 on a test's last attempt in its run: the outcome the run keeps.

    A window function, one pass: joined as a grouped subquery instead, SQLite matched
    every result against every group.
    """
    nth = func.row_number().over(
        partition_by=(TestResult.run_id, TestResult.suite_name, TestResult.test_name),
        order_by=TestResult.attempt.desc(),
    )
    if isinstance(runs, str):
        condition = TestResult.run_id == runs
    else:
        condition = TestResult.run_id.in_(select(runs.c.run_id))
    return (
        select(
            TestResult.id,
            TestResult.run_id,
            TestResult.suite_name,
            TestResult.test_name,
            TestResult.status,
            TestResult.duration_ms,
            nth.label("nth"),
            func.sum(case((TestResult.status.in_(FAILING), 1), else_=0))
            .over(partition_by=(TestResult.run_id, TestResult.suite_name, TestResult.test_name))
            .label("failed_tries"),
        )
        .where(condition)
        .subquery("last_attempts")
    )


def _join_final(statement: Any, runs: Any) -> Any:
    """``statement`` (a select over TestResult) kept to each test's last attempt."""
    last = last_attempts(runs)
    return statement.join(last, and_(last.c.id == TestResult.id, last.c.nth == 1))


def history(session: Session, suite: str, test_name: str, last: int) -> list[TestResult]:
    """One test's last-attempt result in each of its ``last`` newest runs, newest first."""
    nth = func.row_number().over(partition_by=TestResult.run_id, order_by=TestResult.attempt.desc())
    mine = (
        select(TestResult.id, nth.label("nth"))
        .where(TestResult.suite_name == suite, TestResult.test_name == test_name)
        .subquery("attempts")
    )
    statement = (
        select(TestResult)
        .join(mine, and_(mine.c.id == TestResult.id, mine.c.nth == 1))
        .join(TestRun, TestRun.run_id == TestResult.run_id)
        .order_by(TestRun.started_at.desc(), TestRun.created_at.desc(), TestRun.run_id.desc())
        .limit(last)
    )
    return list(session.scalars(statement).all())


def flaky(session: Session, last_runs: int, until: str | None = None) -> list[FlakyTest]:
    """Tests that flipped between pass and fail across the window, or passed on a retry
    in one of its runs; most flips first. Each flip is a run: the run it flipped in."""
    runs = recent_runs(session, last_runs, until)
    last = last_attempts(runs)
    passed = case((last.c.status == TestStatus.PASSED, 1), else_=0)
    outcomes = (
        select(
            last.c.suite_name,
            last.c.test_name,
            runs.c.run_id,
            runs.c.started_at,
            runs.c.recency,
            passed.label("passed"),
            func.lag(passed)
            .over(
                partition_by=(last.c.suite_name, last.c.test_name),
                order_by=runs.c.recency.desc(),
            )
            .label("before"),
        )
        .join(runs, runs.c.run_id == last.c.run_id)
        .where(last.c.nth == 1, last.c.status != TestStatus.SKIPPED)
    )
    outcomes_q = outcomes.subquery("outcomes")
    across_runs = select(
        outcomes_q.c.suite_name,
        outcomes_q.c.test_name,
        outcomes_q.c.run_id,
        outcomes_q.c.started_at,
        outcomes_q.c.recency,
    ).where(outcomes_q.c.before.is_not(None), outcomes_q.c.before != outcomes_q.c.passed)
    # A pass on retry: the last attempt passed and an earlier one failed (retries stop
    # at the first pass).
    within_run = (
        select(
            last.c.suite_name, last.c.test_name, runs.c.run_id, runs.c.started_at, runs.c.recency
        )
        .join(runs, runs.c.run_id == last.c.run_id)
        .where(last.c.nth == 1, last.c.status == TestStatus.PASSED, last.c.failed_tries > 0)
    )
    flips = union_all(across_runs, within_run).subquery("flips")
    key = (flips.c.suite_name, flips.c.test_name)
    numbered = select(
        *key,
        flips.c.run_id,
        flips.c.started_at,
        func.count(literal(1)).over(partition_by=key).label("flips"),
        func.row_number().over(partition_by=key, order_by=flips.c.recency).label("newest"),
    ).subquery("numbered")
    statement = (
        select(
            numbered.c.suite_name,
            numbered.c.test_name,
            numbered.c.flips,
            numbered.c.run_id,
            numbered.c.started_at,
        )
        .where(numbered.c.newest == 1)
        .order_by(numbered.c.flips.desc(), numbered.c.suite_name, numbered.c.test_name)
    )
    return [
        FlakyTest(suite, test, int(count), run_id, _aware(started))
        for suite, test, count, run_id, started in session.execute(statement)
    ]


def trend(session: Session, last_runs: int, until: str | None = None) -> list[TrendPoint]:
    """Counts, pass rate and summed test time of the newest ``last_runs`` runs, oldest first."""
    return _points(session, recent_runs(session, last_runs, until))


def final_statuses(session: Session, run_id: str) -> dict[tuple[str, str], TestStatus]:
    """Each test's outcome in the run (its last attempt), keyed by ``(suite, test)``."""
    statement = _join_final(
        select(TestResult.suite_name, TestResult.test_name, TestResult.status),
        run_id,
    ).where(TestResult.run_id == run_id)
    return {(suite, test): status for suite, test, status in session.execute(statement)}


def suite_counts(session: Session, run_id: str) -> list[tuple[str, StatusCounts]]:
    """Pass/fail/skip/error counts per suite of the run, by suite name."""
    statement = (
        _join_final(
            select(
                TestResult.suite_name,
                *(_tally(status) for status in (P, F, S, E)),
            ),
            run_id,
        )
        .where(TestResult.run_id == run_id)
        .group_by(TestResult.suite_name)
        .order_by(TestResult.suite_name)
    )
    return [
        (suite, StatusCounts(int(p), int(f), int(s), int(e)))
        for suite, p, f, s, e in session.execute(statement)
    ]


def final_results(
    session: Session, run_id: str, *, failing: bool = False, slowest: int | None = None
) -> list[TestResult]:
    """The run's results by last attempt: all, only the failing ones, or the slowest few."""
    statement = _join_final(select(TestResult), run_id).where(TestResult.run_id == run_id)
    if failing:
        statement = statement.where(TestResult.status.in_(FAILING))
    if slowest is not None:
        statement = (
            statement.where(TestResult.duration_ms.is_not(None))
            .order_by(TestResult.duration_ms.desc(), TestResult.suite_name, TestResult.test_name)
            .limit(slowest)
        )
    else:
        statement = statement.order_by(TestResult.suite_name, TestResult.test_name)
    return list(session.scalars(statement).all())


def run_totals(session: Session, run_id: str) -> TrendPoint | None:
    """One run's counts and test time; ``None`` if it has no results."""
    run = (
        select(TestRun.run_id, TestRun.started_at, literal(1).label("recency"))
        .where(TestRun.run_id == run_id)
        .subquery("one_run")
    )
    points = _points(session, run)
    return points[0] if points else None


def previous_run(session: Session, run_id: str) -> str | None:
    """The run ordered just before ``run_id`` (by start, then creation, then id)."""
    ranked = select(
        TestRun.run_id,
        func.lead(TestRun.run_id)
        .over(
            order_by=(TestRun.started_at.desc(), TestRun.created_at.desc(), TestRun.run_id.desc())
        )
        .label("before"),
    ).subquery("ranked")
    return session.scalar(select(ranked.c.before).where(ranked.c.run_id == run_id))


def _points(session: Session, runs: Subquery) -> list[TrendPoint]:
    last = last_attempts(runs)
    statement = (
        select(
            runs.c.run_id,
            runs.c.started_at,
            *(_tally(status, last.c.status) for status in (P, F, S, E)),
            func.coalesce(func.sum(last.c.duration_ms), 0),
        )
        .join(runs, runs.c.run_id == last.c.run_id)
        .where(last.c.nth == 1)
        .group_by(runs.c.run_id, runs.c.started_at, runs.c.recency)
        .order_by(runs.c.recency.desc())
    )
    points = []
    for row in session.execute(statement):
        run_id, started, passed, failed, skipped, error, duration = tuple(row)
        points.append(
            TrendPoint(
                run_id,
                StatusCounts(int(passed), int(failed), int(skipped), int(error)),
                duration_ms=int(duration),
                started_at=_aware(started),
            )
        )
    return points


def _aware(value: Any) -> Any:
    return to_utc(value) if value is not None and value.tzinfo is not None else value
