"""Time and size of the run report for a run of 10,000 results with 30 runs of history.

Targets (issue 17): under 2 s to build and render, under 2 MB of HTML. The inputs are
synthetic: 10,000 result rows (5 % failing, with messages and failing exchanges) are
tallied in Python into the report's records; a sessions report over 30 days is
rendered too.

With ``--db-url URL`` (repeatable; ``--database-url`` is the same) or ``--all-backends``
(SQLite, PostgreSQL and MariaDB; server database ``cardlink_bench_reports``) it also
stores that run and its 30 runs of history in the database (Core bulk inserts, then
``start_run`` / ``finish_run``; about 1 % of the tests fail and pass on a retry), updates
the database's statistics as its autovacuum/analyze would after such a load, and times
``reports.build_run_report`` - the SQL history, flaky and trend queries - plus the
rendering. The report's counts, trend and flaky list are checked against the same
figures counted in Python from the rows stored: a wrong answer exits 1, as a missed
target does. The database must hold no test runs: the benchmark writes its rows there
and deletes them afterwards.

python benchmarks/report_bench.py [--results 10000] [--output report.html]
python benchmarks/report_bench.py --all-backends
python benchmarks/report_bench.py --db-url sqlite:///bench.db \
    --db-url postgresql://postgres@127.0.0.1/cardlink_bench
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.engine import URL

from cardlink.database import (
    DatabaseConfig,
    DatabaseManager,
    TestResult,
    TestRun,
    TestStatus,
    UnitOfWork,
)
from cardlink.database.reports import (
    CommandErrors,
    DailyOtaRate,
    FailingExchange,
    FailureCause,
    FailureDetail,
    FlakyTest,
    RunReport,
    RunSummary,
    SessionsReport,
    SlowTest,
    StatusCounts,
    SuiteCounts,
    TrendPoint,
    changes_against_baseline,
    render_run_report,
    render_sessions_report,
)
from cardlink.database.reports import (
    build_run_report as build_run_report_from_database,
)

TIME_TARGET_S = 2.0
SIZE_TARGET_BYTES = 2 * 1024 * 1024
STATUSES = (
    [TestStatus.PASSED] * 92
    + [TestStatus.FAILED] * 4
    + [TestStatus.ERROR]
    + [TestStatus.SKIPPED] * 3
)
EXCHANGES = [("80E60C002B", "6A80"), ("80E80000F0", "6581"), ("00A4040007", "6A82")]


def synthetic_rows(count: int, seed: int) -> list[tuple[str, str, TestStatus, int, str | None]]:
    """``count`` results as (suite, test, status, duration_ms, message) over 40 suites."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        status = rng.choice(STATUSES)
        message = None
        if status in (TestStatus.FAILED, TestStatus.ERROR):
            message = f"AssertionError: expected 9000, card answered 6A80 (step {index})\n" + (
                "  at ota/step.py:42 in run_step\n" * 4
            )
        rows.append(
            (
                f"suite_{index % 40:02d}",
                f"test_case_{index:05d}",
                status,
                rng.randint(5, 9_000),
                message,
            )
        )
    return rows


def build_run_report(results: int) -> RunReport:
    """Tally the synthetic rows into the report's inputs."""
    rows = synthetic_rows(results, seed=30)
    baseline = {(suite, test): status for suite, test, status, _, _ in synthetic_rows(results, 29)}
    current = {(suite, test): status for suite, test, status, _, _ in rows}
    per_suite: dict[str, Counter[TestStatus]] = {}
    for suite, _test, status, _duration, _message in rows:
        per_suite.setdefault(suite, Counter())[status] += 1

    def counts(tally: Counter[TestStatus]) -> StatusCounts:
        return StatusCounts(
            passed=tally[TestStatus.PASSED],
            failed=tally[TestStatus.FAILED],
            skipped=tally[TestStatus.SKIPPED],
            error=tally[TestStatus.ERROR],
        )

    total = counts(Counter(status for _, _, status, _, _ in rows))
    regressions, fixes = changes_against_baseline(baseline, current)
    start = datetime(2026, 12, 5, 22, tzinfo=timezone.utc)
    rng = random.Random(1)
    trend = [
        TrendPoint(
            f"nightly-{night}",
            StatusCounts(
                passed=results - 600 + rng.randint(-200, 200),
                failed=rng.randint(200, 600),
                skipped=300,
            ),
            rng.randint(3_000_000, 3_600_000),
            start - timedelta(days=30 - night),
        )
        for night in range(1, 30)
    ]
    duration = sum(duration for _, _, _, duration, _ in rows)
    trend.append(TrendPoint("nightly-30", total, duration, start))
    failures = [
        FailureDetail(
            suite,
            test,
            status,
            message,
            FailingExchange.from_apdu(*EXCHANGES[index % 3], session_id=f"session-{index}"),
        )
        for index, (suite, test, status, _, message) in enumerate(rows)
        if status in (TestStatus.FAILED, TestStatus.ERROR)
    ]
    slowest = sorted(rows, key=lambda row: row[3], reverse=True)[:10]
    return RunReport(
        summary=RunSummary(
            "nightly-30",
            total,
            duration,
            start,
            start + timedelta(hours=1),
            {"device": "Quectel EG25-G", "revision": "a1b2c3d"},
        ),
        suites=[SuiteCounts(suite, counts(tally)) for suite, tally in sorted(per_suite.items())],
        trend=trend,
        baseline_run_id="nightly-29",
        regressions=regressions,
        fixes=fixes,
        flaky=[
            FlakyTest(f"suite_{i:02d}", f"test_case_{i:05d}", 3 + i % 5, "nightly-30", start)
            for i in range(25)
        ],
        slowest=[SlowTest(suite, test, duration) for suite, test, _, duration, _ in slowest],
        failures=failures,
    )


