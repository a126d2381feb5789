"""The reports built from the database, and the commands that write them and load JUnit.

A month of nightly runs and a week of OTA sessions are stored through the repositories;
``cardlink-db report`` writes both pages, and headless Chromium opens them. Its screenshots
are the README's: ``CARDLINK_REPORT_SCREENSHOTS=docs pytest tests/test_report_commands.py
-k browser`` writes ``docs/report-run.png`` and ``docs/report-sessions.png``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cardlink.database import DatabaseManager, TestStatus, UnitOfWork
from cardlink.database.reports import build_run_report, build_sessions_report
from chromium_pipe import Chromium
from test_cli import invoke
from test_junit import SUREFIRE
from test_report_browser import _open, _screenshot_path, browser  # noqa: F401 (fixture)

HOSTILE = "<script>alert(1)"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
RUNS = [f"nightly-{night:02d}" for night in range(1, 31)]
P, F, S = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED


def url_of(manager: DatabaseManager) -> str:
    return manager.config.url.render_as_string(hide_password=False)


def _statuses(night: int) -> dict[tuple[str, str], list[TestStatus]]:
    """Each test's attempts on night 1..30: a regression and a retry on the last night, a
    fix against the night before, a test that flips every night, one always skipped."""
    last = night == 30
    return {
        ("ota.install", "test_install"): [F if last else P],
        ("ota.install", "test_delete"): [P],
        ("ota.install", "test_skip"): [S],
        ("scp81.tls_psk", "test_handshake"): [F if night == 29 else P],
        ("scp81.tls_psk", "test_flaky"): [P if night % 2 else F],
        ("scp81.tls_psk", "test_retry"): [F, P] if last else [P],
        ("scp81.tls_psk", "test_cipher"): [P],
        (HOSTILE, "test_escaped"): [P],
    }


def seed_history(manager: DatabaseManager) -> None:
    """30 nightly runs a day apart, the last one's INSTALL failure linked to its session."""
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="admin")
        at = NOW - timedelta(hours=1)
        uow.logs.add_log(session.id, "command", "00A4040007A0000000871002", timestamp=at)
        uow.logs.add_log(session.id, "response", "9000", timestamp=at + timedelta(seconds=1))
        uow.logs.add_log(session.id, "command", "80E60C0000", timestamp=at + timedelta(seconds=2))
        uow.logs.add_log(session.id, "response", "6A80", timestamp=at + timedelta(seconds=3))
        for night, run_id in enumerate(RUNS, start=1):
            started = NOW - timedelta(days=30 - night, hours=2)
            uow.tests.start_run(run_id, started_at=started, device="modem-1", tags=["nightly"])
            for index, ((suite, test), attempts) in enumerate(_statuses(night).items()):
                for attempt, status in enumerate(attempts, start=1):
                    uow.tests.create_result(
                        run_id,
                        suite,
                        test,
                        status,
                        attempt=attempt,
                        duration_ms=100 * (index + 1),
                        error_message="card answered 6A80" if status is F else None,
                        session_id=session.id if test == "test_install" and night == 30 else None,
                    )
            uow.tests.finish_run(run_id, ended_at=started + timedelta(minutes=30))
        uow.commit()


def seed_sessions(manager: DatabaseManager) -> None:
    """Three days of sessions: 4, 3 and 2 a day, one failed with a TLS alert each day and
    one timeout on the last; error responses to INSTALL (6A80 twice) and DELETE (6A88)."""
    with UnitOfWork(manager) as uow:
        for day, count in enumerate((4, 3, 2)):
            base = NOW - timedelta(days=3 - day, hours=1)
            for number in range(count):
                at = base + timedelta(minutes=number)
                session = uow.sessions.create_session(session_type="admin")
                uow.sessions.start_session(session.id, at=at)
                if number == 0:
                    uow.sessions.fail_session(session.id, "TLS_ALERT", "bad record mac", at=at)
                elif day == 2 and number == 1:
                    uow.sessions.timeout_session(session.id, at=at + timedelta(seconds=30))
                else:
                    uow.sessions.complete_session(session.id, at=at + timedelta(seconds=5))
                if number == 0:
                    command = "80E60C0000" if day < 2 else "80E4000000"
                    word = "6A80" if day < 2 else "6A88"
                    uow.logs.add_log(session.id, "command", command, timestamp=at)
                    uow.logs.add_log(
                        session.id, "response", word, timestamp=at + timedelta(seconds=1)
                    )
        uow.commit()


