"""SCP81 HTTP heads: the four examples of GlobalPlatform Amendment B Annex A, parsed field by field.

The heads are written in the shape of the Annex's flows (agent id, URIs and AIDs as
in its examples), with CRLF as sent on the wire; the parser is pure code, so these
tests need no database.
"""

from __future__ import annotations

import pytest

from cardlink.database import (
    CommandSessions,
    HttpDirection,
    HttpHead,
    ScriptStatus,
    ValidationError,
    parse_http_head,
)

PROTOCOL = "globalplatform-remote-admin/1.0"
AGENT = "//se-id/eid/1234567890ABCDEF;//aa-id/aid/A000000151/000000"
SCRIPT = "application/vnd.globalplatform.card-content-mgt;version=1.0"
SCRIPT_RESPONSE = "application/vnd.globalplatform.card-content-mgt-response;version=1.0"


def crlf(*lines: str) -> str:
    """A head as sent: each line ended by CRLF, then the empty line that ends the head."""
    return "".join(f"{line}\r\n" for line in lines) + "\r\n"


def opening_post(uri: str = "/server/adminagent?cmd=1", *extra: str) -> str:
    return crlf(
        f"POST {uri} HTTP/1.1",
        "Host: 10.10.10.10",
        f"X-Admin-Protocol: {PROTOCOL}",
        f"X-Admin-From: {AGENT}",
        *extra,
        "Content-Length: 0",
    )


def script_response(next_uri: str, length: int, *extra: str) -> str:
    return crlf(
        "HTTP/1.1 200 OK",
        f"X-Admin-Protocol: {PROTOCOL}",
        f"X-Admin-Next-URI: {next_uri}",
        *extra,
        f"Content-Type: {SCRIPT}",
        f"Content-Length: {length}",
    )


def result_post(uri: str, status: str, length: int, *extra: str) -> str:
    return crlf(
        f"POST {uri} HTTP/1.1",
        "Host: 10.10.10.10",
        f"X-Admin-Protocol: {PROTOCOL}",
        f"X-Admin-From: {AGENT}",
        *extra,
        f"Content-Type: {SCRIPT_RESPONSE}",
        f"X-Admin-Script-Status: {status}",
        f"Content-Length: {length}",
    )


END = crlf("HTTP/1.1 204 No Content", f"X-Admin-Protocol: {PROTOCOL}")


def fields(head: HttpHead) -> dict[str, object]:
    """Every typed field of a head (the header list is checked on its own)."""
    return {
        name: getattr(head, name)
        for name in HttpHead.__dataclass_fields__
        if name not in ("headers", "http_version")
    }


def request(uri: str, **given: object) -> dict[str, object]:
    expected: dict[str, object] = {
        "direction": HttpDirection.REQUEST,
        "method": "POST",
        "uri": uri,
        "status_code": None,
        "reason": None,
        "admin_protocol": PROTOCOL,
        "agent_id": AGENT,
        "script_status": None,
        "resume": False,
        "next_uri": None,
        "targeted_application": None,
        "content_type": None,
        "content_length": 0,
    }
    expected.update(given)
    return expected


def response(status_code: int, reason: str, **given: object) -> dict[str, object]:
    expected: dict[str, object] = {
        "direction": HttpDirection.RESPONSE,
        "method": None,
        "uri": None,
        "status_code": status_code,
        "reason": reason,
        "admin_protocol": PROTOCOL,
        "agent_id": None,
        "script_status": None,
        "resume": False,
        "next_uri": None,
        "targeted_application": None,
        "content_type": None,
        "content_length": None,
    }
    expected.update(given)
    return expected


def numbered(heads: list[str]) -> list[tuple[HttpHead, int | None]]:
    sessions = CommandSessions()
    parsed = [parse_http_head(raw) for raw in heads]
    return [(head, sessions.advance(head)) for head in parsed]


