"""The reports' charts: pygal renders them to SVG on the server, fully offline.

pygal links its tooltip script from a CDN by default and always adds an inline config
script. Both go: ``js=[]`` drops the link and :func:`_svg` removes the inline script,
so a chart is plain SVG, with its CSS inside, that needs no network and runs no code.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

from .inputs import CommandErrors, DailyOtaRate, FailureCause, SuiteCounts, TrendPoint

PASSED_COLOUR = "#2e9d5b"
FAILED_COLOUR = "#d64545"
SKIPPED_COLOUR = "#a0a8b4"
ERROR_COLOUR = "#e08a1e"
ACCENT_COLOUR = "#3566b8"

_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif'


def _style(*colours: str) -> Style:
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="#3b4350",
        foreground_strong="#1d232c",
        foreground_subtle="#d9dee5",
        colors=colours or (ACCENT_COLOUR,),
        font_family=_FONT,
        label_font_family=_FONT,
        major_label_font_family=_FONT,
        value_font_family=_FONT,
        legend_font_family=_FONT,
        title_font_family=_FONT,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        value_font_size=12,
    )


def _options(**extra: object) -> dict[str, object]:
    options: dict[str, object] = {
        "js": [],  # no <script href> to a CDN
        "disable_xml_declaration": True,  # inline in HTML
        "show_legend": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "truncate_label": 28,
        "margin": 12,
    }
    options.update(extra)
    return options


def _count_ticks(largest: int) -> list[int]:
    """Whole-number ticks from 0 past ``largest``, at most seven: counts have no 0.2."""
    step = max(1, math.ceil(largest / 6))
    return list(range(0, max(largest, 1) + step, step))


def _short(label: str, length: int = 24) -> str:
    """A bar's label cut to ``length`` characters (the table beside it has it whole)."""
    return label if len(label) <= length else label[: length - 1].rstrip() + "…"


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    """The chart's SVG without pygal's inline script, ready to inline in the page."""
    root = chart.render_tree()
    for parent in root.iter():
        for script in [
            child for child in parent if isinstance(child.tag, str) and child.tag.endswith("script")
        ]:
            parent.remove(script)
    return Markup(ET.tostring(root, encoding="unicode"))


def suites_chart(suites: Sequence[SuiteCounts]) -> Markup:
    """Passed/failed/skipped/error per suite, as horizontal stacked bars."""
    chart = pygal.HorizontalStackedBar(
        **_options(
            style=_style(PASSED_COLOUR, FAILED_COLOUR, SKIPPED_COLOUR, ERROR_COLOUR),
            height=max(220, 90 + 32 * len(suites)),
            width=900,
            y_labels=_count_ticks(max((suite.counts.total for suite in suites), default=0)),
        )
    )
    suites = list(reversed(suites))  # pygal draws the first label at the bottom
    chart.x_labels = [suite.suite for suite in suites]
    chart.add("passed", [suite.counts.passed for suite in suites])
    chart.add("failed", [suite.counts.failed for suite in suites])
    chart.add("skipped", [suite.counts.skipped for suite in suites])
    chart.add("error", [suite.counts.error for suite in suites])
    return _svg(chart)


def trend_chart(trend: Sequence[TrendPoint]) -> Markup:
    """Pass rate per run, oldest first, as a line with a point per run."""
    chart = pygal.Line(
        **_options(
            style=_style(ACCENT_COLOUR),
            height=320,
            width=900,
            range=(0, 100),
            x_label_rotation=35,
            show_legend=False,
            dots_size=4,
            fill=False,
        )
    )
    chart.x_labels = [point.run_id for point in trend]
    chart.add("pass rate %", [point.counts.pass_rate for point in trend])
    return _svg(chart)


def daily_rate_chart(daily: Sequence[DailyOtaRate]) -> Markup:
    """OTA success rate per day, as a line with a point per day."""
    chart = pygal.Line(
        **_options(
            style=_style(ACCENT_COLOUR),
            height=320,
            width=900,
            range=(0, 100),
            x_label_rotation=35,
            show_legend=False,
            dots_size=4,
        )
    )
    chart.x_labels = [day.day.isoformat() for day in daily]
    chart.add("success rate %", [day.success_rate for day in daily])
    return _svg(chart)


def causes_chart(causes: Sequence[FailureCause]) -> Markup:
    """Failed sessions per cause, as horizontal bars."""
    chart = pygal.HorizontalBar(
        **_options(
            style=_style(FAILED_COLOUR),
            height=max(200, 80 + 32 * len(causes)),
            width=460,  # half the page wide: drawn at its size, the labels stay legible
            show_legend=False,
            y_labels=_count_ticks(max((cause.count for cause in causes), default=0)),
        )
    )
    causes = list(reversed(causes))
    chart.x_labels = [_short(cause.cause) for cause in causes]
    chart.add("failed sessions", [cause.count for cause in causes])
    return _svg(chart)


def commands_chart(commands: Sequence[CommandErrors]) -> Markup:
    """Error responses per command, as horizontal bars."""
    chart = pygal.HorizontalBar(
        **_options(
            style=_style(ERROR_COLOUR),
            height=max(200, 80 + 32 * len(commands)),
            width=460,
            show_legend=False,
            y_labels=_count_ticks(max((command.errors for command in commands), default=0)),
        )
    )
    commands = list(reversed(commands))
    chart.x_labels = [_short(command.command) for command in commands]
    chart.add("errors", [command.errors for command in commands])
    return _svg(chart)
