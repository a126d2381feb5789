"""SCP81 HTTP heads (GlobalPlatform Amendment B): parsed from the raw text the server saw.

An Amendment B admin session is a series of HTTP exchanges over TLS-PSK: the
card's admin agent POSTs (its first POST opens the session, later ones carry the
results of the last script) and the server answers each with the next script, or
with ``204 No Content`` to end. ``parse_http_head`` turns one head - start line
and headers, CRLF or LF line ends, exactly as received - into an ``HttpHead``;
``CommandSessions`` numbers the command sessions of section 3.6 over a session's
heads. Pure code: nothing here touches the database.

Example::

    head = parse_http_head(
        "HTTP/1.1 200 OK\\r\\n"
        "X-Admin-Protocol: globalplatform-remote-admin/1.0\\r\\n"
        "X-Admin-Targeted-Application: //aid/A000000018/0001\\r\\n"
    )
    head.targeted_application  # 'A0000000180001'
"""

from __future__ import annotations

import enum
import re
import ssl
from dataclasses import dataclass
from typing import Any

from .exceptions import ValidationError


class HttpDirection(str, enum.Enum):
    """Who sent the head: the card's admin agent (a request) or the admin server."""

    REQUEST = "request"
    RESPONSE = "response"


class ScriptStatus(str, enum.Enum):
    """``X-Admin-Script-Status``: how the targeted application took the last script."""

    OK = "ok"
    UNKNOWN_APPLICATION = "unknown-application"
    NOT_A_SECURITY_DOMAIN = "not-a-security-domain"
    SECURITY_ERROR = "security-error"


@dataclass(frozen=True)
class HttpHead:
    """One HTTP head of an Amendment B session; X-Admin fields are None when not sent."""

    direction: HttpDirection
    http_version: str
    #: Request (the card's POST): method and request target.
    method: str | None
    uri: str | None
    #: Response (the server's answer): status code and reason phrase.
    status_code: int | None
    reason: str | None
    admin_protocol: str | None
    #: ``X-Admin-From``: the admin agent's id, as sent.
    agent_id: str | None
    script_status: ScriptStatus | None
    #: ``X-Admin-Resume: true`` - the card resumes after a communication breakdown.
    resume: bool
    next_uri: str | None
    #: ``X-Admin-Targeted-Application`` as the AID in hex (``//aid/A000000018/0001``:
    #: ``A0000000180001``).
    targeted_application: str | None
    content_type: str | None
    content_length: int | None
    #: Every header as sent: (name, value) in order, names in their own case.
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