def build_sessions_report() -> SessionsReport:
    """30 days of sessions with causes and commands."""
    rng = random.Random(2)
    return SessionsReport(
        days=30,
        daily=[
            DailyOtaRate(date(2026, 11, 6) + timedelta(days=d), 500, 500 - rng.randint(0, 60))
            for d in range(30)
        ],
        causes=[FailureCause(f"cause {i}", 100 - i * 7) for i in range(12)],
        commands=[
            CommandErrors(f"COMMAND {i}", 90 - i * 6, "6A80", "incorrect data") for i in range(12)
        ],
    )


#: The server database ``--all-backends`` uses.
SERVER_DATABASE = "cardlink_bench_reports"
RUNS = 30
#: One test in this many fails once and passes on its retry, a different one each night.
RETRIED_EVERY = 100

#: One stored result: (suite, test, status, attempt, duration_ms, message).
StoredRow = tuple[str, str, TestStatus, int, int, str | None]


def night_rows(results: int, night: int) -> list[StoredRow]:
    """The rows of night ``night``: the synthetic results, with some tests retried."""
    rows: list[StoredRow] = []
    for index, (suite, test, status, duration, message) in enumerate(
        synthetic_rows(results, night)
    ):
        if (index + night) % RETRIED_EVERY == 0:
            rows.append((suite, test, TestStatus.FAILED, 1, 100, "failed before the retry"))
            rows.append((suite, test, TestStatus.PASSED, 2, duration, None))
        else:
            rows.append((suite, test, status, 1, duration, message))
    return rows


def store_history(manager: DatabaseManager, results: int) -> dict[str, list[StoredRow]]:
    """``RUNS`` nightly runs, ``bench-01`` (oldest) to ``bench-30``, inserted through Core
    from the model's table; returns each run's rows."""
    table = TestResult.__table__
    assert isinstance(table, Table)
    start = datetime(2026, 12, 5, 22, tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    stored = {f"bench-{night:02d}": night_rows(results, night) for night in range(1, RUNS + 1)}
    with UnitOfWork(manager) as uow:
        if uow.session.scalar(select(func.count()).select_from(TestRun)):
            raise SystemExit(f"{manager.config.url}: holds test runs already; use an empty one")
        for night, run_id in enumerate(stored, start=1):
            uow.tests.start_run(run_id, started_at=start - timedelta(days=RUNS - night))
        uow.commit()
    with manager.engine.begin() as connection:
        for run_id, night_results in stored.items():
            rows = [
                {
                    "id": uuid.uuid4(),
                    "run_id": run_id,
                    "suite_name": suite,
                    "test_name": test,
                    "status": status,
                    "attempt": attempt,
                    "duration_ms": duration,
                    "error_message": message,
                    "created_at": now,
                    "updated_at": now,
                }
                for suite, test, status, attempt, duration, message in night_results
            ]
            for offset in range(0, len(rows), 2_000):
                connection.execute(table.insert(), rows[offset : offset + 2_000])
    with UnitOfWork(manager) as uow:
        for run_id in stored:
            uow.tests.finish_run(run_id)
        uow.commit()
    update_statistics(manager)
    return stored


def update_statistics(manager: DatabaseManager) -> None:
    """What the database's own upkeep does after a bulk load (autovacuum/analyze on
    PostgreSQL, which also lets it read the index alone; the planner's statistics on
    MariaDB and SQLite)."""
    backend = manager.engine.dialect.name
    statement = {
        "postgresql": "VACUUM ANALYZE tests",
        "mysql": "ANALYZE TABLE tests",
        "sqlite": "ANALYZE",
    }[backend]
    with manager.engine.connect() as connection:
        if backend == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text(statement))
        connection.commit()


def forget_history(manager: DatabaseManager) -> None:
    """Delete what :func:`store_history` wrote."""
    with manager.engine.begin() as connection:
        connection.execute(delete(TestResult).where(TestResult.run_id.like("bench-%")))
        connection.execute(delete(TestRun).where(TestRun.run_id.like("bench-%")))


