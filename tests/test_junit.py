"""JUnit XML in and out: pytest, Surefire and gotestsum files read; the writer validates
against the Jenkins/pytest JUnit schema; write -> read gives the same records back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xmlschema

from cardlink.database import DatabaseManager, UnitOfWork, ValidationError
from cardlink.database.models.enums import TestStatus
from cardlink.database.reports import FailingExchange
from cardlink.database.transfer.junit import (
    JUNIT_SCHEMA,
    JUnitCase,
    read_junit_xml,
    write_junit_xml,
)

SCHEMA = xmlschema.XMLSchema(str(JUNIT_SCHEMA))

SUREFIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" name="com.cardlink.OtaIT"
    time="12.5" tests="3" errors="0" skipped="0" failures="1">
  <properties>
    <property name="java.version" value="21.0.2"/>
    <property name="os.name" value="Linux"/>
  </properties>
  <testcase name="installsApplet" classname="com.cardlink.OtaIT" time="1,204.250">
    <flakyFailure message="expected 9000 but was 6A80" type="java.lang.AssertionError">
      <stackTrace>java.lang.AssertionError: expected 9000 but was 6A80
	at com.cardlink.OtaIT.installsApplet(OtaIT.java:42)</stackTrace>
      <system-out>SELECT -> 9000</system-out>
    </flakyFailure>
    <flakyFailure message="timeout" type="java.util.concurrent.TimeoutException"/>
  </testcase>
  <testcase name="deletesApplet" classname="com.cardlink.OtaIT" time="0.8">
    <failure message="expected 9000 but was 6985" type="java.lang.AssertionError">trace</failure>
    <rerunFailure message="still 6985" type="java.lang.AssertionError">
      <stackTrace>rerun trace</stackTrace>
    </rerunFailure>
    <rerunError message="reader gone" type="java.io.IOException"/>
  </testcase>
  <testcase name="selectsIsd" classname="com.cardlink.OtaIT" time="0.1"/>
</testsuite>
"""

GOTESTSUM = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1" errors="0" time="1.234000">
\t<testsuite tests="4" failures="1" time="1.200000" name="example.com/cardlink/ota"
        timestamp="2026-12-06T10:00:00Z">
\t\t<properties>
\t\t\t<property name="go.version" value="go1.22.1 linux/amd64"></property>
\t\t</properties>
\t\t<testcase classname="example.com/cardlink/ota" name="TestHandshake" time="0.010000">
\t\t\t<failure message="Failed" type="">=== RUN   TestHandshake
    ota_test.go:12: psk mismatch
--- FAIL: TestHandshake (0.01s)
</failure>
\t\t</testcase>
\t\t<testcase classname="example.com/cardlink/ota" name="TestHandshake" time="0.020000">
\t\t</testcase>
\t\t<testcase classname="example.com/cardlink/ota" name="TestSkipMe" time="0.000000">
\t\t\t<skipped message="=== RUN   TestSkipMe&#xA;    ota_test.go:20: needs a card&#xA;"></skipped>
\t\t</testcase>
\t</testsuite>
</testsuites>
"""


def _outcomes(cases: list[JUnitCase]) -> list[tuple[str, int, TestStatus, str | None]]:
    return [(case.name, case.attempt, case.status, case.message) for case in cases]


def test_a_pytest_junitxml_file_reads_into_records(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_passes(record_property):
                record_property("card", "8944000000000000001")

            def test_fails():
                assert 1 == 2, "card answered 6A80"

            @pytest.mark.skip(reason="needs a modem")
            def test_skipped():
                pass

            @pytest.fixture
            def broken():
                raise RuntimeError("no reader")

            def test_errors(broken):
                pass
            """
        )
    )
    results = tmp_path / "results.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={results}",
            "test_sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    cases = read_junit_xml(results)
    by_name = {case.name: case for case in cases}
    assert set(by_name) == {"test_passes", "test_fails", "test_skipped", "test_errors"}
    assert {case.suite for case in cases} == {"pytest"}
    assert by_name["test_fails"].classname == "test_sample"
    assert by_name["test_passes"].status is TestStatus.PASSED
    assert by_name["test_passes"].properties["card"] == "8944000000000000001"
    assert by_name["test_fails"].status is TestStatus.FAILED
    assert "card answered 6A80" in (by_name["test_fails"].message or "")
    assert by_name["test_skipped"].status is TestStatus.SKIPPED
    assert by_name["test_skipped"].message == "needs a modem"
    assert by_name["test_errors"].status is TestStatus.ERROR
    assert all(case.attempt == 1 and case.duration_ms is not None for case in cases)


def test_a_surefire_file_reads_flaky_and_rerun_failures_as_attempts() -> None:
    cases = read_junit_xml(SUREFIRE, name="TEST-com.cardlink.OtaIT.xml")
    assert _outcomes(cases) == [
        ("installsApplet", 1, TestStatus.FAILED, "expected 9000 but was 6A80"),
        ("installsApplet", 2, TestStatus.FAILED, "timeout"),
        ("installsApplet", 3, TestStatus.PASSED, None),
        ("deletesApplet", 1, TestStatus.FAILED, "expected 9000 but was 6985"),
        ("deletesApplet", 2, TestStatus.FAILED, "still 6985"),
        ("deletesApplet", 3, TestStatus.ERROR, "reader gone"),
        ("selectsIsd", 1, TestStatus.PASSED, None),
    ]
    assert cases[2].duration_ms == 1_204_250
    assert cases[0].details is not None and "OtaIT.java:42" in cases[0].details
    assert cases[0].suite == "com.cardlink.OtaIT"
    assert cases[0].properties == {"java.version": "21.0.2", "os.name": "Linux"}


