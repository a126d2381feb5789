"""A test's history across runs, flaky tests and the pass-rate trend, computed in SQL.

Runs are ordered by their start (then their creation, then their id); a test counts
once per run, by its last attempt (the greatest attempt; of equal ones, the greatest
id). PASSED is a pass, FAILED and ERROR are fails; SKIPPED takes no part in flips.

Most tests run once per run, so the queries read one grouped pass over the index on
(run_id, suite_name, test_name, attempt, status, duration_ms) and look the last attempt
up only for tests tried more than once: a window function over every result had the
servers sort the whole history. The flips are counted with LAG (window functions need
SQLite 3.25+, PostgreSQL, MariaDB 10.2+).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Subquery, and_, case, exists, func, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from ..models import TestResult, TestRun, TestStatus
from ..reports.inputs import FlakyTest, StatusCounts, TrendPoint
from ..types import to_utc

FAILING = (TestStatus.FAILED, TestStatus.ERROR)
P, F, S, E = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED, TestStatus.ERROR
RUN_ORDER = (TestRun.started_at.desc(), TestRun.created_at.desc(), TestRun.run_id.desc())
KEY = (TestResult.run_id, TestResult.suite_name, TestResult.test_name)


def _tally(status: TestStatus, column: Any = TestResult.status) -> Any:
    return func.coalesce(func.sum(case((column == status, 1), else_=0)), 0)


def _failing(column: Any = TestResult.status) -> Any:
    return case((column.in_(FAILING), 1), else_=0)


def window_runs(session: Session, last: int, until: str | None = None) -> list[str]:
    """The ids of the newest ``last`` runs (those up to run ``until``, if given), newest first."""
    ranked = select(
        TestRun.run_id, func.row_number().over(order_by=RUN_ORDER).label("n")
    ).subquery()
    statement = select(ranked.c.run_id).order_by(ranked.c.n)
    if until is not None:
        newest = select(ranked.c.n).where(ranked.c.run_id == until).scalar_subquery()
        statement = statement.where(ranked.c.n >= newest)
    return list(session.scalars(statement.limit(last)).all())


def recency(window: Sequence[str], run_id: Any) -> Any:
    """The place of ``run_id`` in ``window``: 1 for the first (the newest)."""
    return case(
        {run_id: number for number, run_id in enumerate(window, start=1)}, value=run_id, else_=0
    )


def runs_table(window: Sequence[str]) -> Subquery:
    """The runs ``window`` names with their ``recency``."""
    return (
        select(TestRun.run_id, TestRun.started_at, recency(window, TestRun.run_id).label("recency"))
        .where(TestRun.run_id.in_(window))
        .subquery("recent_runs")
    )


def last_attempts(run_ids: Sequence[str]) -> Subquery:
    """Each test's last attempt in the runs ``run_ids``: its key, status and duration, and
    ``failed_tries``, how many of its attempts in that run failed.

    One grouped pass in the order of the run/test index: a test with one row in a run,
    as most are, has that row's values as its min(); only for a test with several rows
    is its last attempt looked up. (A window function over every result had the servers
    sort the whole history; a second grouped pass to find the retried tests was planned
    as a full sort on MariaDB.)
    """
    per_test = (
        select(
            *KEY,
            func.count().label("tries"),
            func.min(TestResult.status).label("status"),
            func.min(TestResult.duration_ms).label("duration_ms"),
            func.sum(_failing()).label("failed_tries"),
        )
        .where(TestResult.run_id.in_(run_ids))
        .group_by(*KEY)
        .subquery("per_test")
    )
    latest = aliased(TestResult)

    def of_last_attempt(column: Any) -> Any:
        looked_up = (
            select(column)
            .where(*(getattr(latest, key.key) == per_test.c[key.key] for key in KEY))
            .order_by(latest.attempt.desc(), latest.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        return case((per_test.c.tries == 1, per_test.c[column.key]), else_=looked_up)

    return select(
        per_test.c.run_id,
        per_test.c.suite_name,
        per_test.c.test_name,
        of_last_attempt(latest.status).label("status"),
        of_last_attempt(latest.duration_ms).label("duration_ms"),
        per_test.c.failed_tries,
    ).subquery("last_attempts")


def is_last_attempt() -> Any:
    """True for a ``TestResult`` row no later attempt of its test in its run supersedes."""
    later = aliased(TestResult)
    return ~exists().where(
        later.run_id == TestResult.run_id,
        later.suite_name == TestResult.suite_name,
        later.test_name == TestResult.test_name,
        or_(
            later.attempt > TestResult.attempt,
            and_(later.attempt == TestResult.attempt, later.id > TestResult.id),
        ),
    )


def history(session: Session, suite: str, test_name: str, last: int) -> list[TestResult]:
    """One test's last-attempt result in each of its ``last`` newest runs, newest first."""
    statement = (
        select(TestResult)
        .join(TestRun, TestRun.run_id == TestResult.run_id)
        .where(TestResult.suite_name == suite, TestResult.test_name == test_name)
        .where(is_last_attempt())
        .order_by(*RUN_ORDER)
        .limit(last)
    )
    return list(session.scalars(statement).all())