def test_annex_a_nominal_session() -> None:
    flow = numbered(
        [
            opening_post(),
            script_response("/server/adminagent?cmd=2", 250),
            result_post("/server/adminagent?cmd=2", "ok", 42),
            END,
        ]
    )
    assert [fields(head) for head, _ in flow] == [
        request("/server/adminagent?cmd=1"),
        response(
            200,
            "OK",
            next_uri="/server/adminagent?cmd=2",
            content_type=SCRIPT,
            content_length=250,
        ),
        request(
            "/server/adminagent?cmd=2",
            script_status=ScriptStatus.OK,
            content_type=SCRIPT_RESPONSE,
            content_length=42,
        ),
        response(204, "No Content"),
    ]
    assert [number for _, number in flow] == [None, 1, 1, 1]
    assert all(head.http_version == "HTTP/1.1" for head, _ in flow)
    assert flow[0][0].headers == (
        ("Host", "10.10.10.10"),
        ("X-Admin-Protocol", PROTOCOL),
        ("X-Admin-From", AGENT),
        ("Content-Length", "0"),
    )


def test_annex_a_through_an_intermediary_actor_with_a_targeted_application() -> None:
    targeted = "X-Admin-Targeted-Application: //aid/A000000018/0001"
    flow = numbered(
        [
            opening_post("/intermediary/ota?cmd=1"),
            script_response("/intermediary/ota?cmd=2", 120, targeted),
            result_post("/intermediary/ota?cmd=2", "ok", 16),
            script_response("/intermediary/ota?cmd=3", 64, targeted),
            result_post("/intermediary/ota?cmd=3", "ok", 8),
            script_response("/intermediary/ota?cmd=4", 30),  # back to the agent's own SD
            result_post("/intermediary/ota?cmd=4", "ok", 4),
            END,
        ]
    )
    heads = [head for head, _ in flow]
    assert fields(heads[1]) == response(
        200,
        "OK",
        next_uri="/intermediary/ota?cmd=2",
        targeted_application="A0000000180001",
        content_type=SCRIPT,
        content_length=120,
    )
    assert fields(heads[2]) == request(
        "/intermediary/ota?cmd=2",
        script_status=ScriptStatus.OK,
        content_type=SCRIPT_RESPONSE,
        content_length=16,
    )
    assert heads[1].header("x-admin-targeted-application") == "//aid/A000000018/0001"
    assert [name for name, _ in heads[1].headers] == [
        "X-Admin-Protocol",
        "X-Admin-Next-URI",
        "X-Admin-Targeted-Application",
        "Content-Type",
        "Content-Length",
    ]
    # Same application and content type: one command session; another application: a new one.
    assert [number for _, number in flow] == [None, 1, 1, 1, 1, 2, 2, 2]


def test_annex_a_security_error_reported_by_the_targeted_security_domain() -> None:
    flow = numbered(
        [
            opening_post(),
            script_response(
                "/server/adminagent?cmd=2",
                88,
                "X-Admin-Targeted-Application: //aid/A000000151/535041",
            ),
            result_post("/server/adminagent?cmd=2", "security-error", 0),
            END,
        ]
    )
    heads = [head for head, _ in flow]
    assert fields(heads[1]) == response(
        200,
        "OK",
        next_uri="/server/adminagent?cmd=2",
        targeted_application="A000000151535041",
        content_type=SCRIPT,
        content_length=88,
    )
    assert fields(heads[2]) == request(
        "/server/adminagent?cmd=2",
        script_status=ScriptStatus.SECURITY_ERROR,
        content_type=SCRIPT_RESPONSE,
        content_length=0,
    )
    assert fields(heads[3]) == response(204, "No Content")


def test_annex_a_communication_breakdown_then_resume() -> None:
    first = [
        opening_post(),
        script_response("/server/adminagent?cmd=2", 250),
    ]
    # The TLS connection broke before the card's results reached the server; the agent
    # opens a new one and says it resumes, posting to the Next-URI it was given.
    after_breakdown = [
        opening_post("/server/adminagent?cmd=2", "X-Admin-Resume: true"),
        script_response("/server/adminagent?cmd=3", 250),
        result_post("/server/adminagent?cmd=3", "ok", 42),
        END,
    ]
    sessions = CommandSessions()
    numbers = [sessions.advance(parse_http_head(raw)) for raw in first]
    # The server restarted: the counter goes on from the state stored with the last exchange.
    resumed = CommandSessions(
        number=sessions.number,
        targeted_application=sessions.targeted_application,
        content_type=sessions.content_type,
    )
    heads = [parse_http_head(raw) for raw in after_breakdown]
    numbers += [resumed.advance(head) for head in heads]
    assert fields(heads[0]) == request("/server/adminagent?cmd=2", resume=True)
    assert heads[0].header("X-Admin-Resume") == "true"
    assert fields(heads[1])["next_uri"] == "/server/adminagent?cmd=3"
    assert fields(heads[2]) == request(
        "/server/adminagent?cmd=3",
        script_status=ScriptStatus.OK,
        content_type=SCRIPT_RESPONSE,
        content_length=42,
    )
    assert numbers == [None, 1, 1, 1, 1, 1]


