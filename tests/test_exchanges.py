"""SCP81 sessions on record: the four Amendment B Annex A examples stored through record_http.

Each head is recorded from its raw text (the heads of test_scp81_http) and read back
from the database, in a new unit of work, field by field, on every backend.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cardlink.database import (
    CardProfile,
    CommLog,
    DatabaseManager,
    EventType,
    HttpDirection,
    HttpExchange,
    NotFoundError,
    ScriptStatus,
    SessionStatus,
    UnitOfWork,
    ValidationError,
    get_emitter,
    parse_http_head,
)
from test_scp81_http import (
    AGENT,
    END,
    SCRIPT,
    SCRIPT_RESPONSE,
    opening_post,
    request,
    response,
    result_post,
    script_response,
)

T0 = datetime(2026, 12, 1, 9, 30, 0, 125000, tzinfo=timezone.utc)
TARGETED = "X-Admin-Targeted-Application: //aid/A000000018/0001"


def new_session(manager: DatabaseManager) -> Any:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="triggered")
        uow.sessions.start_session(session.id, at=T0)
        uow.commit()
        return session.id


def record(manager: DatabaseManager, session_id: Any, heads: list[str], start: int = 0) -> None:
    """Record ``heads`` in one unit of work, 40 ms apart from T0 + start * 40 ms."""
    with UnitOfWork(manager) as uow:
        for position, head in enumerate(heads, start=start):
            uow.exchanges.record_http(
                session_id, head, timestamp=T0 + timedelta(milliseconds=40 * position)
            )
        uow.commit()


def stored(manager: DatabaseManager, session_id: Any) -> list[HttpExchange]:
    with UnitOfWork(manager) as uow:
        return uow.exchanges.find_by_session(session_id)


def fields(exchange: HttpExchange) -> dict[str, object]:
    """The stored exchange under the parser's field names (body_length as content_length)."""
    return {
        "direction": exchange.direction,
        "method": exchange.method,
        "uri": exchange.uri,
        "status_code": exchange.status_code,
        "reason": exchange.reason,
        "admin_protocol": exchange.admin_protocol,
        "agent_id": exchange.agent_id,
        "script_status": exchange.script_status,
        "resume": exchange.resume,
        "next_uri": exchange.next_uri,
        "targeted_application": exchange.targeted_application,
        "content_type": exchange.content_type,
        "content_length": exchange.body_length,
    }


def check_as_sent(rows: list[HttpExchange], heads: list[str]) -> None:
    """Headers in order and as sent, the HTTP version, and the timestamps given."""
    for position, (row, head) in enumerate(zip(rows, heads, strict=True)):
        assert row.headers == [list(pair) for pair in parse_http_head(head).headers]
        assert row.http_version == "HTTP/1.1"
        assert row.timestamp == T0 + timedelta(milliseconds=40 * position)


def test_annex_a_nominal_session(manager: DatabaseManager) -> None:
    heads = [
        opening_post(),
        script_response("/server/adminagent?cmd=2", 250),
        result_post("/server/adminagent?cmd=2", "ok", 42),
        END,
    ]
    session_id = new_session(manager)
    record(manager, session_id, heads)
    rows = stored(manager, session_id)
    assert [fields(row) for row in rows] == [
        request("/server/adminagent?cmd=1"),
        response(200, "OK", next_uri="/server/adminagent?cmd=2", content_type=SCRIPT,
                 content_length=250),
        request("/server/adminagent?cmd=2", script_status=ScriptStatus.OK,
                content_type=SCRIPT_RESPONSE, content_length=42),
        response(204, "No Content"),
    ]  # fmt: skip
    assert [row.command_session for row in rows] == [None, 1, 1, 1]
    check_as_sent(rows, heads)
    assert rows[0].headers[0] == ["Host", "10.10.10.10"]
    with UnitOfWork(manager) as uow:
        assert uow.sessions.get_by_id(session_id).agent_id == AGENT


