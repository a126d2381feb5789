"""`cardlink-db trace import/export` and `cardlink-db sessions` through click's runner."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import pytest

from cardlink.database import (
    CardProfile,
    DatabaseManager,
    Device,
    DeviceType,
    UnitOfWork,
)
from cardlink.database.transfer.traces import read_gsmtap
from conftest import backend_url
from test_cli import invoke
from test_trace_store import seed_sessions, stored_pairs
from test_traces import APDU4J_DUMP, SIMTRACE_EXCHANGES, pcapng_bytes


@pytest.fixture
def url(manager: DatabaseManager, backend: str, tmp_path: Path) -> str:
    """The URL of the manager fixture's database, with a device and a card in it."""
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="RF8M0", device_type=DeviceType.PHONE))
        uow.cards.create(CardProfile(iccid="8901123456789012340"))
        uow.commit()
    return backend_url(backend, tmp_path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    dump, capture = tmp_path / "select.apdu", tmp_path / "capture.pcapng"
    dump.write_text(APDU4J_DUMP)
    capture.write_bytes(pcapng_bytes())
    return {"apdu4j": dump, "pcapng": capture}


def new_session(manager: DatabaseManager) -> str:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session("RF8M0", "8901123456789012340")
        uow.commit()
        return str(session.id)


def test_trace_import_into_a_session_then_export_for_wireshark(
    manager: DatabaseManager, url: str, files: dict[str, Path], tmp_path: Path
) -> None:
    session_id = new_session(manager)
    result = invoke(url, "trace", "import", str(files["pcapng"]), "--session", session_id)
    assert result.stdout == (
        f"Imported 7 commands and 7 responses (7 pairs) from capture.pcapng (pcapng) "
        f"into session {session_id}\n"
    )
    output = tmp_path / "out.pcap"
    result = invoke(url, "trace", "export", session_id, "--output", str(output))
    assert result.stdout == f"Wrote 7 GSMTAP SIM packets to {output}\n"
    apdus = read_gsmtap(io.BytesIO(output.read_bytes()))
    assert [apdu.hex for apdu in apdus[::2]] == [command for *_, command, _ in SIMTRACE_EXCHANGES]
    assert stored_pairs(manager, session_id)[0] == ("A0A40000026F7E", "9F0F")


def test_trace_import_with_device_and_card_creates_the_session(
    manager: DatabaseManager, url: str, files: dict[str, Path]
) -> None:
    args = ["--device", "RF8M0", "--card", "8901123456789012340", "--format", "apdu4j"]
    result = invoke(url, "trace", "import", str(files["apdu4j"]), *args)
    created = re.match(r"Created session ([0-9a-f-]{36}) \(device RF8M0, card 89011", result.stdout)
    assert created, result.stdout
    session_id = created.group(1)
    assert "Imported 3 commands and 3 responses (3 pairs)" in result.stdout
    assert len(stored_pairs(manager, session_id)) == 3
    with UnitOfWork(manager) as uow:
        session = uow.sessions.get_by_id(session_id)
        assert (session.device_id, session.session_type) == ("RF8M0", "trace-import")


def test_trace_errors_are_one_line_and_write_nothing(
    manager: DatabaseManager, url: str, files: dict[str, Path], tmp_path: Path
) -> None:
    missing = str(uuid.uuid4())
    cases = [
        (["import", str(files["apdu4j"]), "--session", missing], f"session {missing} not found"),
        (
            ["import", str(files["apdu4j"]), "--session", "nope"],
            "session id 'nope' is not a valid UUID",
        ),
        (
            ["import", str(files["apdu4j"])],
            "give --session ID, or --device and --card to create a session",
        ),
        (
            ["import", str(files["apdu4j"]), "--device", "XX", "--card", "8901123456789012340"],
            "device 'XX' not found",
        ),
        (["export", missing, "--output", str(tmp_path / "x.pcap")], f"session {missing} not found"),
    ]
    for args, message in cases:
        result = invoke(url, "trace", *args, ok=False)
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: {message}\n"
    bad = tmp_path / "bad.apdu"
    bad.write_text("# Sent\n00A4040000\nSELECT\n")
    session_id = new_session(manager)
    result = invoke(url, "trace", "import", str(bad), "--session", session_id, ok=False)
    assert result.stderr.startswith("Error: apdu4j dump line 3: expected hex APDU")
    assert not (tmp_path / "x.pcap").exists()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 0 and uow.sessions.count() == 1


def test_sessions_lists_counts_and_filters(manager: DatabaseManager, url: str) -> None:
    ids = seed_sessions(manager)
    rows = json.loads(invoke(url, "sessions", "--format", "json").stdout)
    assert [(row["id"], row["apdu_count"], row["errors"], row["warnings"]) for row in rows] == [
        (ids["pending"], 0, 0, 0),
        (ids["done"], 8, 1, 1),
        (ids["old"], 2, 1, 0),
    ]
    assert rows[1]["status"] == "completed" and rows[1]["duration_ms"] == 2000
    failed = json.loads(invoke(url, "sessions", "--status", "FAILED", "--format", "json").stdout)
    assert [row["id"] for row in failed] == [ids["old"]]
    recent = json.loads(invoke(url, "sessions", "--since", "1", "--format", "json").stdout)
    assert {row["id"] for row in recent} == {ids["pending"], ids["done"]}
    table = invoke(url, "sessions", "--limit", "2").stdout
    assert ids["pending"] in table and ids["done"] in table and ids["old"] not in table
    assert "APDUs" in table and "2.0 s" in table
    assert invoke(url, "sessions", "--status", "timeout").stdout == "No sessions found\n"
    result = invoke(url, "sessions", "--limit", "0", ok=False)
    assert result.exit_code == 2 and "--limit" in result.stderr


@pytest.mark.parametrize(
    "command", [["trace"], ["trace", "import"], ["trace", "export"], ["sessions"]]
)
def test_every_trace_command_has_help_with_an_example(command: list[str]) -> None:
    result = invoke(None, *command, "--help")
    assert "Example:" in result.stdout and "cardlink-db " in result.stdout
