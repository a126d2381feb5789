"""`cardlink-db logs SESSION_ID`: a session's decoded trace as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cardlink.database import DatabaseManager, UnitOfWork
from conftest import backend_url
from test_cli import invoke

START = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)

#: (ms after START, direction, APDU, latency): an ISD session with a 61xx chain, a
#: verification warning, an INSTALL, a GET STATUS error, and logical channel 1.
TRACE = [
    (0, "COMMAND", "00A4040008A000000151000000", None),
    (12, "RESPONSE", "6114", 12.0),
    (15, "COMMAND", "00C0000014", None),
    (27, "RESPONSE", "6F108408A000000151000000A5049F6501FF9000", 12.0),
    (40, "COMMAND", "0020000108 3132333435FFFFFF".replace(" ", ""), None),
    (55, "RESPONSE", "63C2", 15.0),
    (
        70,
        "COMMAND",
        "80E60C0020" + "07A0000001515350" + "08A000000151535041" * 2 + "010002C90000",
        None,
    ),
    (130, "RESPONSE", "009000", 60.0),
    (140, "COMMAND", "80F24002024F0000", None),
    (152, "RESPONSE", "6A88", 12.0),
    (160, "COMMAND", "0070000001", None),
    (170, "RESPONSE", "019000", 10.0),
    (180, "COMMAND", "01A4040008A000000151000000", None),
    (195, "RESPONSE", "9000", 15.0),
]


@pytest.fixture
def url(manager: DatabaseManager, backend: str, tmp_path: Path) -> str:
    return backend_url(backend, tmp_path)


@pytest.fixture
def session_id(manager: DatabaseManager) -> str:
    """A session holding TRACE, logged in two batches (pairing carries across them)."""
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(None, None)
        uow.flush()
        rows = [
            {
                "session_id": session.id,
                "direction": direction,
                "raw_data": apdu,
                "status_word": apdu[-4:] if direction == "RESPONSE" else None,
                "latency_ms": latency,
                "timestamp": START + timedelta(milliseconds=offset),
            }
            for offset, direction, apdu, latency in TRACE
        ]
        uow.logs.add_log_batch(rows[:5])
        uow.logs.flush_batch()
        uow.logs.add_log_batch(rows[5:])
        uow.commit()
        return str(session.id)


def as_json(url: str, *args: str) -> list[dict[str, object]]:
    document = json.loads(invoke(url, "logs", *args, "--format", "json").stdout)
    return document["apdus"]


def test_json_has_every_apdu_decoded_in_wire_order(url: str, session_id: str) -> None:
    apdus = as_json(url, session_id)
    assert [apdu["number"] for apdu in apdus] == list(range(1, 15))
    assert [apdu["offset_ms"] for apdu in apdus] == [float(offset) for offset, *_ in TRACE]
    first, answer = apdus[0], apdus[1]
    assert first["direction"] == "command" and first["command_name"] == "SELECT"
    assert first["p1p2"] == "0400" and first["data"] == "A000000151000000"
    assert first["channel"] == 0
    # A command shows its response's status word; a response names the command it answers.
    assert first["status_word"] == "6114" and answer["command_name"] == "SELECT"
    assert answer["command_id"] == first["log_id"]
    assert answer["status_message"] == "20 response bytes available"
    assert apdus[2]["command_name"] == "GET RESPONSE"
    verify = apdus[5]
    assert verify["status_class"] == "warning"
    assert verify["status_message"] == "verification failed, 2 retries left"
    assert apdus[6]["command_name"].startswith("INSTALL")
    get_status = apdus[8]
    assert (get_status["command_name"], get_status["status_word"]) == ("GET STATUS", "6A88")
    assert get_status["status_class"] == "error"
    assert apdus[12]["channel"] == 1 and apdus[13]["channel"] == 1
    assert apdus[13]["latency_ms"] == 15.0


def test_errors_keep_the_failing_exchange_and_its_numbers(url: str, session_id: str) -> None:
    apdus = as_json(url, session_id, "--errors")
    assert [(apdu["number"], apdu["direction"]) for apdu in apdus] == [
        (9, "command"),
        (10, "response"),
    ]
    assert {apdu["status_word"] for apdu in apdus} == {"6A88"}


@pytest.mark.parametrize("command", ["SELECT", "select", "A4"])
def test_command_filter_takes_a_name_or_an_ins_byte(
    url: str, session_id: str, command: str
) -> None:
    apdus = as_json(url, session_id, "--command", command)
    assert [apdu["number"] for apdu in apdus] == [1, 2, 13, 14]
    assert {apdu["command_name"] for apdu in apdus} == {"SELECT"}


def test_limit_counts_lines(url: str, session_id: str) -> None:
    assert [apdu["number"] for apdu in as_json(url, session_id, "--limit", "3")] == [1, 2, 3]


def test_csv_has_a_header_and_every_line(url: str, session_id: str) -> None:
    text = invoke(url, "logs", session_id, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 14
    assert rows[9]["status_word"] == "6A88" and rows[9]["command_name"] == "GET STATUS"
    assert rows[0]["data"] == "A000000151000000"


def test_table_shows_names_meanings_and_latency(url: str, session_id: str) -> None:
    output = invoke(url, "logs", session_id).stdout
    assert f"Session {session_id}" in output
    lines = output.splitlines()
    get_status = next(line for line in lines if "6A88" in line and "<<" in line)
    assert "GET STATUS" in get_status and "referenced data not found" in get_status
    assert "12.0 ms" in get_status
    assert any("INSTALL [for install" in line for line in lines)
    assert "\x1b[" not in output  # no colour codes in a pipe


def test_unknown_or_malformed_session_is_one_line(url: str, session_id: str) -> None:
    missing = str(uuid.uuid4())
    result = invoke(url, "logs", missing, ok=False)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no session with id {missing} (hint: `cardlink-db sessions` lists the sessions)\n"
    )
    result = invoke(url, "logs", "not-a-session", ok=False)
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "not-a-session" in result.output


def test_no_match_says_so(url: str, session_id: str) -> None:
    output = invoke(url, "logs", session_id, "--command", "DELETE").stdout
    assert output == f"No APDUs in session {session_id} match\n"


@pytest.mark.sqlite
def test_a_terminal_gets_colours_and_a_long_trace_goes_to_the_pager(
    url: str, session_id: str, tmp_path: Path
) -> None:
    """The real command on a pseudo-terminal: errors red, warnings yellow, and a table
    taller than the terminal handed to $PAGER."""
    paged = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ncat > {paged}\n")
    pager.chmod(0o755)
    environment = {**os.environ, "PAGER": str(pager), "COLUMNS": "200", "LINES": "10"}
    environment.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "cardlink.database.cli", "--database-url", url]
    controller, terminal = pty.openpty()
    try:
        finished = subprocess.run(
            [*command, "logs", session_id],
            stdin=terminal,  # click pages only when stdin and stdout are both a terminal
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=environment,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert finished.returncode == 0, finished.stderr
    text = paged.read_text()
    error_line = next(line for line in text.splitlines() if "6A88" in line and "<<" in line)
    warning_line = next(line for line in text.splitlines() if "63C2" in line and "<<" in line)
    assert "\x1b[31m" in error_line  # red
    assert "\x1b[33m" in warning_line  # yellow