#: Longest head accepted; Amendment B heads are a few hundred bytes.
MAX_HEAD_LENGTH = 64 * 1024

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) ([!-~]+) (HTTP/\d\.\d)")
_STATUS_LINE = re.compile(r"(HTTP/\d\.\d) (\d{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_LINE = re.compile(rf"({_TOKEN}):[ \t]*(.*?)[ \t]*")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_TARGETED_AID = re.compile(r"//aid/([0-9A-Fa-f]{10})(?:/([0-9A-Fa-f]{0,22}))?")
_SINGLE = (
    "x-admin-protocol",
    "x-admin-from",
    "x-admin-script-status",
    "x-admin-resume",
    "x-admin-next-uri",
    "x-admin-targeted-application",
    "content-type",
    "content-length",
)


def parse_http_head(raw: str | bytes) -> HttpHead:
    """Parse one HTTP head (start line and headers; CRLF or LF); ``ValidationError`` names
    the line that is wrong. Bytes are read as ISO-8859-1, as HTTP defines header octets."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("iso-8859-1")
    if not isinstance(raw, str):
        raise ValidationError(f"HTTP head must be text or bytes, got {type(raw).__name__}")
    if len(raw) > MAX_HEAD_LENGTH:
        raise ValidationError(
            f"HTTP head is {len(raw)} characters long; at most {MAX_HEAD_LENGTH} are accepted"
        )
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the line end of the last line
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and lines[-1] == "":
        lines.pop()  # the empty line that ends a head
    if not lines:
        raise ValidationError("HTTP head is empty: expected a request or status line")
    head = _start_line(lines[0])
    headers: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        name, value = _header_line(number, line)
        key = name.lower()
        if key in _SINGLE and key in seen and seen[key] != value:
            raise _bad(number, line, f"{name} is sent twice with different values")
        seen.setdefault(key, value)
        headers.append((name, value))
        _apply(head, key, number, line, value)
    return HttpHead(**head, headers=tuple(headers))


def _start_line(line: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": None,
        "uri": None,
        "status_code": None,
        "reason": None,
        "admin_protocol": None,
        "agent_id": None,
        "script_status": None,
        "resume": False,
        "next_uri": None,
        "targeted_application": None,
        "content_type": None,
        "content_length": None,
    }
    response = _STATUS_LINE.fullmatch(line)
    if response:
        fields.update(
            direction=HttpDirection.RESPONSE,
            http_version=response.group(1),
            status_code=int(response.group(2)),
            reason=response.group(3) or "",
        )
        return fields
    request = _REQUEST_LINE.fullmatch(line)
    if request:
        fields.update(
            direction=HttpDirection.REQUEST,
            method=request.group(1),
            uri=request.group(2),
            http_version=request.group(3),
        )
        return fields
    raise _bad(
        1, line, "expected a request line 'POST <uri> HTTP/1.1' or a status line 'HTTP/1.1 200 OK'"
    )


def _header_line(number: int, line: str) -> tuple[str, str]:
    if line == "":
        raise _bad(number, line, "an empty line ends the head; pass the head without the body")
    if line[0] in " \t":
        raise _bad(number, line, "obsolete line folding (a header continued on the next line)")
    match = _HEADER_LINE.fullmatch(line)
    if match is None:
        raise _bad(number, line, "expected 'Name: value'")
    name, value = match.group(1), match.group(2)
    if not _FIELD_VALUE.fullmatch(value):
        raise _bad(number, line, f"{name} holds a control character")
    return name, value


def _apply(head: dict[str, Any], key: str, number: int, line: str, value: str) -> None:
    """Fill the typed field that header ``key`` feeds, checking its form."""
    if key == "x-admin-protocol":
        head["admin_protocol"] = value
    elif key == "x-admin-from":
        head["agent_id"] = value
    elif key == "x-admin-next-uri":
        head["next_uri"] = value
    elif key == "content-type":
        head["content_type"] = value
    elif key == "x-admin-script-status":
        try:
            head["script_status"] = ScriptStatus(value.lower())
        except ValueError:
            valid = ", ".join(status.value for status in ScriptStatus)
            raise _bad(number, line, f"X-Admin-Script-Status must be one of {valid}") from None
    elif key == "x-admin-resume":
        if value.lower() not in ("true", "false"):
            raise _bad(number, line, "X-Admin-Resume must be true or false")
        head["resume"] = value.lower() == "true"
    elif key == "x-admin-targeted-application":
        head["targeted_application"] = _aid(number, line, value)
    elif key == "content-length":
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise _bad(number, line, "Content-Length must be a whole number of bytes")
        head["content_length"] = int(value)


def _aid(number: int, line: str, value: str) -> str:
    """``//aid/<RID>/<PIX>`` as the AID in upper-case hex (5 to 16 bytes)."""
    match = _TARGETED_AID.fullmatch(value)
    if match is None or len(match.group(2) or "") % 2:
        raise _bad(
            number,
            line,
            "X-Admin-Targeted-Application must be //aid/<RID: 10 hex digits>/<PIX: up to 22 "
            "hex digits, whole bytes>",
        )
    return (match.group(1) + (match.group(2) or "")).upper()


def _bad(number: int, line: str, why: str) -> ValidationError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return ValidationError(f"HTTP head line {number} {shown!r}: {why}")


def _media_type(content_type: str) -> str:
    """A Content-Type compared as its parts: case and spaces around ``;``/``=`` do not count."""
    parts = [part.strip() for part in content_type.split(";")]
    return ";".join(
        "=".join(piece.strip() for piece in part.split("=", 1)).lower() for part in parts if part
    )


@dataclass
class CommandSessions:
    """Numbers the command sessions of an admin session (Amendment B, section 3.6).

    A server response that carries a script (it has a Content-Type) starts command
    session 1, and a new one whenever its targeted application (absent: the agent's
    own security domain) or its content type differs from the previous script's.
    The card's POSTs, and bodiless answers such as ``204``, belong to the current
    one; before the first script the number is None. To go on after a restart, build
    it from the last stored state: ``CommandSessions(number=3, targeted_application=
    'A0000000180001', content_type='application/vnd...;version=1.0')``.
    """

    number: int | None = None
    targeted_application: str | None = None
    content_type: str | None = None

    def advance(self, head: HttpHead) -> int | None:
        """The command-session number of ``head`` (heads given in the order exchanged)."""
        if head.direction is HttpDirection.RESPONSE and head.content_type is not None:
            changed = (
                self.number is None
                or head.targeted_application != self.targeted_application
                or self.content_type is None
                or _media_type(head.content_type) != _media_type(self.content_type)
            )
            if changed:
                self.number = (self.number or 0) + 1
            self.targeted_application = head.targeted_application
            self.content_type = head.content_type
        return self.number


def tls_alert(alert: int | tuple[int, str]) -> tuple[int, str | None]:
    """A TLS alert as (number, description): ``115`` gives ``(115, 'unknown_psk_identity')``.

    The description is the RFC name the ``ssl`` module knows for the number (None for
    one it does not); ``(number, description)`` gives your own. The number is 0..255.
    """
    if isinstance(alert, tuple) and len(alert) == 2:
        number, description = alert
    else:
        number, description = alert, None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 255:
        raise ValidationError(f"tls_alert must be an alert number 0..255, got {number!r}")
    if description is not None and not isinstance(description, str):
        raise ValidationError(
            f"tls_alert description must be text, got {type(description).__name__}"
        )
    if description is None:
        try:
            name = ssl.AlertDescription(number).name
        except ValueError:
            return number, None
        description = name.removeprefix("ALERT_DESCRIPTION_").lower()
    return number, description