def flaky(session: Session, last_runs: int, until: str | None = None) -> list[FlakyTest]:
    """Tests that flipped between pass and fail across the window, or passed on a retry
    in one of its runs; most flips first. Each flip is a run: the run it flipped in (a
    run can hold two: a flip from the run before, and a pass on retry)."""
    window = window_runs(session, last_runs, until)
    if not window:
        return []
    runs = runs_table(window)
    last = last_attempts(window)
    passed = case((last.c.status == TestStatus.PASSED, 1), else_=0)
    place = recency(window, last.c.run_id)
    outcomes = (
        select(
            last.c.suite_name,
            last.c.test_name,
            place.label("recency"),
            passed.label("passed"),
            func.lag(passed)
            .over(partition_by=(last.c.suite_name, last.c.test_name), order_by=place.desc())
            .label("before"),
            # A pass on retry: the last attempt passed after a failed one (retries stop
            # at the first pass).
            case(
                (and_(last.c.status == TestStatus.PASSED, last.c.failed_tries > 0), 1), else_=0
            ).label("retried"),
        )
        .where(last.c.status != TestStatus.SKIPPED)
        .subquery("outcomes")
    )
    flipped = case(
        (and_(outcomes.c.before.is_not(None), outcomes.c.before != outcomes.c.passed), 1),
        else_=0,
    )
    flips = select(
        outcomes.c.suite_name,
        outcomes.c.test_name,
        outcomes.c.recency,
        (flipped + outcomes.c.retried).label("flips"),
    ).subquery("flips")
    per_test = (
        select(
            flips.c.suite_name,
            flips.c.test_name,
            func.sum(flips.c.flips).label("flips"),
            func.min(flips.c.recency).label("newest"),
        )
        .where(flips.c.flips > 0)
        .group_by(flips.c.suite_name, flips.c.test_name)
        .subquery("per_test")
    )
    statement = (
        select(
            per_test.c.suite_name,
            per_test.c.test_name,
            per_test.c.flips,
            runs.c.run_id,
            runs.c.started_at,
        )
        .join(runs, runs.c.recency == per_test.c.newest)
        .order_by(per_test.c.flips.desc(), per_test.c.suite_name, per_test.c.test_name)
    )
    return [
        FlakyTest(suite, test, int(count), run_id, _aware(started))
        for suite, test, count, run_id, started in _rows(session, statement)
    ]


def trend(session: Session, last_runs: int, until: str | None = None) -> list[TrendPoint]:
    """Counts, pass rate and summed test time of the newest ``last_runs`` runs, oldest first."""
    window = window_runs(session, last_runs, until)
    return _points(session, window)


def final_statuses(session: Session, run_id: str) -> dict[tuple[str, str], TestStatus]:
    """Each test's outcome in the run (its last attempt), keyed by ``(suite, test)``."""
    last = last_attempts([run_id])
    statement = select(last.c.suite_name, last.c.test_name, last.c.status)
    return {(suite, test): status for suite, test, status in _rows(session, statement)}


def suite_counts(session: Session, run_id: str) -> list[tuple[str, StatusCounts]]:
    """Pass/fail/skip/error counts per suite of the run, by suite name."""
    last = last_attempts([run_id])
    statement = (
        select(last.c.suite_name, *(_tally(status, last.c.status) for status in (P, F, S, E)))
        .group_by(last.c.suite_name)
        .order_by(last.c.suite_name)
    )
    return [
        (suite, StatusCounts(int(p), int(f), int(s), int(e)))
        for suite, p, f, s, e in _rows(session, statement)
    ]


def final_results(
    session: Session, run_id: str, *, failing: bool = False, slowest: int | None = None
) -> list[TestResult]:
    """The run's results by last attempt: all, only the failing ones, or the slowest few."""
    statement = select(TestResult).where(TestResult.run_id == run_id)
    if failing:
        statement = statement.where(TestResult.status.in_(FAILING))
    statement = statement.where(is_last_attempt())
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
    points = _points(session, [run_id])
    return points[0] if points else None


def previous_run(session: Session, run_id: str) -> str | None:
    """The run ordered just before ``run_id`` (by start, then creation, then id)."""
    ranked = select(
        TestRun.run_id,
        func.lead(TestRun.run_id).over(order_by=RUN_ORDER).label("before"),
    ).subquery("ranked")
    return session.scalar(select(ranked.c.before).where(ranked.c.run_id == run_id))


