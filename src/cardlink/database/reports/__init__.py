"""Reports people look at: the run report and the OTA sessions report, as one HTML file each.

Fill the dataclasses of :mod:`.inputs` (from queries, a JUnit file or a test), then
render: ``write_report(render_run_report(report), "report.html")``. The page has its
CSS and its charts (SVG from pygal) inline, and needs no network.
"""

from __future__ import annotations

from .build import build_run_report, build_sessions_report
from .inputs import (
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
    changes_against_baseline,
)
from .render import render_run_report, render_sessions_report, write_report

__all__ = [
    "CommandErrors",
    "DailyOtaRate",
    "FailingExchange",
    "FailureCause",
    "FailureDetail",
    "FlakyTest",
    "RunReport",
    "RunSummary",
    "SessionsReport",
    "SlowTest",
    "StatusChange",
    "StatusCounts",
    "SuiteCounts",
    "TrendPoint",
    "build_run_report",
    "build_sessions_report",
    "changes_against_baseline",
    "render_run_report",
    "render_sessions_report",
    "write_report",
]