def expected_figures(stored: dict[str, list[StoredRow]]) -> dict[str, object]:
    """The counts, trend and flaky list of ``bench-30``, counted in Python from the rows."""
    finals: dict[str, dict[tuple[str, str], tuple[TestStatus, int, bool]]] = {}
    for run_id, rows in stored.items():
        final: dict[tuple[str, str], tuple[TestStatus, int, bool]] = {}
        for suite, test, status, _attempt, duration, _ in sorted(rows, key=lambda row: row[3]):
            retried = (suite, test) in final and final[(suite, test)][0] is TestStatus.FAILED
            final[(suite, test)] = (status, duration, retried)
        finals[run_id] = final

    def counts(final: dict[tuple[str, str], tuple[TestStatus, int, bool]]) -> StatusCounts:
        tally = Counter(status for status, _, _ in final.values())
        return StatusCounts(
            tally[TestStatus.PASSED],
            tally[TestStatus.FAILED],
            tally[TestStatus.SKIPPED],
            tally[TestStatus.ERROR],
        )

    trend = [
        (run_id, counts(final), sum(duration for _, duration, _ in final.values()))
        for run_id, final in finals.items()
    ]
    flips: dict[tuple[str, str], list[str]] = {}
    before: dict[tuple[str, str], bool] = {}
    for run_id in list(finals)[-20:]:  # the flaky window, oldest first
        for key, (status, _, retried) in sorted(finals[run_id].items()):
            if status is TestStatus.SKIPPED:
                continue
            passed = status is TestStatus.PASSED
            if key in before and before[key] != passed:
                flips.setdefault(key, []).append(run_id)
            if passed and retried:
                flips.setdefault(key, []).append(run_id)
            before[key] = passed
    flaky = sorted(
        ((len(runs), suite, test, runs[-1]) for (suite, test), runs in flips.items()),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    return {"counts": counts(finals["bench-30"]), "trend": trend, "flaky": flaky}


def wrong_answers(report: RunReport, expected: dict[str, object]) -> list[str]:
    """What the report built from the database gets wrong, if anything."""
    found = {
        "counts": report.summary.counts,
        "trend": [(point.run_id, point.counts, point.duration_ms) for point in report.trend],
        "flaky": [
            (test.flips, test.suite, test.test_name, test.last_flip_run) for test in report.flaky
        ],
    }
    return [name for name, value in found.items() if value != expected[name]]


def time_database_report(url: URL, results: int) -> tuple[str, float, int, list[str]]:
    """(label, seconds to build from the database and render, bytes of HTML, what is wrong)."""
    manager = DatabaseManager(DatabaseConfig(url))
    manager.initialize()
    manager.create_tables()
    try:
        stored = store_history(manager, results)
        try:
            started = time.perf_counter()
            with UnitOfWork(manager) as uow:
                report = build_run_report_from_database(uow, "bench-30")
                html = render_run_report(report)
            seconds = time.perf_counter() - started
        finally:
            forget_history(manager)
    finally:
        manager.close()
    label = f"run report from {url.get_backend_name()}, {results:,} results, {RUNS} runs"
    return label, seconds, len(html.encode()), wrong_answers(report, expected_figures(stored))


def database_urls(args: argparse.Namespace) -> list[URL]:
    """The databases to time: those named, or a new SQLite file and the two servers;
    none without either option."""
    urls = backends.database_urls(
        args, server_database=SERVER_DATABASE, sqlite_file="reports.db", sqlite_by_default=False
    )
    if args.all_backends:
        for url in urls:
            # A fresh database: one that held (and deleted) an earlier run's rows is
            # slower to scan until the server has purged them.
            backends.ensure_database(url, fresh=True)
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--output", help="also write the run report here")
    backends.add_options(parser)
    args = parser.parse_args(argv)
    render_run_report(RunReport(RunSummary("warm-up", StatusCounts(passed=1))))  # templates

    started = time.perf_counter()
    html = render_run_report(build_run_report(args.results))
    run_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sessions_html = render_sessions_report(build_sessions_report())
    sessions_seconds = time.perf_counter() - started
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(html)

    figures = [
        (f"run report, {args.results:,} results, 30 runs", run_seconds, len(html.encode()), []),
        ("sessions report, 30 days", sessions_seconds, len(sessions_html.encode()), []),
    ]
    ok = True
    for url in database_urls(args):
        try:
            figures.append(time_database_report(url, args.results))
        except Exception as error:  # go on: every backend's figures, then fail
            ok = False
            message = (str(error).strip().splitlines() or [""])[0]
            print(f"{url.get_backend_name()}: FAILED: {type(error).__name__}: {message}")
    for label, seconds, size, wrong in figures:
        fits = seconds < TIME_TARGET_S and size < SIZE_TARGET_BYTES
        ok = ok and fits and not wrong
        verdict = "ok" if fits else "MISSED"
        if wrong:
            verdict += f", WRONG {', '.join(wrong)}"
        print(
            f"{label}: {seconds:.3f} s (target < {TIME_TARGET_S:.0f} s), "
            f"{size / 1024 / 1024:.2f} MB (target < 2 MB): {verdict}",
            flush=True,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
