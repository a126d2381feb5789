"""Render the reports to one self-contained HTML file each, from Jinja2 templates.

Autoescaping is on for every template: a test named ``<script>alert(1)`` shows as
text. The only markup let through unescaped is the charts' SVG, which pygal builds
as an element tree (so it escapes labels itself) and :mod:`.charts` strips of scripts.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from . import charts
from .inputs import RunReport, SessionsReport

#: The run report lists this many failures, each message cut at this many characters, so a
#: run where everything broke still gives a page a browser opens at once (the JUnit export
#: keeps them all).
FAILURES_SHOWN = 500
MESSAGE_LENGTH = 2000
#: What a report shows for a value it does not have.
NO_VALUE = "\N{EN DASH}"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("cardlink.database.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = format_duration
    environment.filters["percent"] = format_percent
    environment.filters["when"] = format_when
    return environment


def format_duration(milliseconds: int | float | None) -> str:
    """``1234`` -> ``1.23 s``; ``1712400`` -> ``28m 32s``; ``3723000`` -> ``1h 02m``: short,
    so a summary tile holds it."""
    if milliseconds is None:
        return NO_VALUE
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_percent(value: float | None) -> str:
    """``97.456`` -> ``97.5 %``; no tests -> a dash."""
    return NO_VALUE if value is None else f"{value:.1f} %"


def format_when(value: datetime | None) -> str:
    """A UTC timestamp to the minute, or a dash."""
    if value is None:
        return NO_VALUE
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def render_run_report(report: RunReport, *, generated_at: datetime | None = None) -> str:
    """The run report as one HTML page: summary, suites, trend, changes, flaky, slow, failures."""
    trend = list(report.trend)[-RunReport.TREND_RUNS :]
    slowest = sorted(report.slowest, key=lambda test: test.duration_ms, reverse=True)
    return (
        _environment()
        .get_template("run.html.j2")
        .render(
            report=report,
            summary=report.summary,
            trend=trend,
            slowest=slowest[: RunReport.SLOWEST],
            failures_shown=FAILURES_SHOWN,
            message_length=MESSAGE_LENGTH,
            suites_chart=charts.suites_chart(report.suites) if report.suites else None,
            trend_chart=charts.trend_chart(trend) if trend else None,
            generated_at=generated_at or datetime.now(timezone.utc),
        )
    )


def render_sessions_report(report: SessionsReport, *, generated_at: datetime | None = None) -> str:
    """The sessions report as one HTML page: daily OTA success, failure causes, commands."""
    return (
        _environment()
        .get_template("sessions.html.j2")
        .render(
            report=report,
            daily_chart=charts.daily_rate_chart(report.daily) if report.daily else None,
            causes_chart=charts.causes_chart(report.causes) if report.causes else None,
            commands_chart=charts.commands_chart(report.commands) if report.commands else None,
            generated_at=generated_at or datetime.now(timezone.utc),
        )
    )


def write_report(html: str, output: str | os.PathLike[str]) -> Path:
    """Write a rendered report as UTF-8 and return its path."""
    path = Path(output)
    path.write_text(html, encoding="utf-8")
    return path