def test_lf_only_heads_and_bytes_parse_like_crlf() -> None:
    raw = opening_post("/a", "X-Admin-Resume: TRUE")
    lf = raw.replace("\r\n", "\n")
    assert parse_http_head(lf) == parse_http_head(raw) == parse_http_head(raw.encode("ascii"))
    assert parse_http_head(raw.rstrip("\r\n")).resume is True  # without the closing empty line


def test_script_statuses_and_content_type_changes() -> None:
    for status in ScriptStatus:
        head = parse_http_head(result_post("/a", status.value, 1))
        assert head.script_status is status
    sessions = CommandSessions()
    first = parse_http_head(script_response("/a", 1))
    spaced = parse_http_head(
        crlf(
            "HTTP/1.1 200 OK",
            "Content-Type: Application/Vnd.GlobalPlatform.Card-Content-Mgt ; version = 1.0",
        )
    )
    other = parse_http_head(
        crlf("HTTP/1.1 200 OK", "Content-Type: application/vnd.etsi.scp.command-data;version=1.0")
    )
    assert [sessions.advance(head) for head in (first, spaced, other, first)] == [1, 1, 2, 3]


@pytest.mark.parametrize(
    ("raw", "line", "why"),
    [
        ("", None, "empty"),
        ("GET\r\n", 1, "request line"),
        ("POST /a HTTP/1.1 extra\r\n", 1, "request line"),
        ("HTTP/1.1 2000 OK\r\n", 1, "status line"),
        ("POST /a HTTP/1.1\r\nNo colon here\r\n", 2, "Name: value"),
        ("POST /a HTTP/1.1\r\nBad Name: x\r\n", 2, "Name: value"),
        ("POST /a HTTP/1.1\r\nHost: a\r\n folded\r\n", 3, "folding"),
        ("POST /a HTTP/1.1\r\nX-Admin-Resume: maybe\r\n", 2, "true or false"),
        ("POST /a HTTP/1.1\r\nX-Admin-Script-Status: fine\r\n", 2, "security-error"),
        ("HTTP/1.1 200 OK\r\nX-Admin-Targeted-Application: A000000018\r\n", 2, "//aid/"),
        ("HTTP/1.1 200 OK\r\nX-Admin-Targeted-Application: //aid/A00000/01\r\n", 2, "//aid/"),
        ("HTTP/1.1 200 OK\r\nX-Admin-Targeted-Application: //aid/A000000018/001\r\n", 2, "//aid/"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n", 2, "whole number"),
        ("HTTP/1.1 200 OK\r\nX-Admin-Next-URI: /a\r\nX-Admin-Next-URI: /b\r\n", 3, "twice"),
        ("HTTP/1.1 200 OK\r\nHost: a\x01b\r\n", 2, "control character"),
        ("HTTP/1.1 200 OK\r\n\r\n<body>\r\n", 2, "body"),
    ],
)
def test_a_malformed_head_is_refused_naming_the_line(raw: str, line: int | None, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as refused:
        parse_http_head(raw)
    message = str(refused.value)
    assert "\n" not in message
    if line is not None:
        assert message.startswith(f"HTTP head line {line} ")


def test_odd_input_is_refused_with_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="text or bytes"):
        parse_http_head(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at most"):
        parse_http_head("POST /a HTTP/1.1\r\nX-Pad: " + "x" * 70_000)
    same_twice = parse_http_head(
        "HTTP/1.1 200 OK\r\nX-Admin-Next-URI: /a\r\nX-Admin-Next-URI: /a\r\n"
    )
    assert same_twice.next_uri == "/a" and len(same_twice.headers) == 2
