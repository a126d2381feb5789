"""Trace interchange: apdu4j dumps and GSMTAP SIM captures in, GSMTAP pcap out (tshark reads it)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dpkt
import pytest

from cardlink.database import ValidationError
from cardlink.database.pairing import ApduPair, pair_apdus
from cardlink.database.transfer.traces import (
    GSMTAP_PORT,
    detect_trace_format,
    read_apdu4j,
    read_gsmtap,
    write_gsmtap_pcap,
)

APDU4J_DUMP = """\
# Generated on Sun Dec 06 18:00:00 UTC 2026 by apdu4j
# Using Gemalto PC Twin Reader
# ATR: 3B9F96801FC78031A073BE21136743200718000001A5
#
# Sent
00A4040008A000000151000000
# Received in 21ms
6F108408A000000151000000A5049F6501FF9000
# Sent
80CA9F7F00
# Received in 4 ms
6A88
# Sent
80F24000024F0000
# Received in 13ms
6310
"""

#: (seconds after START, GSMTAP SIM body as simtrace sends it, expected command, response)
SIMTRACE_EXCHANGES = [
    (0.0, "A0A40000026F7E9F0F", "A0A40000026F7E", "9F0F"),  # osmocom's own example
    (0.25, "A0D600000BFFFFFFFF09F107FFFE00039000", "A0D600000BFFFFFFFF09F107FFFE0003", "9000"),
    (0.5, "00B000000401020304" + "9000", "00B0000004", "010203049000"),  # data from the card
    (0.75, "80F2000C00" + "9000", "80F2000C00", "9000"),  # UICC STATUS
    (1.0, "80F24000024F00" + "E3054F03A000009000", "80F24000024F00", "E3054F03A000009000"),
    (1.5, "00D6000004" + "6982", "00D6000004", "6982"),  # refused before the data
    (2.0, "01B0000002" + "AABB9000", "01B0000002", "AABB9000"),  # logical channel 1
]
START = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=timezone.utc)


def gsmtap_frame(body_hex: str, *, gsmtap_type: int = 4, sub_type: int = 0, port: int = 4729):
    """An Ethernet/IPv4/UDP frame with a GSMTAP v2 header, built field by field."""
    header = bytes([2, 4, gsmtap_type, 0, 0, 0, 0, 0, 0, 0, 0, 0, sub_type, 0, 0, 0])
    udp = dpkt.udp.UDP(sport=58621, dport=port, data=header + bytes.fromhex(body_hex))
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=17, data=udp)
    ip.len = len(ip)
    return dpkt.ethernet.Ethernet(src=bytes(6), dst=bytes(6), type=0x0800, data=ip)


def simtrace_capture(writer: dpkt.pcap.Writer | dpkt.pcapng.Writer) -> None:
    """The exchanges above, plus an ATR and unrelated traffic that the reader skips."""
    writer.writepkt(bytes(gsmtap_frame("3B9F96801F", sub_type=1)), ts=START.timestamp() - 1)
    writer.writepkt(bytes(gsmtap_frame("0102", port=53)), ts=START.timestamp() - 1)
    writer.writepkt(bytes(gsmtap_frame("0102", gsmtap_type=1)), ts=START.timestamp() - 1)
    for offset, body, _, _ in SIMTRACE_EXCHANGES:
        writer.writepkt(bytes(gsmtap_frame(body)), ts=START.timestamp() + offset)


def pcap_bytes() -> bytes:
    stream = io.BytesIO()
    simtrace_capture(dpkt.pcap.Writer(stream, snaplen=65535))
    return stream.getvalue()


def pcapng_bytes() -> bytes:
    stream = io.BytesIO()
    simtrace_capture(dpkt.pcapng.Writer(stream, snaplen=65535))
    return stream.getvalue()


def shape(pairs: list[ApduPair]) -> list[tuple[str | None, str | None]]:
    return [
        (pair.command.hex if pair.command else None, pair.response.hex if pair.response else None)
        for pair in pairs
    ]


# -- apdu4j ------------------------------------------------------------------------


def test_an_apdu4j_dump_imports_to_its_pairs_with_latencies() -> None:
    pairs = pair_apdus(read_apdu4j(APDU4J_DUMP.splitlines()))
    assert shape(pairs) == [
        ("00A4040008A000000151000000", "6F108408A000000151000000A5049F6501FF9000"),
        ("80CA9F7F00", "6A88"),
        ("80F24000024F0000", "6310"),
    ]
    assert [pair.response.latency_ms for pair in pairs if pair.response] == [21.0, 4.0, 13.0]


def test_plain_alternating_lines_are_command_then_response() -> None:
    lines = ["00a4 0400 07 a0000000871002", "", "6110", "00C0000010", "62" * 16 + "9000"]
    pairs = pair_apdus(read_apdu4j(lines))
    assert shape(pairs) == [
        ("00A4040007A0000000871002", "6110"),
        ("00C0000010", "62" * 16 + "9000"),
    ]
    assert pairs[1].continues == 0  # the GET RESPONSE continues the SELECT


def test_a_line_that_is_not_hex_names_its_number() -> None:
    with pytest.raises(ValidationError, match=r"line 3: expected hex APDU, got 'SELECT'"):
        read_apdu4j(["# Sent", "00A4040000", "SELECT"])


# -- GSMTAP SIM ----------------------------------------------------------------------


@pytest.mark.parametrize("capture", [pcap_bytes, pcapng_bytes], ids=["pcap", "pcapng"])
def test_a_gsmtap_sim_capture_imports_to_its_pairs(capture) -> None:  # type: ignore[no-untyped-def]
    data = capture()
    assert detect_trace_format(data[:4]) == capture.__name__.removesuffix("_bytes")
    apdus = read_gsmtap(io.BytesIO(data))
    pairs = pair_apdus(apdus)
    assert shape(pairs) == [(command, response) for _, _, command, response in SIMTRACE_EXCHANGES]
    assert [pair.command.timestamp for pair in pairs if pair.command] == [
        START + timedelta(seconds=offset) for offset, _, _, _ in SIMTRACE_EXCHANGES
    ]
    assert [pair.command.channel for pair in pairs if pair.command][-2:] == [0, 1]


def test_a_damaged_or_foreign_file_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="neither pcap nor pcapng"):
        read_gsmtap(io.BytesIO(b"# Sent\n00A4040000\n"))
    with pytest.raises(ValidationError, match="pcap trace is damaged"):
        read_gsmtap(io.BytesIO(pcap_bytes()[:30]))


def exported(pairs: list[ApduPair]) -> bytes:
    stream = io.BytesIO()
    assert write_gsmtap_pcap(pairs, stream) == sum(1 for p in pairs if p.command and p.response)
    return stream.getvalue()


def test_import_export_import_gives_the_same_pairs() -> None:
    first = pair_apdus(read_gsmtap(io.BytesIO(pcapng_bytes())))
    second = pair_apdus(read_gsmtap(io.BytesIO(exported(first))))
    assert shape(second) == shape(first)
    assert [pair.command.timestamp for pair in second if pair.command] == [
        pair.command.timestamp for pair in first if pair.command
    ]


def test_an_apdu4j_trace_survives_the_pcap_round_trip_in_t0_form() -> None:
    first = pair_apdus(read_apdu4j(APDU4J_DUMP.splitlines()))
    second = pair_apdus(read_gsmtap(io.BytesIO(exported(first))))
    expected = shape(first)
    expected[2] = ("80F24000024F00", "6310")  # a case 4 command goes out without its Le
    assert shape(second) == expected
    assert shape(pair_apdus(read_gsmtap(io.BytesIO(exported(second))))) == expected


def test_unpaired_apdus_have_no_packet() -> None:
    apdus = read_apdu4j(["# Received in 1 ms", "9000", "# Sent", "00B0000001"])
    assert exported(pair_apdus(apdus)) == exported([])


def test_an_exported_pcap_holds_one_gsmtap_sim_packet_per_pair() -> None:
    pairs = pair_apdus(read_gsmtap(io.BytesIO(pcap_bytes())))
    reader = dpkt.pcap.Reader(io.BytesIO(exported(pairs)))
    bodies = []
    for _, frame in reader:
        udp = dpkt.ethernet.Ethernet(frame).data.data
        assert isinstance(udp, dpkt.udp.UDP) and udp.dport == GSMTAP_PORT
        gsmtap = bytes(udp.data)
        assert (gsmtap[0], gsmtap[2], gsmtap[12]) == (2, 4, 0)  # v2, type SIM, sub-type APDU
        bodies.append(gsmtap[gsmtap[1] * 4 :].hex().upper())
    assert bodies == [body for _, body, _, _ in SIMTRACE_EXCHANGES]


def tshark_instructions(path: Path) -> list[list[str]]:
    """What tshark's GSM SIM dissector reads in ``path``: [instruction, status word] per packet.

    Skips where tshark is missing, or fails under CARDLINK_TEST_REQUIRE=all (or tshark).
    """
    tshark = shutil.which("tshark")
    if tshark is None:
        required = os.environ.get("CARDLINK_TEST_REQUIRE", "")
        if "all" in required or "tshark" in required:
            pytest.fail(
                f"tshark is not installed, and CARDLINK_TEST_REQUIRE={required} requires it "
                "(apt-get install tshark)"
            )
        pytest.skip("tshark is not installed (apt-get install tshark)")
    fields = ["-e", "gsm_sim.apdu.ins", "-e", "gsm_sim.apdu.sw"]
    result = subprocess.run(
        [tshark, "-r", str(path), "-Y", "gsm_sim", "-T", "fields", *fields],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_tshark_dissects_the_exported_instructions(tmp_path: Path) -> None:
    pairs = pair_apdus(read_apdu4j(APDU4J_DUMP.splitlines()))
    path = tmp_path / "trace.pcap"
    path.write_bytes(exported(pairs))
    rows = tshark_instructions(path)
    assert rows == [["0xa4", "0x9000"], ["0xca", "0x6a88"], ["0xf2", "0x6310"]]
