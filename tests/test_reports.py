"""The reports as HTML text: self-contained, escaped, and right about what they count."""

from __future__ import annotations

import re

from cardlink.database import TestStatus
from cardlink.database.reports import (
    FailingExchange,
    RunReport,
    RunSummary,
    SessionsReport,
    StatusChange,
    StatusCounts,
    changes_against_baseline,
    render_run_report,
    render_sessions_report,
)
from cardlink.database.reports.render import format_duration
from report_samples import HOSTILE_NAME, sample_run_report, sample_sessions_report


def _pages() -> list[str]:
    return [
        render_run_report(sample_run_report()),
        render_sessions_report(sample_sessions_report()),
    ]


def test_a_report_is_one_file_that_needs_no_network_and_runs_no_script() -> None:
    for html in _pages():
        assert "<script" not in html.lower()
        assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", html)
        assert not re.search(r"url\(\s*['\"]?(?!data:|#)", html)
        assert "@import" not in html
        assert html.count("<svg") >= 2


def test_a_test_named_like_a_script_tag_shows_as_text() -> None:
    for html in _pages():
        assert HOSTILE_NAME not in html
        assert "&lt;script&gt;alert(1)" in html


def test_pass_rate_leaves_skipped_tests_out_and_is_none_when_nothing_ran() -> None:
    assert StatusCounts(passed=3, failed=1, skipped=6).pass_rate == 75.0
    assert StatusCounts(skipped=2).pass_rate is None


def test_regressions_and_fixes_against_the_baseline() -> None:
    baseline = {
        ("s", "a"): TestStatus.PASSED,
        ("s", "b"): TestStatus.FAILED,
        ("s", "c"): TestStatus.ERROR,
    }
    current = {
        ("s", "a"): TestStatus.FAILED,
        ("s", "b"): TestStatus.PASSED,
        ("s", "c"): TestStatus.FAILED,
        ("s", "new"): TestStatus.ERROR,
    }
    regressions, fixes = changes_against_baseline(baseline, current)
    assert regressions == [
        StatusChange("s", "a", TestStatus.PASSED, TestStatus.FAILED),
        StatusChange("s", "new", None, TestStatus.ERROR),
    ]
    assert fixes == [StatusChange("s", "b", TestStatus.FAILED, TestStatus.PASSED)]


def test_a_failing_exchange_is_named_as_the_trace_view_names_it() -> None:
    exchange = FailingExchange.from_apdu("00a4040007a0000001510000", "6a82", session_id="s1")
    assert (exchange.command, exchange.status_word) == ("SELECT", "6A82")
    assert exchange.as_text() == f"SELECT -> 6A82 {exchange.meaning} (session s1)"


def test_empty_reports_render_without_charts() -> None:
    run = render_run_report(RunReport(RunSummary("empty", StatusCounts())))
    sessions = render_sessions_report(SessionsReport(days=30))
    assert "Nothing failed." in run and "<svg" not in run
    assert "No sessions in the window." in sessions and "<svg" not in sessions


def test_durations_read_short_for_people() -> None:
    assert [format_duration(ms) for ms in (None, 850, 51_204, 1_712_400, 3_723_000)] == [
        "\N{EN DASH}",
        "850 ms",
        "51.20 s",
        "28m 32s",
        "1h 02m",
    ]
