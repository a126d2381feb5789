"""A session's APDU trace in and out of the ``logs`` table: apdu4j / GSMTAP in, GSMTAP pcap out.

``import_trace`` reads the whole file first (``transfer.traces``), so a malformed
file writes nothing, then hands every APDU in wire order to ``add_log_batch``.
Timestamps: a GSMTAP packet's time is both its command's and its response's. An
apdu4j dump has no times, so the first command gets the time of the import and
each response comes ``latency_ms`` after its command (0 when the dump does not
say), the next command right after it; rows of equal time keep wire order by id.
``export_trace`` pairs the stored rows with ``pairing.pair_apdus`` and writes one
GSMTAP SIM packet per complete pair (see ``transfer.traces`` for the T=0 form).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import select

from ..apdu import describe_status_word
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import CommDirection, CommLog, OTASession
from ..pairing import WireApdu, pair_apdus
from ..transfer.traces import detect_trace_format, read_apdu4j, read_gsmtap, write_gsmtap_pcap
from ..types import to_uuid, utcnow

if TYPE_CHECKING:
    from .log import LogRepository

#: What ``format=`` accepts: ``"auto"`` tells pcap/pcapng from an apdu4j dump by magic number.
TRACE_FORMATS = ("auto", "apdu4j", "pcap")


@dataclass(frozen=True)
class TraceImport:
    """What ``import_trace`` wrote: APDU rows per direction and complete pairs among them."""

    session_id: str
    format: str
    commands: int
    responses: int
    pairs: int


def import_trace(
    logs: LogRepository, stream: IO[bytes] | IO[str], *, format: str, session_id: Any
) -> TraceImport:
    """Read a whole trace, then buffer its APDUs in wire order; nothing is written on error."""
    if format not in TRACE_FORMATS:
        raise ValidationError(
            f"trace format must be one of {', '.join(TRACE_FORMATS)}, got {format!r}"
        )
    key = _existing_session(logs, session_id)
    data = stream.read()
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    kind = detect_trace_format(raw[:4])
    if format == "apdu4j" and kind != "apdu4j":
        raise ValidationError(f"trace is a {kind} capture, not an apdu4j dump (use format='pcap')")
    if format == "pcap" and kind == "apdu4j":
        raise ValidationError("trace is neither pcap nor pcapng (unknown magic number)")
    if kind == "apdu4j":
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError(f"apdu4j dump is not UTF-8 text (byte {error.start})") from None
        apdus = _timed(read_apdu4j(text.splitlines()), utcnow())
        kind_name = "apdu4j"
    else:
        apdus = read_gsmtap(io.BytesIO(raw))
        kind_name = kind
    rows = [_row(key, apdu) for apdu in apdus]
    logs.add_log_batch(rows)
    logs.flush_batch()
    pairs = pair_apdus(apdus)
    complete = sum(1 for pair in pairs if pair.command is not None and pair.response is not None)
    commands = sum(1 for apdu in apdus if apdu.is_command)
    return TraceImport(str(key), kind_name, commands, len(apdus) - commands, complete)


def export_trace(logs: LogRepository, session_id: Any, stream: IO[bytes]) -> int:
    """Write the session's trace as GSMTAP SIM pcap; returns the number of packets."""
    key = _existing_session(logs, session_id)
    logs.flush_batch()
    columns = (CommLog.direction, CommLog.raw_data, CommLog.timestamp, CommLog.latency_ms)
    statement = (
        select(*columns).where(CommLog.session_id == key).order_by(CommLog.timestamp, CommLog.id)
    )
    with translated_errors():
        rows = logs.session.execute(statement).all()
    apdus = [
        WireApdu(direction.value, raw_data, timestamp=timestamp, latency_ms=latency_ms)
        for direction, raw_data, timestamp, latency_ms in rows
        if raw_data
    ]
    return write_gsmtap_pcap(pair_apdus(apdus), stream)


def _existing_session(logs: LogRepository, session_id: Any) -> Any:
    """The session's key; an unknown or malformed id is a one-line error."""
    try:
        key = to_uuid(session_id)
    except ValidationError:
        raise ValidationError(f"session id {str(session_id)[:64]!r} is not a valid UUID") from None
    with translated_errors():
        found = logs.session.execute(select(OTASession.id).where(OTASession.id == key)).first()
    if found is None:
        raise NotFoundError(f"session {key} not found")
    return key


def _timed(apdus: list[WireApdu], start: datetime) -> list[WireApdu]:
    """apdu4j rows given wire times: a response ``latency_ms`` after its command."""
    timed: list[WireApdu] = []
    clock = start
    for apdu in apdus:
        if not apdu.is_command and apdu.latency_ms:
            clock += timedelta(milliseconds=apdu.latency_ms)
        timed.append(replace(apdu, timestamp=clock))
    return timed


def _row(session_id: Any, apdu: WireApdu) -> dict[str, Any]:
    """One ``add_log_batch`` dict; a response carries its status word's meaning."""
    direction = CommDirection.COMMAND if apdu.is_command else CommDirection.RESPONSE
    row: dict[str, Any] = {
        "session_id": session_id,
        "direction": direction,
        "raw_data": apdu.hex,
        "timestamp": apdu.timestamp,
        "latency_ms": apdu.latency_ms,
    }
    if direction is CommDirection.RESPONSE and len(apdu.hex) >= 4:
        status_word = apdu.hex[-4:]
        row["status_word"] = status_word
        row["status_message"] = describe_status_word(status_word)
    return row
