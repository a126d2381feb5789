"""One SCP81 session in time order: its state changes, HTTP exchanges and APDUs.

``SessionRepository.timeline`` builds it from stored rows; an APDU is shown from
its stored decoded columns (filled on insert, see ``repositories.log_columns``).
Each entry has a one-line summary so a terminal, a log or a report can print it as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .apdu import describe_status_word
from .exceptions import ValidationError
from .models import CommDirection, CommLog, HttpExchange, OTASession
from .scp81 import HttpDirection
from .types import to_utc

#: Entries at the same instant keep this order: the session opens before anything in it
#: happens and ends after it.
_RANK = {"created": 0, "started": 1, "http": 2, "apdu": 2, "ended": 3}


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of a session: ``kind`` is created, started, http, apdu or ended."""

    timestamp: datetime
    kind: str
    summary: str
    #: Milliseconds since the previous entry (None for the first).
    gap_ms: float | None = None
    #: The row behind the entry: the exchange's or log's id (None for state changes).
    ref_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the timestamp in ISO 8601."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "kind": self.kind,
            "summary": self.summary,
            "gap_ms": self.gap_ms,
            "ref_id": self.ref_id,
        }


def build_timeline(
    session: OTASession, exchanges: list[HttpExchange], logs: list[CommLog]
) -> list[TimelineEntry]:
    """The entries of ``session`` in time order, each with the gap since the previous one."""
    found: list[tuple[datetime, int, int, str, str, int | None]] = []
    position = 0

    def add(at: datetime | None, kind: str, summary: str, ref_id: int | None = None) -> None:
        nonlocal position
        if at is not None:
            found.append((to_utc(at), _RANK[kind], position, kind, summary, ref_id))
            position += 1

    add(session.created_at, "created", _created(session))
    add(session.started_at, "started", _started(session))
    for exchange in exchanges:
        add(exchange.timestamp, "http", exchange_summary(exchange), exchange.id)
    for log in logs:
        add(log.timestamp, "apdu", apdu_summary(log), log.id)
    if session.status.is_final:
        add(session.ended_at or session.updated_at, "ended", _ended(session))
    found.sort(key=lambda entry: entry[:3])
    entries: list[TimelineEntry] = []
    previous: datetime | None = None
    for at, _, _, kind, summary, ref_id in found:
        gap = None if previous is None else (at - previous).total_seconds() * 1000
        entries.append(TimelineEntry(at, kind, summary, gap, ref_id))
        previous = at
    return entries


def exchange_summary(exchange: HttpExchange) -> str:
    """``POST /uri`` or ``200 OK``, then the X-Admin headers that were sent, on one line."""
    if exchange.direction is HttpDirection.REQUEST:
        parts = [f"{exchange.method} {exchange.uri}"]
    else:
        parts = [f"{exchange.status_code} {exchange.reason or ''}".rstrip()]
    if exchange.script_status is not None:
        parts.append(f"script-status {exchange.script_status.value}")
    if exchange.resume:
        parts.append("resume")
    if exchange.targeted_application:
        parts.append(f"targeted {exchange.targeted_application}")
    if exchange.next_uri:
        parts.append(f"next {exchange.next_uri}")
    if exchange.content_type:
        parts.append(exchange.content_type)
    if exchange.body_length is not None:
        parts.append(f"{exchange.body_length} bytes")
    if exchange.command_session is not None:
        parts.append(f"command session {exchange.command_session}")
    return " · ".join(parts)


def apdu_summary(log: CommLog) -> str:
    """A command by its name and header bytes, a response by its status word and meaning."""
    if log.direction is CommDirection.COMMAND:
        header_bytes = (log.cla, log.ins, log.p1, log.p2)
        if None in header_bytes:
            return f"C-APDU {_short(log.raw_data)}"
        header = "".join(f"{byte:02X}" for byte in header_bytes)
        name = log.command_name or "unknown instruction"
        channel = f" channel {log.channel}" if log.channel else ""
        length = f" Lc={log.lc}" if log.lc else ""
        return f"C-APDU {name} {header}{length}{channel}"
    word = log.status_word
    meaning = log.status_message
    if word and not meaning:
        try:
            meaning = describe_status_word(word)
        except ValidationError:
            meaning = None
    shown = f"R-APDU {word or _short(log.raw_data)}"
    return f"{shown} {meaning}" if meaning else shown


def _short(raw: str | None) -> str:
    if not raw:
        return "(no data)"
    return raw if len(raw) <= 24 else f"{raw[:21]}..."


def _created(session: OTASession) -> str:
    parts = [f"session created ({session.session_type or 'no type'})"]
    if session.card_iccid:
        parts.append(f"card {session.card_iccid}")
    if session.device_id:
        parts.append(f"device {session.device_id}")
    return " · ".join(parts)


def _started(session: OTASession) -> str:
    parts = ["started"]
    for label, value in (
        ("", session.tls_version),
        ("", session.cipher_suite),
        ("identity ", session.psk_identity),
        ("from ", session.client_address),
        ("agent ", session.agent_id),
    ):
        if value:
            parts.append(f"{label}{value}")
    if session.handshake_ms is not None:
        parts.append(f"handshake {session.handshake_ms} ms")
    return " · ".join(parts)


def _ended(session: OTASession) -> str:
    parts = [f"ended {session.status.value}"]
    if session.tls_alert is not None:
        parts.append(
            f"TLS alert {session.tls_alert} ({session.tls_alert_description or 'unknown'})"
        )
    if session.error_code:
        parts.append(session.error_code)
    message = (session.error_message or "").strip().splitlines()
    if message:
        parts.append(message[0][:120])
    if session.close_reason:
        parts.append(f"closed: {session.close_reason}")
    if session.duration_ms is not None:
        parts.append(f"{session.duration_ms} ms")
    return " · ".join(parts)