def test_annex_a_through_an_intermediary_actor_with_a_targeted_application(
    manager: DatabaseManager,
) -> None:
    heads = [
        opening_post("/intermediary/ota?cmd=1"),
        script_response("/intermediary/ota?cmd=2", 120, TARGETED),
        result_post("/intermediary/ota?cmd=2", "ok", 16),
        script_response("/intermediary/ota?cmd=3", 64, TARGETED),
        result_post("/intermediary/ota?cmd=3", "ok", 8),
        script_response("/intermediary/ota?cmd=4", 30),  # back to the agent's own SD
        result_post("/intermediary/ota?cmd=4", "ok", 4),
        END,
    ]
    session_id = new_session(manager)
    record(manager, session_id, heads)
    rows = stored(manager, session_id)
    targeted = {"targeted_application": "A0000000180001", "content_type": SCRIPT}
    assert [fields(row) for row in rows] == [
        request("/intermediary/ota?cmd=1"),
        response(200, "OK", next_uri="/intermediary/ota?cmd=2", content_length=120, **targeted),
        request("/intermediary/ota?cmd=2", script_status=ScriptStatus.OK,
                content_type=SCRIPT_RESPONSE, content_length=16),
        response(200, "OK", next_uri="/intermediary/ota?cmd=3", content_length=64, **targeted),
        request("/intermediary/ota?cmd=3", script_status=ScriptStatus.OK,
                content_type=SCRIPT_RESPONSE, content_length=8),
        response(200, "OK", next_uri="/intermediary/ota?cmd=4", content_type=SCRIPT,
                 content_length=30),
        request("/intermediary/ota?cmd=4", script_status=ScriptStatus.OK,
                content_type=SCRIPT_RESPONSE, content_length=4),
        response(204, "No Content"),
    ]  # fmt: skip
    assert [row.command_session for row in rows] == [None, 1, 1, 1, 1, 2, 2, 2]
    check_as_sent(rows, heads)
    assert ["X-Admin-Targeted-Application", "//aid/A000000018/0001"] in rows[1].headers


def test_annex_a_security_error_reported_by_the_targeted_security_domain(
    manager: DatabaseManager,
) -> None:
    heads = [
        opening_post(),
        script_response(
            "/server/adminagent?cmd=2", 88, "X-Admin-Targeted-Application: //aid/A000000151/535041"
        ),
        result_post("/server/adminagent?cmd=2", "security-error", 0),
        END,
    ]
    session_id = new_session(manager)
    nominal = new_session(manager)
    record(manager, nominal, [opening_post(), script_response("/n", 1), result_post("/n", "ok", 1)])
    record(manager, session_id, heads)
    rows = stored(manager, session_id)
    assert [fields(row) for row in rows] == [
        request("/server/adminagent?cmd=1"),
        response(200, "OK", next_uri="/server/adminagent?cmd=2",
                 targeted_application="A000000151535041", content_type=SCRIPT, content_length=88),
        request("/server/adminagent?cmd=2", script_status=ScriptStatus.SECURITY_ERROR,
                content_type=SCRIPT_RESPONSE, content_length=0),
        response(204, "No Content"),
    ]  # fmt: skip
    assert [row.command_session for row in rows] == [None, 1, 1, 1]
    check_as_sent(rows, heads)
    with UnitOfWork(manager) as uow:
        found = uow.sessions.find_by_script_status("security-error")
        assert [session.id for session in found] == [session_id]
        both = uow.sessions.find_by_script_status(ScriptStatus.OK)
        assert {session.id for session in both} == {nominal}
        assert uow.sessions.find_by_script_status(ScriptStatus.UNKNOWN_APPLICATION) == []
        with pytest.raises(ValidationError, match="'fine' is not one of ok"):
            uow.sessions.find_by_script_status("fine")


def test_annex_a_communication_breakdown_then_resume(manager: DatabaseManager) -> None:
    first = [opening_post(), script_response("/server/adminagent?cmd=2", 250)]
    after_breakdown = [
        opening_post("/server/adminagent?cmd=2", "X-Admin-Resume: true"),
        script_response("/server/adminagent?cmd=3", 250),
        result_post("/server/adminagent?cmd=3", "ok", 42),
        END,
    ]
    session_id = new_session(manager)
    record(manager, session_id, first)
    # A new TLS connection, another unit of work: the numbering goes on from the database.
    record(manager, session_id, after_breakdown, start=len(first))
    rows = stored(manager, session_id)
    assert [fields(row) for row in rows] == [
        request("/server/adminagent?cmd=1"),
        response(200, "OK", next_uri="/server/adminagent?cmd=2", content_type=SCRIPT,
                 content_length=250),
        request("/server/adminagent?cmd=2", resume=True),
        response(200, "OK", next_uri="/server/adminagent?cmd=3", content_type=SCRIPT,
                 content_length=250),
        request("/server/adminagent?cmd=3", script_status=ScriptStatus.OK,
                content_type=SCRIPT_RESPONSE, content_length=42),
        response(204, "No Content"),
    ]  # fmt: skip
    assert [row.command_session for row in rows] == [None, 1, 1, 1, 1, 1]
    check_as_sent(rows, first + after_breakdown)
    assert ["X-Admin-Resume", "true"] in rows[2].headers