def test_the_run_report_is_built_from_the_database(manager: DatabaseManager) -> None:
    seed_history(manager)
    with UnitOfWork(manager) as uow:
        report = build_run_report(uow, "nightly-30")
        other = build_run_report(uow, "nightly-30", baseline="nightly-28")
        earlier = build_run_report(uow, "nightly-10")
    counts = report.summary.counts
    assert (counts.total, counts.passed, counts.failed, counts.skipped) == (8, 5, 2, 1)
    assert report.summary.environment == {"device": "modem-1", "tags": "nightly"}
    assert [(s.suite, s.counts.total) for s in report.suites] == [
        (HOSTILE, 1),
        ("ota.install", 3),
        ("scp81.tls_psk", 4),
    ]
    assert report.baseline_run_id == "nightly-29"
    assert [(c.test_name, c.before, c.after) for c in report.regressions] == [
        ("test_install", P, F),
        ("test_flaky", P, F),
    ]
    assert [(c.test_name, c.before, c.after) for c in report.fixes] == [("test_handshake", F, P)]
    # Against night 28: test_flaky failed then too, test_handshake passed then too.
    assert [c.test_name for c in other.regressions] == ["test_install"] and other.fixes == []
    assert [point.run_id for point in report.trend] == RUNS
    flaky = {test.test_name: test.flips for test in report.flaky}
    # Every pass/fail flip counts, so the regression and the fix are in the window too.
    assert flaky == {"test_flaky": 19, "test_handshake": 2, "test_install": 1, "test_retry": 1}
    assert report.flaky[0].test_name == "test_flaky" and report.flaky[0].last_flip_run == RUNS[-1]
    assert [test.test_name for test in report.slowest][:2] == ["test_escaped", "test_cipher"]
    assert len(report.slowest) == 8  # fewer tests than ten
    failures = {failure.test_name: failure for failure in report.failures}
    assert set(failures) == {"test_install", "test_flaky"}
    exchange = failures["test_install"].exchange
    assert exchange is not None and exchange.command.startswith("INSTALL")
    assert exchange.status_word == "6A80" and "incorrect" in exchange.meaning
    assert failures["test_flaky"].exchange is None
    assert [point.run_id for point in earlier.trend] == RUNS[:10]
    assert earlier.baseline_run_id == "nightly-09"


def test_the_sessions_report_is_built_from_the_database(manager: DatabaseManager) -> None:
    seed_sessions(manager)
    with UnitOfWork(manager) as uow:
        report = build_sessions_report(uow, days=30)
        short = build_sessions_report(uow, days=2)
    assert [(day.sessions, day.completed) for day in report.daily] == [(4, 3), (3, 2), (2, 0)]
    assert [(cause.cause, cause.count) for cause in report.causes] == [
        ("TLS_ALERT", 3),
        ("TIMEOUT", 1),
    ]
    assert [(c.command.split(" ")[0], c.errors, c.status_word) for c in report.commands] == [
        ("INSTALL", 2, "6A80"),
        ("DELETE", 1, "6A88"),
    ]
    assert short.sessions == 2  # the window starts two days ago


def test_the_report_commands_write_pages_a_browser_shows_from_the_database(
    manager: DatabaseManager,
    browser: Chromium,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    seed_history(manager)
    seed_sessions(manager)
    url = url_of(manager)
    run_page, sessions_page = tmp_path / "report.html", tmp_path / "sessions.html"
    assert "Wrote" in invoke(url, "report", "nightly-30", "--output", str(run_page)).stdout
    invoke(url, "report", "sessions", "--days", "30", "--output", str(sessions_page))
    with UnitOfWork(manager) as uow:
        run = build_run_report(uow, "nightly-30")
        sessions = build_sessions_report(uow, days=30)

    facts = _open(
        browser,
        run_page.read_text(encoding="utf-8"),
        run_page,
        _screenshot_path(tmp_path, "report-run.png"),
    )
    counts = run.summary.counts
    assert {key: facts["counts"][key] for key in ("total", "passed", "failed", "skipped")} == {
        "total": str(counts.total),
        "passed": str(counts.passed),
        "failed": str(counts.failed),
        "skipped": str(counts.skipped),
    }
    assert facts["counts"]["regressions"] == "2" and facts["counts"]["flaky"] == "4"
    assert facts["charts"]["trend"]["marks"] == 30
    assert facts["charts"]["suites"]["expected"] == 3
    assert HOSTILE in facts["text"] and "INSTALL" in facts["text"] and "6A80" in facts["text"]

    facts = _open(
        browser,
        sessions_page.read_text(encoding="utf-8"),
        sessions_page,
        _screenshot_path(tmp_path, "report-sessions.png"),
    )
    # 9 sessions of seed_sessions, and the one the run's failure drove (still pending).
    assert facts["counts"]["sessions"] == str(sessions.sessions) == "10"
    assert facts["counts"]["completed"] == "5"
    assert {name: chart["expected"] for name, chart in facts["charts"].items()} == {
        "daily": len(sessions.daily),
        "causes": 2,
        "commands": 2,
    }


def test_report_names_a_missing_run_or_baseline_in_one_line(manager: DatabaseManager) -> None:
    seed_history(manager)
    url = url_of(manager)
    for args, expected in (
        (("report", "nightly-99"), "test run 'nightly-99' not found"),
        (("report", "nightly-30", "--baseline", "x"), "baseline test run 'x' not found"),
        (("report", "sessions", "--baseline", "x"), "--baseline is for a run report"),
    ):
        result = invoke(url, *args, "--output", "out.html", ok=False)
        assert result.exit_code == 1 and expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_tests_import_loads_a_surefire_file_and_refuses_a_malformed_one_whole(
    manager: DatabaseManager, tmp_path: Path
) -> None:
    url = url_of(manager)
    good, bad = tmp_path / "TEST-OtaIT.xml", tmp_path / "broken.xml"
    good.write_bytes(SUREFIRE)
    bad.write_bytes(SUREFIRE.replace(b"</testsuite>", b""))
    result = invoke(url, "tests", "import", str(good), "--run-id", "mvn-7")
    assert result.stdout == f"Imported {good} as run mvn-7: 7 results\n"
    result = invoke(url, "tests", "import", str(bad), "--run-id", "mvn-8", ok=False)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"{bad}: not well-formed XML" in line
    with UnitOfWork(manager) as uow:
        assert uow.tests.get_run("mvn-8") is None and uow.tests.find_by_run("mvn-8") == []


@pytest.mark.parametrize("args", [("tests", "import", "--help"), ("report", "--help")])
def test_the_new_commands_have_help_with_an_example(args: tuple[str, ...]) -> None:
    assert "Example:" in invoke(None, *args).stdout
