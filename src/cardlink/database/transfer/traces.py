"""APDU traces in the field's interchange formats: apdu4j dumps, GSMTAP SIM in pcap/pcapng.

Pure code over streams, no database: readers give ``WireApdu`` rows in wire order
(pair them with ``pairing.pair_apdus``), the writer takes pairs.

- **apdu4j dump**: one hex APDU a line, each after ``# Sent`` or ``# Received in N ms``
  (the milliseconds become the response's ``latency_ms``); without those comments
  lines alternate command, response. Other ``#`` lines (ATR, dates) are skipped.
- **GSMTAP SIM** (UDP port 4729, GSMTAP type 4), as osmocom's simtrace writes it:
  one packet per exchange holding what a T=0 wire carries, ``CLA INS P1 P2 P3``,
  the data, then SW1 SW2. Whether the data went to or came from the card depends on
  the instruction (READ BINARY's comes back, UPDATE BINARY's goes out), as in pySim.
  Reading takes pcap and pcapng; writing gives pcap, the packet's time being the
  command's. A command is written in that T=0 form: a case 4 command without its
  Le byte, a case 1 command with P3 = 00. A command without a response, or a
  response without a command, has no packet. A packet has one time, so a
  response's ``latency_ms`` is not carried.

The binary formats are read and written by ``dpkt``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any

import dpkt

from ..apdu import decode_apdu
from ..exceptions import ValidationError
from ..pairing import ApduPair, WireApdu

GSMTAP_PORT = 4729
GSMTAP_TYPE_SIM = 0x04
GSMTAP_SIM_APDU = 0x00  # sub-type; 0x01 is an ATR
#: GSMTAP v2 header for SIM: version 2, 4 words long, type SIM; the radio fields unused.
_GSMTAP_HEADER = bytes([2, 4, GSMTAP_TYPE_SIM]) + bytes(13)

#: Instructions whose T=0 data comes from the card (cases 1 and 2); all others send it.
_DATA_FROM_CARD = frozenset({0x12, 0x70, 0x84, 0xB0, 0xB1, 0xB2, 0xB3, 0xC0, 0xCA})

_RECEIVED = re.compile(r"#\s*Received(?:\s+in\s+(\d+(?:\.\d+)?)\s*ms)?", re.IGNORECASE)
_SENT = re.compile(r"#\s*Sent\b", re.IGNORECASE)
_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def detect_trace_format(head: bytes) -> str:
    """``"pcap"``, ``"pcapng"`` or ``"apdu4j"`` from a file's first bytes."""
    if head[:4] in _PCAP_MAGICS:
        return "pcap"
    if head[:4] == _PCAPNG_MAGIC:
        return "pcapng"
    return "apdu4j"


# -- apdu4j ------------------------------------------------------------------------


def read_apdu4j(lines: Iterable[str]) -> list[WireApdu]:
    """The APDUs of an apdu4j dump (text lines); a line that is not hex is a ValidationError."""
    apdus: list[WireApdu] = []
    expected: str | None = None
    latency: float | None = None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            received = _RECEIVED.match(text)
            if received:
                expected = "response"
                latency = float(received.group(1)) if received.group(1) else None
            elif _SENT.match(text):
                expected, latency = "command", None
            continue
        compact = "".join(text.split())
        try:
            bytes.fromhex(compact)
        except ValueError:
            raise ValidationError(
                f"apdu4j dump line {number}: expected hex APDU, got {text[:40]!r}"
            ) from None
        if expected is None:  # plain alternating lines
            previous = apdus[-1].direction if apdus else "response"
            expected = "response" if previous == "command" else "command"
        apdus.append(WireApdu(expected, compact.upper(), latency_ms=latency))
        expected, latency = None, None
    return apdus


# -- GSMTAP SIM in pcap / pcapng -----------------------------------------------------


def read_gsmtap(stream: IO[bytes]) -> list[WireApdu]:
    """Commands and responses of the GSMTAP SIM packets in a pcap or pcapng stream."""
    head = stream.read(4)
    if stream.seekable():
        stream.seek(-len(head), io.SEEK_CUR)
    else:  # a pipe: dpkt must see the magic number again
        stream = io.BytesIO(head + stream.read())
    kind = detect_trace_format(head)
    try:
        reader: Any
        if kind == "pcapng":
            reader = dpkt.pcapng.Reader(stream)
        elif kind == "pcap":
            reader = dpkt.pcap.Reader(stream)
        else:
            raise ValidationError("trace is neither pcap nor pcapng (unknown magic number)")
        link_type = reader.datalink()
        apdus: list[WireApdu] = []
        for seconds, frame in reader:
            body = _gsmtap_sim_body(link_type, frame)
            if body is None or len(body) < 7:
                continue
            when = datetime.fromtimestamp(float(seconds), tz=timezone.utc)
            command, response = _split_tpdu(body)
            channel = decode_apdu(command).channel
            apdus.append(WireApdu("command", command.hex().upper(), channel, when))
            apdus.append(WireApdu("response", response.hex().upper(), channel, when))
    except (dpkt.NeedData, dpkt.UnpackError, ValueError) as error:
        if isinstance(error, ValidationError):
            raise
        raise ValidationError(f"{kind} trace is damaged: {error}") from None
    return apdus