def test_a_malformed_head_names_its_line_and_stores_nothing(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    bad = "POST /a HTTP/1.1\r\nX-Admin-From: agent-2\r\nX-Admin-Resume: maybe\r\n\r\n"
    with UnitOfWork(manager) as uow:
        uow.exchanges.record_http(session_id, opening_post())
        with pytest.raises(ValidationError, match=r"^HTTP head line 3 'X-Admin-Resume: maybe'"):
            uow.exchanges.record_http(session_id, bad)
        uow.commit()  # the unit of work goes on: only the good head is kept
    with UnitOfWork(manager) as uow:
        assert uow.exchanges.count() == 1
        assert uow.sessions.get_by_id(session_id).agent_id == AGENT
        with pytest.raises(NotFoundError, match="session"):
            uow.exchanges.record_http("0f0e0d0c-0b0a-4908-8706-050403020100", opening_post())
        with pytest.raises(ValidationError, match="body_length"):
            uow.exchanges.record_http(session_id, END, body_length=-1)
        assert uow.exchanges.count() == 1


def test_body_length_given_wins_and_bytes_with_lf_are_read(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    head = script_response("/a", 250).replace("\r\n", "\n").encode("ascii")
    with UnitOfWork(manager) as uow:
        exchange = uow.exchanges.record_http(session_id, head, body_length=251)
        uow.commit()
    with UnitOfWork(manager) as uow:
        row = uow.exchanges.get_by_id(exchange.id)
        assert (row.body_length, row.direction, row.command_session) == (
            251,
            HttpDirection.RESPONSE,
            1,
        )


def test_recording_emits_an_exchange_event_and_the_new_agent_id(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    heard: list[Any] = []
    get_emitter().on("*", heard.append)
    record(manager, session_id, [opening_post(), script_response("/b", 1)])
    assert [(event.event_type, event.entity_type) for event in heard] == [
        (EventType.EXCHANGE_CREATED, "exchange"),
        (EventType.SESSION_UPDATED, "session"),
        (EventType.EXCHANGE_CREATED, "exchange"),
    ]
    assert heard[0].data["agent_id"] == AGENT and heard[0].data["session_id"] == str(session_id)
    assert heard[1].data["changed_fields"] == ["agent_id"]


def test_a_log_names_its_exchange_and_a_deleted_session_takes_its_exchanges(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        exchange = uow.exchanges.record_http(session_id, script_response("/a", 13))
        uow.logs.create(
            CommLog(
                session_id=session_id,
                direction="command",
                raw_data="80E60C00",
                exchange_id=exchange.id,
            )
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        (log,) = uow.logs.find_by_session(session_id)
        assert log.exchange_id == exchange.id
        uow.sessions.delete_by_id(session_id)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert (uow.exchanges.count(), uow.logs.count()) == (0, 0)


def test_set_tls_info_keeps_the_guides_signature_and_takes_the_tls_side(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.sessions.set_tls_info(session_id, "TLS_PSK_WITH_AES_128_CBC_SHA256", "card_001")
        uow.sessions.set_tls_info(
            session_id,
            tls_version="TLSv1.2",
            client_address="[2001:db8::7]:49152",
            handshake_ms=38,
            tls_alert=0,
            close_reason="close_notify after 204",
            agent_id="agent-1",
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        session = uow.sessions.get_by_id(session_id)
        assert (session.cipher_suite, session.psk_identity) == (
            "TLS_PSK_WITH_AES_128_CBC_SHA256",
            "card_001",
        )
        assert (
            session.tls_version,
            session.client_address,
            session.handshake_ms,
            session.tls_alert,
            session.tls_alert_description,
            session.close_reason,
            session.agent_id,
        ) == ("TLSv1.2", "[2001:db8::7]:49152", 38, 0, "close_notify", "close_notify after 204",
              "agent-1")  # fmt: skip
        with pytest.raises(ValidationError, match="tls_alert must be an alert number"):
            uow.sessions.set_tls_info(session_id, tls_alert=256)
        with pytest.raises(ValidationError, match="handshake_ms: expected an integer"):
            uow.sessions.set_tls_info(session_id, handshake_ms="fast")  # type: ignore[arg-type]


def test_a_handshake_failure_is_stored_even_for_an_unknown_identity(
    manager: DatabaseManager,
) -> None:
    at = datetime.now(timezone.utc) - timedelta(hours=1)
    heard: list[Any] = []
    get_emitter().on("*", heard.append)
    with UnitOfWork(manager) as uow:
        uow.cards.create(CardProfile(iccid="8901", psk_identity="card_001"))
        unknown = uow.sessions.record_handshake_failure("who-is-this", "10.0.0.7:49152", 115, at)
        known = uow.sessions.record_handshake_failure(
            "card_001", "10.0.0.8:50000", (51, "decrypt_error")
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        first = uow.sessions.get_by_id(unknown.id)
        second = uow.sessions.get_by_id(known.id)
    assert (first.status, first.card_iccid, first.device_id) == (SessionStatus.FAILED, None, None)
    assert (first.psk_identity, first.client_address) == ("who-is-this", "10.0.0.7:49152")
    assert (first.tls_alert, first.tls_alert_description) == (115, "unknown_psk_identity")
    assert first.error_code == "UNKNOWN_PSK_IDENTITY"
    assert first.started_at == first.ended_at == at.replace(microsecond=at.microsecond)
    assert (second.card_iccid, second.error_code) == ("8901", "TLS_HANDSHAKE_FAILED")
    assert (second.tls_alert, second.tls_alert_description) == (51, "decrypt_error")
    kinds = [event.event_type for event in heard if event.entity_type == "session"]
    assert kinds == [EventType.SESSION_CREATED, EventType.SESSION_FAILED] * 2
    with UnitOfWork(manager) as uow:
        spaced = uow.sessions.record_handshake_failure("card_001 ", None, 115)
        assert (spaced.card_iccid, spaced.error_code) == (None, "UNKNOWN_PSK_IDENTITY")
        with pytest.raises(ValidationError, match=r"0\.\.255"):
            uow.sessions.record_handshake_failure("x", None, -1)


def test_failures_by_cause_counts_alerts_script_statuses_and_error_codes(
    manager: DatabaseManager,
) -> None:
    now = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        for _ in range(3):
            uow.sessions.record_handshake_failure("nobody", "10.0.0.1:1", 115, now)
        uow.sessions.record_handshake_failure("nobody", "10.0.0.1:1", 40, now)
        uow.sessions.record_handshake_failure("old", None, 115, now - timedelta(days=8))
        errored = uow.sessions.create_session()
        uow.sessions.start_session(errored.id)
        uow.exchanges.record_http(errored.id, result_post("/a", "security-error", 0))
        uow.exchanges.record_http(errored.id, result_post("/b", "security-error", 0))
        uow.exchanges.record_http(errored.id, result_post("/c", "ok", 0))
        uow.sessions.fail_session(errored.id, "SCRIPT_FAILED", "security-error")
        timed_out = uow.sessions.create_session()
        uow.sessions.start_session(timed_out.id)
        uow.exchanges.record_http(timed_out.id, result_post("/a", "unknown-application", 0))
        uow.sessions.timeout_session(timed_out.id)
        uow.commit()
    with UnitOfWork(manager) as uow:
        causes = uow.sessions.failures_by_cause()
        wider = uow.sessions.failures_by_cause(days=30)
        with pytest.raises(ValidationError, match="days must be a number between 0"):
            uow.sessions.failures_by_cause(days=0)
    assert causes["tls_alerts"] == [
        {"alert": 115, "description": "unknown_psk_identity", "count": 3},
        {"alert": 40, "description": "handshake_failure", "count": 1},
    ]
    assert causes["script_statuses"] == [
        {"status": ScriptStatus.SECURITY_ERROR, "count": 1},
        {"status": ScriptStatus.UNKNOWN_APPLICATION, "count": 1},
    ]
    assert causes["error_codes"] == [
        {"error_code": "UNKNOWN_PSK_IDENTITY", "count": 4},
        {"error_code": "SCRIPT_FAILED", "count": 1},
        {"error_code": "TIMEOUT", "count": 1},
    ]
    assert wider["tls_alerts"][0]["count"] == 4 and wider["error_codes"][0]["count"] == 5
