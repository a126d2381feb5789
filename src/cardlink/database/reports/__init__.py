"""Reports people look at: the run report and the OTA sessions report, as one HTML file each.

Fill the dataclasses of :mod:`.inputs` (from queries, a JUnit file or a test), then
render: ``write_report(render_run_report(report), "report.html")``. The page has its
CSS and its charts (SVG from pygal) inline, and needs no network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .render import render_run_report, render_sessions_report, write_report

#: Names of ``.render``, imported on first use: it loads Jinja2 and pygal, which every
#: command line start would otherwise pay for (the repositories import ``.inputs``).
_RENDER_NAMES = frozenset({"render_run_report", "render_sessions_report", "write_report"})


def __getattr__(name: str) -> Any:
    if name in _RENDER_NAMES:
        from . import render  # deferred: Jinja2 and pygal load only when a page is written

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