def _gsmtap_sim_body(link_type: int, frame: bytes) -> bytes | None:
    """The SIM payload of a GSMTAP packet, or None for any other packet."""
    ip: Any
    if link_type == dpkt.pcap.DLT_EN10MB:
        ip = dpkt.ethernet.Ethernet(frame).data
    elif link_type == dpkt.pcap.DLT_LINUX_SLL:
        ip = dpkt.sll.SLL(frame).data
    elif link_type in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        ip = dpkt.loopback.Loopback(frame).data
    elif link_type in (dpkt.pcap.DLT_RAW, 101, 228, 229):  # raw IP, IPv4, IPv6
        ip = dpkt.ip6.IP6(frame) if frame[:1] and frame[0] >> 4 == 6 else dpkt.ip.IP(frame)
    else:
        return None
    udp = getattr(ip, "data", None)
    if not isinstance(udp, dpkt.udp.UDP) or GSMTAP_PORT not in (udp.dport, udp.sport):
        return None
    gsmtap = bytes(udp.data)
    if len(gsmtap) < 16 or gsmtap[0] != 2 or gsmtap[2] != GSMTAP_TYPE_SIM:
        return None
    if gsmtap[12] != GSMTAP_SIM_APDU:
        return None
    return gsmtap[gsmtap[1] * 4 :]


def _split_tpdu(body: bytes) -> tuple[bytes, bytes]:
    """Command and response of ``CLA INS P1 P2 P3 data SW1 SW2``, by who sent the data."""
    header, rest = body[:5], body[5:]
    ins, p1, p3 = body[1], body[2], body[4]
    uicc_status = ins == 0xF2 and p1 in (0, 1, 2) and body[0] & 0x80
    if ins in _DATA_FROM_CARD or uicc_status or len(rest) < p3 + 2:
        return header, rest
    return header + rest[:p3], rest[p3:]


def _t0_command(command_hex: str) -> bytes:
    """A command as T=0 carries it: case 4 loses Le, case 1 gains P3 = 00."""
    raw = bytes.fromhex("".join(command_hex.split()))
    decoded = decode_apdu(raw)
    if decoded.extended or decoded.case is None:
        return raw
    if decoded.case == 1:
        return raw + b"\x00"
    if decoded.case == 4:
        return raw[:-1]
    return raw


def gsmtap_packet(command_hex: str, response_hex: str) -> bytes:
    """One Ethernet/IPv4/UDP frame carrying a GSMTAP SIM packet of one exchange."""
    body = _t0_command(command_hex) + bytes.fromhex("".join(response_hex.split()))
    udp = dpkt.udp.UDP(sport=GSMTAP_PORT, dport=GSMTAP_PORT, data=_GSMTAP_HEADER + body)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(
        src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 1]), p=dpkt.ip.IP_PROTO_UDP, data=udp
    )
    ip.len = len(ip)
    frame = dpkt.ethernet.Ethernet(
        src=bytes(6), dst=bytes(6), type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    return bytes(frame)


def write_gsmtap_pcap(pairs: Iterable[ApduPair], stream: IO[bytes]) -> int:
    """Write one GSMTAP SIM packet per command/response pair to a pcap; returns the count.

    The packet's time is the command's timestamp (else the response's, else the last
    packet's). A pair that is missing a side, or whose hex is not hex, is skipped.
    """
    writer = dpkt.pcap.Writer(stream, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
    written = 0
    last = datetime.now(timezone.utc).timestamp()
    for command, response in _complete(pairs):
        when = command.timestamp or response.timestamp
        if when is not None:
            last = when.timestamp()
        try:
            frame = gsmtap_packet(command.hex, response.hex)
        except ValueError:
            continue
        writer.writepkt(frame, ts=last)
        written += 1
    stream.flush()
    return written


def _complete(pairs: Iterable[ApduPair]) -> Iterator[tuple[WireApdu, WireApdu]]:
    for pair in pairs:
        if pair.command is not None and pair.response is not None:
            yield pair.command, pair.response
