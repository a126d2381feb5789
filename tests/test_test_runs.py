"""Runs as records, a test's history, flaky tests, the trend, and JUnit out and in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import xmlschema
from sqlalchemy import text

from cardlink.database import (
    DatabaseManager,
    NotFoundError,
    TestRun,
    TestStatus,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.repositories import test_history
from cardlink.database.transfer.junit import JUNIT_SCHEMA
from test_junit import GOTESTSUM, SUREFIRE

SCHEMA = xmlschema.XMLSchema(str(JUNIT_SCHEMA))
T0 = datetime(2026, 12, 1, 20, 0, tzinfo=timezone.utc)
P, F, S, E = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED, TestStatus.ERROR


def store_runs(manager: DatabaseManager, runs: dict[str, dict[str, list[TestStatus]]]) -> None:
    """Runs one hour apart, in order; each test's list holds its attempts' statuses."""
    with UnitOfWork(manager) as uow:
        for hour, (run_id, tests) in enumerate(runs.items()):
            started = T0 + timedelta(hours=hour)
            uow.tests.start_run(run_id, started_at=started)
            for test_name, attempts in tests.items():
                for attempt, status in enumerate(attempts, start=1):
                    uow.tests.create_result(
                        run_id, "ota", test_name, status, attempt=attempt, duration_ms=100
                    )
        uow.commit()


def test_a_run_holds_its_span_environment_and_totals(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.tests.start_run(
            "nightly-1", device="modem-1", card="8944", server_version="2.1", tags=["ota"]
        )
        uow.tests.create_result("nightly-1", "ota", "test_a", F, attempt=1, duration_ms=40)
        uow.tests.create_result("nightly-1", "ota", "test_a", P, attempt=2, duration_ms=60)
        uow.tests.create_result("nightly-1", "ota", "test_b", S)
        uow.tests.create_result("nightly-1", "ota", "test_c", E, duration_ms=5)
        uow.tests.finish_run("nightly-1")
        uow.commit()
    with UnitOfWork(manager) as uow:
        run = uow.tests.get_run("nightly-1")
        assert isinstance(run, TestRun)
        assert run.environment == {
            "device": "modem-1",
            "card": "8944",
            "server_version": "2.1",
            "tags": ["ota"],
        }
        assert (run.total, run.passed, run.failed, run.skipped, run.error) == (3, 1, 0, 1, 1)
        assert run.duration_ms == 65  # each test by its last attempt
        assert run.started_at is not None and run.ended_at is not None
        assert run.ended_at >= run.started_at
        with pytest.raises(NotFoundError):
            uow.tests.finish_run("never-started")


def test_a_result_for_an_unknown_run_works_as_the_guide_writes_it_and_creates_the_run(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.tests.create_result("test_run_001", "scp81", "test_psk_handshake", "passed")
        uow.commit()
    with UnitOfWork(manager) as uow:
        run = uow.tests.get_run("test_run_001")
        assert run is not None and run.started_at is not None
        (result,) = uow.tests.find_by_run("test_run_001")
        assert result.attempt == 1 and result.session_id is None
        with pytest.raises(ValidationError, match="attempt"):
            uow.tests.create_result("test_run_001", "scp81", "t", "passed", attempt=0)


def test_a_result_links_its_session_and_loses_the_link_when_the_session_goes(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="admin")
        uow.tests.create_result("r", "ota", "t", "failed", session_id=session.id)
        uow.commit()
        session_id = session.id
    with UnitOfWork(manager) as uow:
        (result,) = uow.tests.find_by_run("r")
        assert result.session_id == session_id
        assert uow.sessions.delete_by_id(session_id)
        uow.commit()
    with UnitOfWork(manager) as uow:
        (result,) = uow.tests.find_by_run("r")
        assert result.session_id is None


def test_history_is_one_tests_status_across_runs_newest_first(manager: DatabaseManager) -> None:
    store_runs(
        manager,
        {
            "r1": {"test_a": [P], "test_b": [P]},
            "r2": {"test_a": [F]},
            "r3": {"test_a": [F, P]},
            "r4": {"test_b": [F]},
        },
    )
    with UnitOfWork(manager) as uow:
        history = uow.tests.history("ota", "test_a")
        assert [(r.run_id, r.status, r.attempt) for r in history] == [
            ("r3", P, 2),
            ("r2", F, 1),
            ("r1", P, 1),
        ]
        assert [r.run_id for r in uow.tests.history("ota", "test_a", last=2)] == ["r3", "r2"]
        assert uow.tests.history("ota", "missing") == []
        with pytest.raises(ValidationError, match="last"):
            uow.tests.history("ota", "test_a", last=0)


def test_flaky_counts_flips_across_runs_and_passes_on_retry(manager: DatabaseManager) -> None:
    store_runs(
        manager,
        {
            "r1": {"flipper": [P], "steady": [P], "retried": [P], "broken": [F], "skippy": [P]},
            "r2": {"flipper": [F], "steady": [P], "retried": [P], "broken": [F], "skippy": [S]},
            "r3": {"flipper": [P], "steady": [P], "retried": [F, P], "broken": [F], "skippy": [P]},
            "r4": {"flipper": [P], "steady": [P], "retried": [P], "broken": [E], "skippy": [P]},
        },
    )
    with UnitOfWork(manager) as uow:
        flaky = {test.test_name: test for test in uow.tests.flaky()}
        assert set(flaky) == {"flipper", "retried"}
        assert flaky["flipper"].flips == 2 and flaky["flipper"].last_flip_run == "r3"
        assert flaky["retried"].flips == 1 and flaky["retried"].last_flip_run == "r3"
        assert flaky["retried"].last_flip_at == T0 + timedelta(hours=2)
        # A window of the last two runs (r3, r4) holds only r3's retry and r3 -> r4 (no flip).
        window = {test.test_name: test.flips for test in uow.tests.flaky(last_runs=2)}
        assert window == {"retried": 1}


def test_flaky_passes_over_skipped_and_missing_runs_across_a_long_window(
    manager: DatabaseManager,
) -> None:
    """70 runs, a test skipped or missing in most of them: flips are counted between the
    runs it has an outcome in."""
    runs: dict[str, dict[str, list[TestStatus]]] = {}
    for night in range(70):
        tests = {"steady": [P], "alternating": [P if night % 2 else F]}
        # Fails in runs 0 and 69 only, skipped or missing in between: one flip each way.
        tests["gappy"] = [F] if night in (0, 69) else [P] if night in (10, 50) else [S]
        if night % 3 == 0:
            del tests["gappy"]
        if night in (0, 69):
            tests["gappy"] = [F]
        runs[f"n{night:02d}"] = tests
    store_runs(manager, runs)
    with UnitOfWork(manager) as uow:
        flaky = uow.tests.flaky(last_runs=70)
        assert [(test.test_name, test.flips, test.last_flip_run) for test in flaky] == [
            ("alternating", 69, "n69"),
            ("gappy", 2, "n69"),
        ]
        assert flaky[1].last_flip_at == T0 + timedelta(hours=69)
        # From n50: n50..n69 of gappy is P then F (the runs between skip or miss it).
        assert [(t.test_name, t.flips) for t in uow.tests.flaky(last_runs=20)] == [
            ("alternating", 19),
            ("gappy", 1),
        ]


def test_the_history_queries_put_the_planner_setting_back(manager: DatabaseManager) -> None:
    store_runs(manager, {"r1": {"retried": [F, P]}, "r2": {"retried": [P]}})
    setting = test_history.PLANNER_SETTINGS.get(manager.engine.dialect.name)
    with UnitOfWork(manager) as uow:
        before = uow.session.scalar(text(setting[0])) if setting else None
        assert [point.run_id for point in uow.tests.trend()] == ["r1", "r2"]
        assert [test.test_name for test in uow.tests.flaky()] == ["retried"]
        assert (uow.session.scalar(text(setting[0])) if setting else None) == before


def test_trend_gives_counts_pass_rate_and_duration_per_run_oldest_first(
    manager: DatabaseManager,
) -> None:
    store_runs(
        manager,
        {
            "r1": {"a": [P], "b": [P], "c": [S]},
            "r2": {"a": [F], "b": [P], "c": [S]},
            "r3": {"a": [F, P], "b": [E], "c": [P]},
        },
    )
    with UnitOfWork(manager) as uow:
        trend = uow.tests.trend()
        assert [point.run_id for point in trend] == ["r1", "r2", "r3"]
        assert [
            (point.counts.passed, point.counts.failed, point.counts.skipped, point.counts.error)
            for point in trend
        ] == [(2, 0, 1, 0), (1, 1, 1, 0), (2, 0, 0, 1)]
        assert [point.counts.pass_rate for point in trend] == [100.0, 50.0, 200 / 3]
        assert [point.duration_ms for point in trend] == [300, 300, 300]
        assert trend[0].started_at == T0
        assert [point.run_id for point in uow.tests.trend(last_runs=2)] == ["r2", "r3"]


def _linked_failure(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.tests.start_run("nightly", device="modem-1", revision="abc123", tags=["ota", "psk"])
        session = uow.sessions.create_session(session_type="admin")
        uow.logs.add_log(session.id, "command", "00A4040007A0000000871002", timestamp=T0)
        uow.logs.add_log(session.id, "response", "9000", timestamp=T0 + timedelta(seconds=1))
        uow.logs.add_log(session.id, "command", "80E60C0000", timestamp=T0 + timedelta(seconds=2))
        uow.logs.add_log(session.id, "response", "6A80", timestamp=T0 + timedelta(seconds=3))
        uow.tests.create_result("nightly", "ota", "test_connect", P, duration_ms=1000)
        uow.tests.create_result(
            "nightly",
            "ota",
            "test_install",
            F,
            duration_ms=250,
            error_message="6A80",
            session_id=session.id,
        )
        uow.tests.create_result("nightly", "ota", "test_retry", F, attempt=1, error_message="t/o")
        uow.tests.create_result("nightly", "ota", "test_retry", P, attempt=2, duration_ms=30)
        uow.tests.create_result("nightly", "psk", "test_broken", E, attempt=1, error_message="x")
        uow.tests.create_result("nightly", "psk", "test_broken", F, attempt=2, error_message="y")
        uow.tests.create_result("nightly", "psk", "test_skip", S, error_message="no card")
        uow.commit()


def test_the_junit_export_is_schema_valid_with_properties_retries_and_the_exchange(
    manager: DatabaseManager,
) -> None:
    _linked_failure(manager)
    with UnitOfWork(manager) as uow:
        document = uow.tests.export_junit_xml("nightly")
    SCHEMA.validate(document)
    assert '<property name="device" value="modem-1" />' in document
    assert '<property name="tags" value="ota, psk" />' in document
    assert "<flakyFailure" in document and "<rerunFailure" in document
    assert "INSTALL" in document and "6A80" in document and "incorrect" in document.lower()


def test_junit_round_trip_export_validate_import_gives_the_same_results(
    manager: DatabaseManager,
) -> None:
    _linked_failure(manager)
    with UnitOfWork(manager) as uow:
        document = uow.tests.export_junit_xml("nightly")
    SCHEMA.validate(document)
    with UnitOfWork(manager) as uow:
        uow.tests.import_junit(document.encode(), run_id="nightly-again")
        uow.commit()

    def results(run_id: str) -> list[tuple[object, ...]]:
        with UnitOfWork(manager) as uow:
            return sorted(
                (r.suite_name, r.test_name, r.attempt, r.status.value, r.error_message)
                for r in uow.tests.find_by_run(run_id)
            )

    assert results("nightly-again") == results("nightly")
    with UnitOfWork(manager) as uow:
        again = uow.tests.get_run("nightly-again")
        assert again is not None and again.environment == {
            "device": "modem-1",
            "revision": "abc123",
            "tags": "ota, psk",
        }
        durations = {r.test_name: r.duration_ms for r in uow.tests.find_by_run("nightly-again")}
        assert durations["test_connect"] == 1000 and durations["test_install"] == 250
        assert [f.test_name for f in uow.tests.flaky()] == ["test_retry"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            SUREFIRE,
            [
                ("com.cardlink.OtaIT", "installsApplet", 1, "failed"),
                ("com.cardlink.OtaIT", "installsApplet", 2, "failed"),
                ("com.cardlink.OtaIT", "installsApplet", 3, "passed"),
                ("com.cardlink.OtaIT", "deletesApplet", 1, "failed"),
                ("com.cardlink.OtaIT", "deletesApplet", 2, "failed"),
                ("com.cardlink.OtaIT", "deletesApplet", 3, "error"),
                ("com.cardlink.OtaIT", "selectsIsd", 1, "passed"),
            ],
        ),
        (
            GOTESTSUM,
            [
                ("example.com/cardlink/ota", "TestHandshake", 1, "failed"),
                ("example.com/cardlink/ota", "TestHandshake", 2, "passed"),
                ("example.com/cardlink/ota", "TestSkipMe", 1, "skipped"),
            ],
        ),
    ],
    ids=["surefire", "gotestsum"],
)
def test_surefire_and_gotestsum_files_import_as_runs(
    manager: DatabaseManager, document: bytes, expected: list[tuple[object, ...]]
) -> None:
    with UnitOfWork(manager) as uow:
        uow.tests.import_junit(document, run_id="ci-42")
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = sorted(
            (r.suite_name, r.test_name, r.attempt, r.status.value)
            for r in uow.tests.find_by_run("ci-42")
        )
        assert stored == sorted(expected)
        assert uow.tests.get_run("ci-42") is not None


def test_a_malformed_file_is_one_line_and_nothing_is_written(manager: DatabaseManager) -> None:
    broken = SUREFIRE.replace(b"</testsuite>", b"")
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError) as caught:
        uow.tests.import_junit(broken, run_id="ci-43", name="results.xml")
        uow.commit()
    assert str(caught.value).startswith("results.xml: not well-formed XML")
    assert "\n" not in str(caught.value)
    with UnitOfWork(manager) as uow:
        assert uow.tests.get_run("ci-43") is None and uow.tests.find_by_run("ci-43") == []
        uow.tests.import_junit(SUREFIRE, run_id="ci-44")
        uow.commit()
    with (
        UnitOfWork(manager) as uow,
        pytest.raises(ValidationError, match="already has 7 results"),
    ):
        uow.tests.import_junit(SUREFIRE, run_id="ci-44")


def test_history_flaky_and_trend_of_a_database_without_runs_are_empty(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        assert uow.tests.flaky() == [] and uow.tests.trend() == []
        assert uow.tests.history("ota", "none") == []
        uow.tests.start_run("empty")  # a run without results yet
        assert uow.tests.flaky() == [] and uow.tests.trend() == []
