"""A session's timeline: state changes, HTTP exchanges and decoded APDUs in time order."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from cardlink.database import CommDirection, DatabaseManager, UnitOfWork, ValidationError
from cardlink.database.cli import cli
from test_exchanges import T0
from test_scp81_http import END, opening_post, result_post, script_response


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


def recorded_session(manager: DatabaseManager) -> Any:
    """A nominal session: handshake, POST, script with two APDUs, results POST, 204, end."""
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="triggered")
        session.created_at = T0 - ms(5)
        uow.sessions.start_session(session.id, at=T0)
        uow.sessions.set_tls_info(
            session.id,
            "TLS_PSK_WITH_AES_128_CBC_SHA256",
            "card_001",
            tls_version="TLSv1.2",
            client_address="10.0.0.7:49152",
            handshake_ms=38,
        )
        uow.exchanges.record_http(session.id, opening_post(), timestamp=T0 + ms(40))
        script = uow.exchanges.record_http(
            session.id,
            script_response("/server/adminagent?cmd=2", 250),
            timestamp=T0 + ms(52.5),
        )
        uow.logs.add_log(
            session.id, CommDirection.COMMAND, "00A4040008A000000151000000", timestamp=T0 + ms(60)
        )
        uow.logs.add_log(session.id, CommDirection.RESPONSE, "6A82", timestamp=T0 + ms(75))
        uow.exchanges.record_http(
            session.id, result_post("/server/adminagent?cmd=2", "ok", 4), timestamp=T0 + ms(90)
        )
        uow.exchanges.record_http(session.id, END, timestamp=T0 + ms(101))
        uow.sessions.complete_session(session.id, at=T0 + ms(120))
        uow.commit()
        assert script.id is not None
        return session.id


def test_the_timeline_lists_every_moment_in_order_with_gaps(manager: DatabaseManager) -> None:
    session_id = recorded_session(manager)
    with UnitOfWork(manager) as uow:
        entries = uow.sessions.timeline(session_id)
        with pytest.raises(ValidationError, match="UUID"):
            uow.sessions.timeline("not-a-session")
    assert [(entry.kind, entry.gap_ms) for entry in entries] == [
        ("created", None),
        ("started", 5.0),
        ("http", 40.0),
        ("http", 12.5),
        ("apdu", 7.5),
        ("apdu", 15.0),
        ("http", 15.0),
        ("http", 11.0),
        ("ended", 19.0),
    ]
    summaries = [entry.summary for entry in entries]
    assert summaries[1] == (
        "started · TLSv1.2 · TLS_PSK_WITH_AES_128_CBC_SHA256 · identity card_001"
        " · from 10.0.0.7:49152 · agent //se-id/eid/1234567890ABCDEF;//aa-id/aid/A000000151/000000"
        " · handshake 38 ms"
    )
    assert summaries[2].startswith("POST /server/adminagent?cmd=1 · 0 bytes")
    assert summaries[3] == (
        "200 OK · next /server/adminagent?cmd=2"
        " · application/vnd.globalplatform.card-content-mgt;version=1.0 · 250 bytes"
        " · command session 1"
    )
    assert summaries[4] == "C-APDU SELECT 00A40400 Lc=8"
    assert summaries[5] == "R-APDU 6A82 file or application not found"
    assert "script-status ok" in summaries[6]
    assert summaries[7] == "204 No Content · command session 1"
    assert summaries[8] == "ended completed · 120 ms"
    assert entries[0].timestamp == T0 - ms(5)


def test_the_timeline_command_draws_a_table_or_json(manager: DatabaseManager) -> None:
    session_id = recorded_session(manager)
    url = manager.config.database_url
    runner = CliRunner()
    as_json = runner.invoke(
        cli, ["--database-url", url, "timeline", str(session_id), "--format", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert document["session_id"] == str(session_id)
    assert [entry["kind"] for entry in document["entries"]][:3] == ["created", "started", "http"]
    assert document["entries"][3]["gap_ms"] == 12.5
    assert document["entries"][0]["timestamp"] == (T0 - ms(5)).isoformat()
    table = runner.invoke(cli, ["--database-url", url, "timeline", str(session_id)])
    assert table.exit_code == 0, table.output
    assert "12.5" in table.output and "C-APDU SELECT" in table.output
    assert "09:30:00.125" in table.output
    missing = runner.invoke(
        cli, ["--database-url", url, "timeline", "0f0e0d0c-0b0a-4908-8706-050403020100"]
    )
    assert missing.exit_code == 1
    assert "not found" in missing.output and "Traceback" not in missing.output
