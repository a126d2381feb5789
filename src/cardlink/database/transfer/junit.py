"""JUnit XML in and out, as plain records: pytest, Maven Surefire and gotestsum files.

:func:`read_junit_xml` turns a file into :class:`JUnitCase` records, one per attempt:
Surefire's ``flakyFailure``/``flakyError`` (failed tries of a test that then passed) and
``rerunFailure``/``rerunError`` (retries that failed too), and gotestsum's repeated
``testcase`` elements (``--rerun-fails``), become attempts 1, 2, ... of the same test.
The XML is read with defusedxml: no DTD, no entity expansion. A file that is not JUnit
raises one-line :class:`ValidationError` naming what is wrong.

:func:`write_junit_xml` is the way back: run properties in ``<properties>``, a retried
test's earlier tries as ``flakyFailure``/``rerunFailure``, and ``<system-out>`` with the
text the caller gives (the failing exchange). Its output validates against the schema
vendored beside this module (:data:`JUNIT_SCHEMA`), the one Jenkins and pytest use.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from typing import IO, Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..exceptions import ValidationError
from ..models.enums import TestStatus

#: The JUnit XML schema (Jenkins' junit-10.xsd) as package data, for validators.
JUNIT_SCHEMA = resources.files(__package__) / "junit.xsd"

_OUTCOMES = {"failure": TestStatus.FAILED, "error": TestStatus.ERROR, "skipped": TestStatus.SKIPPED}
_EARLIER_TRIES = {
    "flakyFailure": TestStatus.FAILED,
    "flakyError": TestStatus.ERROR,
}
_RETRIES = {
    "rerunFailure": TestStatus.FAILED,
    "rerunError": TestStatus.ERROR,
}


@dataclass(frozen=True)
class JUnitCase:
    """One attempt at one test case, as JUnit XML carries it.

    ``duration_ms`` is ``None`` when the file gave no time (retries seldom do);
    ``properties`` are the suite's merged with the case's own (pytest's
    ``record_property``); ``output`` is the case's ``<system-out>``.
    """

    suite: str
    name: str
    classname: str | None
    status: TestStatus
    attempt: int = 1
    duration_ms: int | None = None
    message: str | None = None
    details: str | None = None
    output: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


Source = str | bytes | os.PathLike[str] | IO[bytes]


def read_junit_xml(source: Source, *, name: str | None = None) -> list[JUnitCase]:
    """Every attempt of every test case in a JUnit XML file, in file order.

    ``source`` is a path, the XML as ``bytes``, or a binary stream; ``name`` labels
    errors (the path by default): ``ValidationError: results.xml: not well-formed XML:
    line 3, column 4``.
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "JUnit XML")
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        root = SafeET.parse(stream, forbid_dtd=True).getroot()
    except ET.ParseError as error:
        line, column = error.position
        raise ValidationError(
            f"{label}: not well-formed XML: line {line}, column {column + 1}"
        ) from None
    except DefusedXmlException as error:
        raise ValidationError(
            f"{label}: refused: {type(error).__name__} (DTDs and entities are not read)"
        ) from None
    except OSError as error:
        raise ValidationError(f"{label}: cannot be read: {error.strerror or error}") from None
    if root.tag == "testsuites":
        suites = [child for child in root if child.tag == "testsuite"]
    elif root.tag == "testsuite":
        suites = [root]
    else:
        raise ValidationError(
            f"{label}: not JUnit XML: the root element is <{root.tag}>, "
            "expected <testsuites> or <testsuite>"
        )
    cases: list[JUnitCase] = []
    for suite in suites:
        cases.extend(_read_suite(suite, label, {}))
    return cases


def _read_suite(suite: ET.Element, label: str, inherited: Mapping[str, str]) -> Iterator[JUnitCase]:
    suite_name = suite.get("name")
    if not suite_name:
        raise ValidationError(f"{label}: a <testsuite> has no name")
    properties = dict(inherited)
    properties.update(_properties(suite, label))
    seen: dict[tuple[str | None, str], int] = {}
    for child in suite:
        if child.tag == "testsuite":
            yield from _read_suite(child, label, properties)
        elif child.tag == "testcase":
            test_name = child.get("name")
            if not test_name:
                raise ValidationError(f"{label}: a <testcase> in suite {suite_name!r} has no name")
            classname = child.get("classname") or None
            earlier = seen.get((classname, test_name), 0)  # gotestsum repeats retried tests
            for case in _read_case(child, suite_name, test_name, classname, properties, label):
                seen[(classname, test_name)] = earlier + case.attempt
                yield replace(case, attempt=earlier + case.attempt)


def _read_case(
    element: ET.Element,
    suite: str,
    test_name: str,
    classname: str | None,
    suite_properties: Mapping[str, str],
    label: str,
) -> list[JUnitCase]:
    properties = {**suite_properties, **_properties(element, label)}
    duration_ms = _milliseconds(element.get("time"), f"{label}: testcase {test_name!r}")
    status, message, details = TestStatus.PASSED, None, None
    earlier: list[tuple[TestStatus, str | None, str | None]] = []
    retries: list[tuple[TestStatus, str | None, str | None]] = []
    output: str | None = None
    for child in element:
        if child.tag in _OUTCOMES and status is TestStatus.PASSED:
            status, message, details = _OUTCOMES[child.tag], *_message(child)
        elif child.tag in _EARLIER_TRIES:
            earlier.append((_EARLIER_TRIES[child.tag], *_message(child)))
        elif child.tag in _RETRIES:
            retries.append((_RETRIES[child.tag], *_message(child)))
        elif child.tag == "system-out":
            output = child.text or None
    make_try = partial(JUnitCase, suite, test_name, classname, properties=properties)
    tries = [
        make_try(status=s, message=m, details=d, attempt=n)
        for n, (s, m, d) in enumerate(earlier, start=1)
    ]
    final = len(tries) + 1
    tries.append(
        make_try(
            status=status,
            message=message,
            details=details,
            output=output,
            duration_ms=duration_ms,
            attempt=final,
        )
    )
    tries += [
        make_try(status=s, message=m, details=d, attempt=final + n)
        for n, (s, m, d) in enumerate(retries, start=1)
    ]
    return tries


