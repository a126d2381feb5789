"""A real browser opens both reports: headless Chromium, driven over the DevTools pipe.

Checks from the DOM: the counts, that each chart has its bars or points, that a test named
``<script>alert(1)`` is text, that the page made no request but its own file and logged no
console error. Screenshots go to the test's tmp dir, or to ``CARDLINK_REPORT_SCREENSHOTS``.
The README's ``docs/report-run.png`` and ``docs/report-sessions.png`` show the pages built
from a database: ``CARDLINK_REPORT_SCREENSHOTS=docs pytest tests/test_report_commands.py
-k browser`` regenerates them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardlink.database.reports import render_run_report, render_sessions_report, write_report
from chromium_pipe import Chromium, find_chromium
from report_samples import HOSTILE_NAME, sample_run_report, sample_sessions_report

MARKS = {"bars": "svg rect.rect", "points": "svg circle.dot"}

DOM_FACTS = """(() => {
  const counts = {};
  for (const el of document.querySelectorAll('[data-count]'))
    counts[el.dataset.count] = el.textContent.trim();
  const charts = {};
  for (const fig of document.querySelectorAll('figure.chart')) {
    const selector = fig.dataset.marks === 'bars' ? 'BARS' : 'POINTS';
    charts[fig.dataset.chart] = {
      marks: fig.querySelectorAll(selector).length,
      expected: Number(fig.dataset.expected),
      kind: fig.dataset.marks,
    };
  }
  return {counts, charts, scripts: document.querySelectorAll('script').length,
          text: document.body.innerText};
})()""".replace("BARS", MARKS["bars"]).replace("POINTS", MARKS["points"])


def _required() -> bool:
    names = {part.strip() for part in os.environ.get("CARDLINK_TEST_REQUIRE", "").split(",")}
    return "all" in names or "chromium" in names


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        reason = "Chromium is not installed (apt-get install chromium)"
        if _required():
            pytest.fail(f"{reason}; required by CARDLINK_TEST_REQUIRE")
        pytest.skip(reason)
    with Chromium(executable, tmp_path / "profile") as chromium:
        yield chromium


def _screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = os.environ.get("CARDLINK_REPORT_SCREENSHOTS")
    return Path(folder) / name if folder else tmp_path / name


def _open(browser: Chromium, html: str, path: Path, screenshot: Path) -> dict:
    write_report(html, path)
    browser.open(path.as_uri())
    browser.screenshot(screenshot)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    facts = browser.evaluate(DOM_FACTS)
    assert browser.requests() == [path.as_uri()]
    assert browser.console_errors() == []
    assert facts["scripts"] == 0
    for name, chart in facts["charts"].items():
        if chart["kind"] == "points":
            assert chart["marks"] == chart["expected"] > 0, name
        else:
            assert chart["marks"] >= chart["expected"] > 0, name
    return facts


def test_run_report_shows_its_counts_charts_and_escaped_names_offline(
    browser: Chromium, tmp_path: Path
) -> None:
    report = sample_run_report()
    facts = _open(
        browser,
        render_run_report(report),
        tmp_path / "report.html",
        _screenshot_path(tmp_path, "report-run-sample.png"),
    )
    counts = report.summary.counts
    assert facts["counts"] == {
        "total": str(counts.total),
        "passed": str(counts.passed),
        "failed": str(counts.failed),
        "error": str(counts.error),
        "skipped": str(counts.skipped),
        "pass-rate": f"{counts.pass_rate:.1f} %",
        "duration": "28m 32s",
        "regressions": "3",
        "fixes": "1",
        "flaky": "2",
        "slowest": "10",
        "failures": "3",
    }
    assert set(facts["charts"]) == {"suites", "trend"}
    assert facts["charts"]["suites"]["expected"] == len(report.suites)
    assert facts["charts"]["trend"]["marks"] == 30
    assert HOSTILE_NAME in facts["text"]
    assert "<b>not bold</b> & not markup" in facts["text"]
    assert "INSTALL [for install and make selectable]" in facts["text"]


def test_sessions_report_shows_its_counts_and_charts_offline(
    browser: Chromium, tmp_path: Path
) -> None:
    report = sample_sessions_report()
    facts = _open(
        browser,
        render_sessions_report(report),
        tmp_path / "sessions.html",
        _screenshot_path(tmp_path, "report-sessions-sample.png"),
    )
    assert facts["counts"] == {
        "sessions": str(report.sessions),
        "completed": str(report.completed),
        "not-completed": str(report.sessions - report.completed),
        "success-rate": f"{report.success_rate:.1f} %",
        "causes": "5",
        "commands": "4",
    }
    assert {name: chart["expected"] for name, chart in facts["charts"].items()} == {
        "daily": 30,
        "causes": 5,
        "commands": 4,
    }
    assert HOSTILE_NAME in facts["text"]


def test_a_page_that_reaches_out_or_logs_an_error_is_caught(
    browser: Chromium, tmp_path: Path
) -> None:
    """The checks above can fail: a remote image and a console error are both seen."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<img src="http://example.invalid/x.png"><script>console.error("boom")</script>'
    )
    browser.open(page.as_uri())
    assert "http://example.invalid/x.png" in browser.requests()
    assert "boom" in browser.console_errors()
