"""Synthetic inputs for the report tests: a nightly run with history, and 30 days of sessions.

Deterministic (seeded), small enough to read in a screenshot, and with one test named
``<script>alert(1)`` so every page also shows that names are escaped.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from cardlink.database import TestStatus
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
    StatusChange,
    StatusCounts,
    SuiteCounts,
    TrendPoint,
)

HOSTILE_NAME = "<script>alert(1)"
SUITES = {
    "scp81.tls_psk": StatusCounts(passed=41, failed=2, skipped=1, error=0),
    "scp81.admin_http": StatusCounts(passed=36, failed=1, skipped=0, error=1),
    "ota.install": StatusCounts(passed=28, failed=0, skipped=3, error=0),
    "ota.ram_rfm": StatusCounts(passed=22, failed=3, skipped=0, error=0),
    "uicc.file_system": StatusCounts(passed=54, failed=0, skipped=2, error=0),
    HOSTILE_NAME: StatusCounts(passed=5, failed=1, skipped=0, error=0),
}
START = datetime(2026, 12, 5, 22, 0, tzinfo=timezone.utc)


def _total(counts: list[StatusCounts]) -> StatusCounts:
    return StatusCounts(
        passed=sum(c.passed for c in counts),
        failed=sum(c.failed for c in counts),
        skipped=sum(c.skipped for c in counts),
        error=sum(c.error for c in counts),
    )


def sample_run_report() -> RunReport:
    """Run ``nightly-30`` against ``nightly-29``, with 30 runs of trend."""
    rng = random.Random(17)
    counts = _total(list(SUITES.values()))
    trend = []
    for night in range(1, 31):
        total = 180 + night // 3
        failed = max(0, round(rng.gauss(9, 4)) - night // 6)
        skipped = rng.randint(2, 7)
        point_counts = StatusCounts(
            passed=total - failed - skipped, failed=failed, skipped=skipped, error=0
        )
        duration_ms = rng.randint(1_500_000, 1_900_000)
        if night == 30:
            point_counts, duration_ms = counts, 1_712_400
        trend.append(
            TrendPoint(
                run_id=f"nightly-{night}",
                counts=point_counts,
                duration_ms=duration_ms,
                started_at=START - timedelta(days=30 - night),
            )
        )
    exchange = FailingExchange.from_apdu("80E60C002B", "6A80", session_id="3f2c9a51")
    return RunReport(
        summary=RunSummary(
            run_id="nightly-30",
            counts=counts,
            duration_ms=1_712_400,
            started_at=START,
            ended_at=START + timedelta(milliseconds=1_712_400),
            environment={
                "device": "Quectel EG25-G",
                "card": "89440000000000012345",
                "server": "cardlink 1.0.0",
                "revision": "a1b2c3d",
                "tags": "nightly, scp81",
            },
        ),
        suites=[SuiteCounts(suite, suite_counts) for suite, suite_counts in SUITES.items()],
        trend=trend,
        baseline_run_id="nightly-29",
        regressions=[
            StatusChange(
                "ota.ram_rfm",
                "test_install_for_load_rejected",
                TestStatus.PASSED,
                TestStatus.FAILED,
            ),
            StatusChange("scp81.tls_psk", "test_psk_identity_rotation", None, TestStatus.FAILED),
            StatusChange(HOSTILE_NAME, HOSTILE_NAME, TestStatus.PASSED, TestStatus.FAILED),
        ],
        fixes=[
            StatusChange(
                "uicc.file_system", "test_select_by_path", TestStatus.FAILED, TestStatus.PASSED
            ),
        ],
        flaky=[
            FlakyTest("scp81.admin_http", "test_chunked_post_response", 6, "nightly-30", START),
            FlakyTest(
                "ota.install", "test_load_large_cap", 3, "nightly-27", START - timedelta(days=3)
            ),
        ],
        slowest=[
            SlowTest("ota.install", f"test_load_cap_{size}k", 40_000 + size * 700)
            for size in (8, 16, 32, 64, 96, 128, 160, 192, 224, 256, 320)
        ],
        failures=[
            FailureDetail(
                "ota.ram_rfm",
                "test_install_for_load_rejected",
                TestStatus.FAILED,
                "AssertionError: expected 9000, card answered 6A80",
                exchange,
            ),
            FailureDetail(
                "scp81.admin_http",
                "test_retry_after_503",
                TestStatus.ERROR,
                "TimeoutError: no POST from the card within 30 s",
            ),
            FailureDetail(
                HOSTILE_NAME, HOSTILE_NAME, TestStatus.FAILED, "<b>not bold</b> & not markup", None
            ),
        ],
    )


def sample_sessions_report() -> SessionsReport:
    """30 days of OTA sessions, their failure causes and the commands that drew errors."""
    rng = random.Random(13)
    first = date(2026, 11, 6)
    daily = []
    for offset in range(30):
        sessions = rng.randint(60, 140)
        daily.append(
            DailyOtaRate(
                first + timedelta(days=offset),
                sessions,
                sessions - rng.randint(0, max(1, sessions // 8)),
            )
        )
    return SessionsReport(
        days=30,
        daily=daily,
        causes=[
            FailureCause("timeout", 118),
            FailureCause("TLS handshake failed", 64),
            FailureCause("card answered 6A80", 41),
            FailureCause("HTTP 503 from the server", 17),
            FailureCause(HOSTILE_NAME, 2),
        ],
        commands=[
            CommandErrors(
                "INSTALL [for load]", 57, "6A80", "incorrect parameters in the data field"
            ),
            CommandErrors("LOAD", 33, "6581", "memory failure"),
            CommandErrors("SELECT", 21, "6A82", "file or application not found"),
            CommandErrors("PUT KEY", 9, "6982", "security status not satisfied"),
        ],
    )