def test_a_gotestsum_file_reads_repeated_testcases_as_attempts() -> None:
    cases = read_junit_xml(GOTESTSUM)
    assert _outcomes(cases) == [
        ("TestHandshake", 1, TestStatus.FAILED, "Failed"),
        ("TestHandshake", 2, TestStatus.PASSED, None),
        (
            "TestSkipMe",
            1,
            TestStatus.SKIPPED,
            "=== RUN   TestSkipMe\n    ota_test.go:20: needs a card\n",
        ),
    ]
    assert cases[0].details is not None and "psk mismatch" in cases[0].details
    assert cases[1].duration_ms == 20
    assert cases[0].properties == {"go.version": "go1.22.1 linux/amd64"}


def _retried_run() -> list[JUnitCase]:
    exchange = FailingExchange.from_apdu("80E60C002B", "6A80", session_id="3f2c9a51")
    return [
        JUnitCase(
            "scp81.tls_psk", "test_handshake", "scp81.tls_psk", TestStatus.PASSED, duration_ms=1250
        ),
        JUnitCase(
            "ota.install",
            "test_install",
            "ota.install",
            TestStatus.FAILED,
            attempt=1,
            message="expected 9000, got 6A80",
            details="Traceback ...",
            output=exchange.as_text(),
        ),
        JUnitCase(
            "ota.install",
            "test_install",
            "ota.install",
            TestStatus.FAILED,
            attempt=2,
            message="expected 9000, got 6A80 again",
        ),
        JUnitCase(
            "ota.install",
            "test_install",
            "ota.install",
            TestStatus.ERROR,
            attempt=3,
            message="reader gone on the last try",
            details="IOError ...",
        ),
        JUnitCase(
            "ota.install",
            "test_load",
            "ota.install",
            TestStatus.ERROR,
            attempt=1,
            message="reader gone",
        ),
        JUnitCase(
            "ota.install",
            "test_load",
            "ota.install",
            TestStatus.PASSED,
            attempt=2,
            duration_ms=5_001,
        ),
        JUnitCase(
            "ota.install",
            "test_<script>alert(1)",
            None,
            TestStatus.SKIPPED,
            message="needs a modem & a card",
            duration_ms=0,
        ),
    ]


def test_written_junit_validates_against_the_jenkins_schema_with_retries_and_exchange() -> None:
    xml = write_junit_xml(
        _retried_run(),
        name="nightly-30",
        properties={"device": "Quectel EG25-G", "tags": ["nightly", "scp81"]},
    )
    SCHEMA.validate(xml)
    assert '<property name="device" value="Quectel EG25-G" />' in xml
    assert '<property name="tags" value="nightly, scp81" />' in xml
    assert "<flakyError" in xml and "<rerunFailure" in xml and "<rerunError" in xml
    assert "<system-out>INSTALL [for install and make selectable] -&gt; 6A80 " in xml


def test_write_then_read_gives_the_same_records_back() -> None:
    cases = _retried_run()
    properties = {"device": "Quectel EG25-G", "revision": "a1b2c3d"}
    back = read_junit_xml(write_junit_xml(cases, name="nightly-30", properties=properties).encode())
    expected = sorted(cases, key=lambda case: (case.suite, case.name, case.attempt))
    assert sorted(back, key=lambda case: (case.suite, case.name, case.attempt)) == [
        JUnitCase(**{**case.__dict__, "properties": properties}) for case in expected
    ]


def test_a_pytest_file_validates_against_the_vendored_schema(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    results = tmp_path / "results.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={results}",
            "test_ok.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    SCHEMA.validate(str(results))
    SCHEMA.validate(SUREFIRE.decode())


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b"<testsuites><testsuite name='a'>", "results.xml: not well-formed XML: line 1"),
        (b"<html><body/></html>", "results.xml: not JUnit XML: the root element is <html>"),
        (
            b"<testsuite name='s'><testcase classname='c'/></testsuite>",
            "results.xml: a <testcase> in suite 's' has no name",
        ),
        (
            b"<testsuite name='s'><testcase name='t' time='soon'/></testsuite>",
            "results.xml: testcase 't': time 'soon' is not a number of seconds",
        ),
        (b"<testsuite><testcase name='t'/></testsuite>", "results.xml: a <testsuite> has no name"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<testsuite name='&lol2;'/>",
            "results.xml: refused: DTDForbidden",
        ),
    ],
)
def test_a_malformed_file_is_one_line_naming_what_is_wrong(xml: bytes, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_junit_xml(xml, name="results.xml")
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_the_repository_export_reads_back_as_the_results_stored_on_every_backend(
    manager: DatabaseManager,
) -> None:
    stored = [
        ("ota", "test_connect", TestStatus.PASSED, 1_000, None),
        ("ota", "test_download", TestStatus.FAILED, 250, "card answered 6A80"),
        ("ota", "test_reader", TestStatus.ERROR, 5, "reader gone"),
        ("psk", "test_identity", TestStatus.SKIPPED, None, None),
    ]
    with UnitOfWork(manager) as uow:
        for suite, test, status, duration_ms, message in stored:
            uow.tests.create_result(
                "run_1", suite, test, status, duration_ms=duration_ms, error_message=message
            )
        uow.commit()
    with UnitOfWork(manager) as uow:
        document = uow.tests.export_junit_xml("run_1")
    cases = read_junit_xml(document.encode(), name="run_1.xml")
    assert [
        (case.suite, case.name, case.status, case.duration_ms, case.message) for case in cases
    ] == stored  # a result stored without a duration is written without a time
    assert all(case.attempt == 1 and case.classname == case.suite for case in cases)
