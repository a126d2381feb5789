"""A session's APDU trace in and out of the ``logs`` table: apdu4j / GSMTAP in, GSMTAP pcap out.

``import_trace`` reads the whole file first (``transfer.traces``), so a malformed
file writes nothing, then hands every APDU in wire order to ``add_log_batch``.
Timestamps: a GSMTAP packet's time is both its command's and its response's. An
apdu4j dump has no times, so the first command gets the time of the import and
each response comes ``latency_ms`` after its command (0 when the dump does not
say), the next command right after it; rows of equal time keep wire order by id.
``export_trace`` reads the stored pairs (``command_id``) and writes one GSMTAP SIM
packet per complete pair (see ``transfer.traces`` for the T=0 form).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import CommDirection, CommLog, OTASession
from ..pairing import ApduPair, WireApdu
from ..types import to_uuid, utcnow
from . import log_queries

if TYPE_CHECKING:
    from .log import LogRepository

_COMMAND, _RESPONSE = CommDirection.COMMAND, CommDirection.RESPONSE
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
    from ..transfer import traces  # deferred: dpkt loads only when a trace is read

    key = _existing_session(logs, session_id)
    data = stream.read()
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    kind = traces.detect_trace_format(raw[:4])
    if format == "apdu4j" and kind != "apdu4j":
        raise ValidationError(f"trace is a {kind} capture, not an apdu4j dump (use format='pcap')")
    if format == "pcap" and kind == "apdu4j":
        raise ValidationError("trace is neither pcap nor pcapng (unknown magic number)")
    if kind == "apdu4j":
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError(f"apdu4j dump is not UTF-8 text (byte {error.start})") from None
        apdus = traces.read_apdu4j(text.splitlines())
        clock: datetime | None = utcnow()
    else:
        apdus = traces.read_gsmtap(io.BytesIO(raw))
        clock = None
    rows, commands = _rows(key, apdus, clock)
    logs.flush_batch()
    linked_before = _linked_responses(logs, key)
    logs.add_log_batch(rows)
    logs.flush_batch()
    pairs = _linked_responses(logs, key) - linked_before
    return TraceImport(str(key), kind, commands, len(rows) - commands, pairs)


def _linked_responses(logs: LogRepository, session_id: Any) -> int:
    """The session's responses that answer a stored command (``command_id`` set)."""
    statement = select(func.count()).where(
        CommLog.session_id == session_id,
        CommLog.direction == _RESPONSE,
        CommLog.command_id.is_not(None),
    )
    with translated_errors():
        return int(logs.session.execute(statement).scalar_one())


def export_trace(logs: LogRepository, session_id: Any, stream: IO[bytes]) -> int:
    """Write the session's trace as GSMTAP SIM pcap; returns the number of packets.

    The pairs are the stored ones (``command_id``), in the commands' wire order.
    """
    from ..transfer import traces  # deferred: dpkt loads only when a trace is written

    key = _existing_session(logs, session_id)
    apdus = [
        ApduPair(_wire(command), None if response is None else _wire(response))
        for command, response in log_queries.pairs(logs, key)
        if command.raw_data and (response is None or response.raw_data)
    ]
    return traces.write_gsmtap_pcap(apdus, stream)


def _wire(log: CommLog) -> WireApdu:
    return WireApdu(
        log.direction.value,
        log.raw_data or "",
        log.channel,
        timestamp=log.timestamp,
        latency_ms=log.latency_ms,
        key=log.id,
    )


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


def _rows(
    session_id: Any, apdus: list[WireApdu], clock: datetime | None
) -> tuple[list[tuple[Any, ...]], int]:
    """``add_log_batch`` tuples in wire order and the command count.

    With a ``clock`` (an apdu4j dump) each APDU is timed from it: a response
    ``latency_ms`` after its command. ``add_log_batch`` decodes, links and describes.
    """
    rows: list[tuple[Any, ...]] = []
    commands = 0
    for apdu in apdus:
        is_command = apdu.direction == "command"
        if clock is not None and not is_command and apdu.latency_ms:
            clock += timedelta(milliseconds=apdu.latency_ms)
        when = clock if clock is not None else apdu.timestamp
        if is_command:
            commands += 1
            rows.append((session_id, _COMMAND, apdu.hex, None, None, None, None, when))
        else:
            status_word = apdu.hex[-4:] if len(apdu.hex) >= 4 else None
            rows.append(
                (session_id, _RESPONSE, apdu.hex, None, status_word, None, apdu.latency_ms, when)
            )
    return rows, commands