def _message(element: ET.Element) -> tuple[str | None, str | None]:
    """The outcome's message (its attribute, or its text's first line) and full text."""
    text = (element.text or "").strip()
    if not text:  # Surefire 2.22.1+ puts a retry's trace in <stackTrace>
        text = (element.findtext("stackTrace") or "").strip()
    message = element.get("message") or (text.splitlines()[0] if text else None)
    return message, text or None


def _properties(element: ET.Element, label: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in element.findall("properties"):
        for prop in block.findall("property"):
            key = prop.get("name")
            if not key:
                raise ValidationError(f"{label}: a <property> has no name")
            found[key] = prop.get("value", prop.text or "")
    return found


def _milliseconds(value: str | None, where: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.replace(",", ""))  # Surefire groups thousands: 1,234.5
    except ValueError:
        raise ValidationError(f"{where}: time {value!r} is not a number of seconds") from None
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValidationError(f"{where}: time {value!r} is not a duration")
    return round(seconds * 1000)


def write_junit_xml(
    cases: Iterable[JUnitCase],
    *,
    name: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> str:
    """JUnit XML for the cases, one ``testsuite`` per suite, one ``testcase`` per test.

    A test with several attempts is written once, with its last attempt's outcome: the
    earlier failed tries of a test that passed become ``flakyFailure``/``flakyError``,
    the retries of a test that failed throughout become ``rerunFailure``/``rerunError``
    (as Surefire writes them). ``properties`` (the run's metadata) go into every suite's
    ``<properties>``; a case's ``output`` into its ``<system-out>``. A test's time is the
    sum of its attempts' times; a test with none given gets no ``time``.
    """
    suites: dict[str, dict[tuple[str | None, str], list[JUnitCase]]] = {}
    for case in cases:
        suites.setdefault(case.suite, {}).setdefault((case.classname, case.name), []).append(case)
    root = ET.Element("testsuites")
    if name is not None:
        root.set("name", name)
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    total_ms = 0
    for suite_name, tests in suites.items():
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        if properties:
            block = ET.SubElement(suite, "properties")
            for key, value in properties.items():
                ET.SubElement(block, "property", name=str(key), value=_text(value))
        counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        suite_ms = 0
        for attempts in tests.values():
            attempts.sort(key=lambda case: case.attempt)
            final = _final_attempt(attempts)
            durations = [case.duration_ms for case in attempts if case.duration_ms is not None]
            counts["tests"] += 1
            element = ET.SubElement(suite, "testcase", name=final.name)
            if durations:  # no time at all stays no time, not 0
                element.set("time", _seconds(sum(durations)))
                suite_ms += sum(durations)
            if final.classname is not None:
                element.set("classname", final.classname)
            _write_outcomes(element, attempts, final, counts)
            if final.output:
                ET.SubElement(element, "system-out").text = final.output
        for key, value in counts.items():
            suite.set(key, str(value))
        suite.set("time", _seconds(suite_ms))
        for key in totals:
            totals[key] += counts[key]
        total_ms += suite_ms
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_ms))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _final_attempt(attempts: list[JUnitCase]) -> JUnitCase:
    """The attempt whose outcome the test keeps: the first pass, else the first try."""
    for case in attempts:
        if case.status is TestStatus.PASSED:
            return case
    return attempts[0]


def _write_outcomes(
    element: ET.Element, attempts: list[JUnitCase], final: JUnitCase, counts: dict[str, int]
) -> None:
    if final.status is TestStatus.PASSED:
        for case in attempts:
            if case.attempt < final.attempt:
                tag = "flakyError" if case.status is TestStatus.ERROR else "flakyFailure"
                _outcome(element, tag, case, rerun=True)
        return
    tag = {TestStatus.FAILED: "failure", TestStatus.ERROR: "error"}.get(final.status, "skipped")
    counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[tag]] += 1
    _outcome(element, tag, final, rerun=False)
    for case in attempts:
        if case.attempt > final.attempt:
            retry = "rerunError" if case.status is TestStatus.ERROR else "rerunFailure"
            _outcome(element, retry, case, rerun=True)


def _outcome(element: ET.Element, tag: str, case: JUnitCase, *, rerun: bool) -> None:
    outcome = ET.SubElement(element, tag)
    if case.message is not None:
        outcome.set("message", case.message)
    if rerun:
        outcome.set("type", case.status.value)  # the schema requires it on retries
    if case.details:
        if rerun:
            ET.SubElement(outcome, "stackTrace").text = case.details
        else:
            outcome.text = case.details


def _seconds(milliseconds: int) -> str:
    return f"{milliseconds / 1000:.3f}"


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)
