"""The plain, typed inputs of the reports: frozen dataclasses the storage layer fills.

Nothing here touches the database. A query (or a JUnit file, or a test) builds these
records and hands them to :func:`~cardlink.database.reports.render_run_report` or
:func:`~cardlink.database.reports.render_sessions_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from ..apdu import decode_apdu, describe_status_word
from ..models.enums import TestStatus

FAILING = (TestStatus.FAILED, TestStatus.ERROR)


def _rate(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole``; ``None`` when there is nothing to count."""
    return 100.0 * part / whole if whole else None


@dataclass(frozen=True)
class StatusCounts:
    """How many tests passed, failed, were skipped or errored."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        """Every test counted, skipped ones included."""
        return self.passed + self.failed + self.skipped + self.error

    @property
    def pass_rate(self) -> float | None:
        """Percent passed of the tests that ran (skipped ones left out), as the repository's
        ``success_rate``; ``None`` when none ran."""
        return _rate(self.passed, self.total - self.skipped)


@dataclass(frozen=True)
class RunSummary:
    """One run: its counts, its span and its environment (device, card, versions, tags)."""

    run_id: str
    counts: StatusCounts
    duration_ms: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteCounts:
    """One suite's pass/fail/skip/error counts in the run."""

    suite: str
    counts: StatusCounts


@dataclass(frozen=True)
class TrendPoint:
    """One run in the trend: counts, pass rate and duration."""

    run_id: str
    counts: StatusCounts
    duration_ms: int = 0
    started_at: datetime | None = None


@dataclass(frozen=True)
class StatusChange:
    """A test whose outcome changed against the baseline (``before`` is ``None`` if new)."""

    suite: str
    test_name: str
    before: TestStatus | None
    after: TestStatus


@dataclass(frozen=True)
class FlakyTest:
    """A test whose status flipped between pass and fail, with how often and when last."""

    suite: str
    test_name: str
    flips: int
    last_flip_run: str | None = None
    last_flip_at: datetime | None = None


@dataclass(frozen=True)
class SlowTest:
    """One of the slowest tests of the run."""

    suite: str
    test_name: str
    duration_ms: int


@dataclass(frozen=True)
class FailingExchange:
    """The command/response pair where the linked OTA session went wrong."""

    command: str
    status_word: str
    meaning: str
    session_id: str | None = None
    command_apdu: str | None = None

    @classmethod
    def from_apdu(
        cls, command_apdu: str, status_word: str, *, session_id: str | None = None
    ) -> FailingExchange:
        """Name the command and the status word the way the trace view does."""
        decoded = decode_apdu(command_apdu)
        name = decoded.name or (f"INS {decoded.ins:02X}" if decoded.ins is not None else "?")
        return cls(
            command=name,
            status_word=status_word.upper(),
            meaning=describe_status_word(status_word) or "unknown status word",
            session_id=session_id,
            command_apdu=command_apdu.upper(),
        )

    def as_text(self) -> str:
        """One line, as it goes into a report or JUnit ``<system-out>``."""
        session = f" (session {self.session_id})" if self.session_id else ""
        return f"{self.command} -> {self.status_word} {self.meaning}{session}"


@dataclass(frozen=True)
class FailureDetail:
    """A failed or errored test with its message and, if linked, the failing exchange."""

    suite: str
    test_name: str
    status: TestStatus
    message: str | None = None
    exchange: FailingExchange | None = None


@dataclass(frozen=True)
class RunReport:
    """Everything the run report shows; the trend is oldest first, at most 30 runs."""

    summary: RunSummary
    suites: Sequence[SuiteCounts] = ()
    trend: Sequence[TrendPoint] = ()
    baseline_run_id: str | None = None
    regressions: Sequence[StatusChange] = ()
    fixes: Sequence[StatusChange] = ()
    flaky: Sequence[FlakyTest] = ()
    slowest: Sequence[SlowTest] = ()
    failures: Sequence[FailureDetail] = ()

    TREND_RUNS = 30
    SLOWEST = 10


def changes_against_baseline(
    baseline: Mapping[tuple[str, str], TestStatus],
    current: Mapping[tuple[str, str], TestStatus],
) -> tuple[list[StatusChange], list[StatusChange]]:
    """Regressions (fail now, did not fail before, new tests too) and fixes (failed before,
    pass now), keyed by ``(suite, test_name)`` and sorted by it."""
    regressions = [
        StatusChange(suite, test, baseline.get((suite, test)), status)
        for (suite, test), status in sorted(current.items())
        if status in FAILING and baseline.get((suite, test)) not in FAILING
    ]
    fixes = [
        StatusChange(suite, test, baseline[(suite, test)], status)
        for (suite, test), status in sorted(current.items())
        if status is TestStatus.PASSED and baseline.get((suite, test)) in FAILING
    ]
    return regressions, fixes


@dataclass(frozen=True)
class DailyOtaRate:
    """One day's OTA sessions and how many completed."""

    day: date
    sessions: int
    completed: int

    @property
    def success_rate(self) -> float | None:
        """Percent of the day's sessions that completed."""
        return _rate(self.completed, self.sessions)


@dataclass(frozen=True)
class FailureCause:
    """A cause of failed sessions (timeout, TLS handshake, status word ...) and its count."""

    cause: str
    count: int


@dataclass(frozen=True)
class CommandErrors:
    """A command and how many error status words it drew; its commonest one and meaning."""

    command: str
    errors: int
    status_word: str | None = None
    meaning: str | None = None


@dataclass(frozen=True)
class SessionsReport:
    """Everything the sessions report shows over the last ``days`` days."""

    days: int
    daily: Sequence[DailyOtaRate] = ()
    causes: Sequence[FailureCause] = ()
    commands: Sequence[CommandErrors] = ()

    @property
    def sessions(self) -> int:
        """Sessions started in the window."""
        return sum(day.sessions for day in self.daily)

    @property
    def completed(self) -> int:
        """Sessions of the window that completed."""
        return sum(day.completed for day in self.daily)

    @property
    def success_rate(self) -> float | None:
        """Percent of the window's sessions that completed."""
        return _rate(self.completed, self.sessions)
