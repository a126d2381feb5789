"""Build the reports' inputs from the database, through the repositories' SQL queries.

``build_run_report(uow, "nightly-30")`` and ``build_sessions_report(uow, days=30)``
return the dataclasses of :mod:`.inputs`; render them with :mod:`.render`. The
counting happens in the database; Python only names commands and status words.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from ..apdu import describe_status_word
from ..exceptions import NotFoundError, ValidationError
from ..models import CommDirection, CommLog, OTASession, SessionStatus
from ..repositories import test_history
from ..repositories.failing_exchanges import failing_exchanges
from ..status_words import error_condition
from .inputs import (
    CommandErrors,
    DailyOtaRate,
    FailureCause,
    FailureDetail,
    RunReport,
    RunSummary,
    SessionsReport,
    SlowTest,
    StatusCounts,
    SuiteCounts,
    changes_against_baseline,
)

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

#: The cause shown for failed sessions stored without an error code.
NO_ERROR_CODE = "no error code"

#: The flaky list looks back this many runs (up to the reported one).
FLAKY_WINDOW = 20
#: The sessions report lists this many commands.
COMMANDS_SHOWN = 10


def build_run_report(uow: UnitOfWork, run_id: str, baseline: str | None = None) -> RunReport:
    """Everything the run report shows for ``run_id``; the baseline is the run before it
    unless named. Trend and flaky tests look back from this run, not from the newest."""
    session = uow.session
    run = uow.tests.get_run(run_id)
    if run is None:
        raise NotFoundError(f"test run {run_id!r} not found")
    if baseline is not None and uow.tests.get_run(baseline) is None:
        raise NotFoundError(f"baseline test run {baseline!r} not found")
    baseline = baseline or uow.tests.previous_run(run_id)
    totals = test_history.run_totals(session, run_id)
    counts = totals.counts if totals is not None else StatusCounts()
    summary = RunSummary(
        run_id=run_id,
        counts=counts,
        duration_ms=totals.duration_ms if totals is not None else 0,
        started_at=run.started_at,
        ended_at=run.ended_at,
        environment=_as_text(run.environment or {}),
    )
    current = test_history.final_statuses(session, run_id)
    before = test_history.final_statuses(session, baseline) if baseline else {}
    regressions, fixes = changes_against_baseline(before, current) if baseline else ([], [])
    failing = test_history.final_results(session, run_id, failing=True)
    exchanges = failing_exchanges(session, {r.session_id for r in failing if r.session_id})
    return RunReport(
        summary=summary,
        suites=[SuiteCounts(suite, c) for suite, c in test_history.suite_counts(session, run_id)],
        trend=test_history.trend(session, RunReport.TREND_RUNS, until=run_id),
        baseline_run_id=baseline,
        regressions=regressions,
        fixes=fixes,
        flaky=test_history.flaky(session, FLAKY_WINDOW, until=run_id),
        slowest=[
            SlowTest(r.suite_name, r.test_name, r.duration_ms or 0)
            for r in test_history.final_results(session, run_id, slowest=RunReport.SLOWEST)
        ],
        failures=[
            FailureDetail(
                r.suite_name,
                r.test_name,
                r.status,
                r.error_message,
                exchanges.get(r.session_id) if r.session_id else None,
            )
            for r in failing
        ],
    )


def build_sessions_report(uow: UnitOfWork, days: int = 30) -> SessionsReport:
    """The OTA sessions of the last ``days`` days: the daily success rate, failures by
    cause (the error code of each FAILED/TIMEOUT session, counted by
    ``uow.sessions.failures_by_cause``) and the commands that drew the most error status
    words. All three read the one window ``failures_by_cause`` reports."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValidationError(f"days must be a whole number from 1, got {days!r}")
    failures = uow.sessions.failures_by_cause(days=days)
    since = failures["since"]
    when = func.coalesce(OTASession.started_at, OTASession.created_at)
    day = func.date(when)
    completed = func.sum(case((OTASession.status == SessionStatus.COMPLETED, 1), else_=0))
    daily = uow.session.execute(
        select(day, func.count(), func.coalesce(completed, 0))
        .where(when >= since)
        .group_by(day)
        .order_by(day)
    ).all()
    return SessionsReport(
        days=days,
        daily=[DailyOtaRate(_day(value), int(total), int(ok)) for value, total, ok in daily],
        causes=[
            FailureCause(row["error_code"] or NO_ERROR_CODE, row["count"])
            for row in failures["error_codes"]
        ],
        commands=_command_errors(uow, since),
    )


def _command_errors(uow: UnitOfWork, since: datetime) -> list[CommandErrors]:
    """Error responses counted in SQL per stored command name (an unnamed command by its
    INS) and status word, through ``command_id``; the commonest word is shown per command."""
    command = aliased(CommLog, name="command")
    unnamed_ins = case((command.command_name.is_(None), command.ins))
    word = CommLog.status_word
    rows = uow.session.execute(
        select(command.command_name, unnamed_ins, word, func.count())
        .join(command, CommLog.command_id == command.id)
        .where(
            CommLog.timestamp >= since,
            CommLog.direction == CommDirection.RESPONSE,
            word.is_not(None),
            error_condition(word),
        )
        .group_by(command.command_name, unnamed_ins, word)
    ).all()
    per_command: dict[str, Counter[str]] = defaultdict(Counter)
    for name, ins, status_word, count in rows:
        label = name or (f"INS {ins:02X}" if ins is not None else "?")
        per_command[label][status_word] += int(count)
    ranked = sorted(per_command.items(), key=lambda item: (-item[1].total(), item[0]))
    commands = []
    for name, words in ranked[:COMMANDS_SHOWN]:
        commonest = words.most_common(1)[0][0]
        commands.append(CommandErrors(name, words.total(), commonest, _meaning(commonest)))
    return commands


def _meaning(status_word: str) -> str | None:
    try:
        return describe_status_word(status_word)
    except ValidationError:
        return None


def _day(value: Any) -> date:
    """``date(...)`` comes back as a date (servers) or ISO text (SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _as_text(environment: Mapping[str, Any]) -> dict[str, str]:
    """The run's environment as the report shows it: lists joined, everything text."""
    return {
        str(key): ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        for key, value in environment.items()
    }