def _points(session: Session, window: Sequence[str]) -> list[TrendPoint]:
    """The runs of ``window`` (newest first) that have results, oldest first."""
    if not window:
        return []
    runs = runs_table(window)
    if session.get_bind().dialect.name == "postgresql":
        per_run = _run_tallies_by_test(window)
    else:
        per_run = _run_tallies(window)
    statement = (
        select(
            runs.c.run_id,
            runs.c.started_at,
            per_run.c.passed,
            per_run.c.failed,
            per_run.c.skipped,
            per_run.c.error,
            per_run.c.duration_ms,
        )
        .join(per_run, per_run.c.run_id == runs.c.run_id)
        .order_by(runs.c.recency.desc())
    )
    points = []
    for row in _rows(session, statement):
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


def _run_tallies_by_test(window: Sequence[str]) -> Subquery:
    """Per run of ``window`` with results: its counts and summed test time, each test
    by its last attempt, grouped from :func:`last_attempts` (on PostgreSQL)."""
    last = last_attempts(window)
    return (
        select(
            last.c.run_id,
            *(_tally(status, last.c.status).label(status.name.lower()) for status in (P, F, S, E)),
            func.coalesce(func.sum(last.c.duration_ms), 0).label("duration_ms"),
        )
        .group_by(last.c.run_id)
        .subquery("per_run")
    )


def _run_tallies(window: Sequence[str]) -> Subquery:
    """What :func:`_run_tallies_by_test` gives, for SQLite and MariaDB: every row is
    tallied per run in one pass in the order of the run/test index, then the rows a
    later attempt supersedes are taken away; they belong to the tests with several rows
    in a run, which are few. (SQLite sorted the row per test and run of the other form
    in a temporary b-tree to group it by run, MariaDB wrote it to a temporary table;
    MariaDB needs ``split_materialized`` off for this form, see :data:`PLANNER_SETTINGS`.
    PostgreSQL plans the other form better: the report benchmark holds the figures.)
    """

    def tallies(sign: int) -> list[Any]:
        return [
            *((sign * _tally(status)).label(status.name.lower()) for status in (P, F, S, E)),
            (sign * func.coalesce(func.sum(TestResult.duration_ms), 0)).label("duration_ms"),
        ]

    every_row = (
        select(TestResult.run_id, *tallies(1))
        .where(TestResult.run_id.in_(window))
        .group_by(TestResult.run_id)
    )
    retried = (
        select(*KEY)
        .where(TestResult.run_id.in_(window))
        .group_by(*KEY)
        .having(func.count() > 1)
        .subquery("retried")
    )
    superseded = (
        select(TestResult.run_id, *tallies(-1))
        .select_from(retried)
        .join(TestResult, and_(*(key == retried.c[key.key] for key in KEY)))
        .where(~is_last_attempt())
        .group_by(TestResult.run_id)
    )
    # Added up rather than joined: MariaDB ran a join on the run id as a lateral
    # derived table per run, scanning the retried tests for every row.
    both = union_all(every_row, superseded).subquery("both_tallies")
    names = ("passed", "failed", "skipped", "error", "duration_ms")
    return (
        select(both.c.run_id, *(func.sum(both.c[name]).label(name) for name in names))
        .group_by(both.c.run_id)
        .subquery("per_run")
    )


#: Per backend: how to read a planner setting, how to set it (``:value``), and the value
#: the queries of this module run with.
PLANNER_SETTINGS = {
    # PostgreSQL costs the last-attempt look-up as if it ran for every test, which puts
    # the query over ``jit_above_cost``: compiling it then took longer than running it.
    "postgresql": (
        "SELECT current_setting('jit')",
        "SELECT set_config('jit', :value, true)",
        "off",
    ),
    # MariaDB ran the grouped search for the retried tests of _run_tallies, joined back
    # on its keys, as a "split" (lateral) derived table: a temporary table of the whole
    # window instead of one pass in index order.
    "mysql": (
        "SELECT @@optimizer_switch",
        "SET SESSION optimizer_switch = :value",
        "split_materialized=off",
    ),
}
PLANNER_SETTINGS["mariadb"] = PLANNER_SETTINGS["mysql"]


def _rows(session: Session, statement: Any) -> list[Any]:
    """The rows of a query over :func:`last_attempts` or :func:`_run_tallies`, run with
    the backend's :data:`PLANNER_SETTINGS`; the setting is put back as it was.
    """
    setting = PLANNER_SETTINGS.get(session.get_bind().dialect.name)
    if setting is None:
        return list(session.execute(statement))
    read, write, value = setting
    before = session.scalar(text(read))
    session.execute(text(write), {"value": value})
    try:
        return list(session.execute(statement))
    finally:
        session.execute(text(write), {"value": before})


def _aware(value: Any) -> Any:
    return to_utc(value) if value is not None and value.tzinfo is not None else value
