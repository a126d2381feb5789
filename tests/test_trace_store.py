"""Traces into and out of the database: import_trace, export_trace and session summaries."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dpkt
import pytest

from cardlink.database import (
    CommDirection,
    DatabaseManager,
    NotFoundError,
    OTASession,
    SessionStatus,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.pairing import WireApdu, pair_apdus
from cardlink.database.transfer.traces import GSMTAP_PORT, read_gsmtap
from test_traces import APDU4J_DUMP, SIMTRACE_EXCHANGES, START, pcap_bytes, pcapng_bytes


def new_session(manager: DatabaseManager, **fields: object) -> str:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(**fields)
        uow.commit()
        return str(session.id)


def stored(manager: DatabaseManager, session_id: str) -> list[tuple[str, str, str | None]]:
    with UnitOfWork(manager) as uow:
        return [
            (log.direction.value, log.raw_data, log.status_word)
            for log in uow.logs.find_by_session(session_id)
        ]


def stored_pairs(manager: DatabaseManager, session_id: str) -> list[tuple[str | None, ...]]:
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    apdus = [WireApdu(log.direction.value, log.raw_data or "") for log in logs]
    return [
        (pair.command.hex if pair.command else None, pair.response.hex if pair.response else None)
        for pair in pair_apdus(apdus)
    ]


def test_an_apdu4j_dump_is_stored_in_wire_order_with_latencies(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        result = uow.logs.import_trace(
            io.StringIO(APDU4J_DUMP), format="apdu4j", session_id=session_id
        )
        uow.commit()
    assert (result.format, result.commands, result.responses, result.pairs) == (
        "apdu4j",
        3,
        3,
        3,
    )
    assert stored(manager, session_id) == [
        ("command", "00A4040008A000000151000000", None),
        ("response", "6F108408A000000151000000A5049F6501FF9000", "9000"),
        ("command", "80CA9F7F00", None),
        ("response", "6A88", "6A88"),
        ("command", "80F24000024F0000", None),
        ("response", "6310", "6310"),
    ]
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    assert [log.latency_ms for log in logs if log.direction is CommDirection.RESPONSE] == [
        21.0,
        4.0,
        13.0,
    ]
    assert logs[3].status_message == "referenced data not found"
    # The response comes latency_ms after its command; the next command follows it.
    assert logs[1].timestamp - logs[0].timestamp == timedelta(milliseconds=21)
    assert logs[2].timestamp == logs[1].timestamp


@pytest.mark.parametrize("capture", [pcap_bytes, pcapng_bytes], ids=["pcap", "pcapng"])
def test_a_gsmtap_capture_is_stored_with_its_packet_times(
    manager: DatabaseManager, capture: object
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        result = uow.logs.import_trace(
            io.BytesIO(capture()),  # type: ignore[operator]
            format="auto",
            session_id=session_id,
        )
        uow.commit()
    assert result.format == ("pcap" if capture is pcap_bytes else "pcapng")
    assert (result.commands, result.responses, result.pairs) == (7, 7, 7)
    assert stored_pairs(manager, session_id) == [
        (command, response) for _, _, command, response in SIMTRACE_EXCHANGES
    ]
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    times = [log.timestamp for log in logs[::2]]
    assert times == [START + timedelta(seconds=offset) for offset, *_ in SIMTRACE_EXCHANGES]


def test_import_export_import_gives_the_same_pairs(manager: DatabaseManager) -> None:
    first, second = new_session(manager), new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.import_trace(io.BytesIO(pcapng_bytes()), format="pcap", session_id=first)
        uow.commit()
    exported = io.BytesIO()
    with UnitOfWork(manager) as uow:
        packets = uow.logs.export_trace(first, exported)
    assert packets == len(SIMTRACE_EXCHANGES)
    with UnitOfWork(manager) as uow:
        uow.logs.import_trace(io.BytesIO(exported.getvalue()), format="pcap", session_id=second)
        uow.commit()
    assert stored_pairs(manager, second) == stored_pairs(manager, first)
    with UnitOfWork(manager) as uow:
        times = [log.timestamp for log in uow.logs.find_by_session(second)]
    assert times[::2] == [START + timedelta(seconds=offset) for offset, *_ in SIMTRACE_EXCHANGES]


def test_an_exported_session_holds_one_gsmtap_sim_packet_per_pair(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.import_trace(io.StringIO(APDU4J_DUMP), session_id=session_id)
        uow.logs.add_log(session_id, "COMMAND", "00B0000001")  # no response: no packet
        uow.commit()
        stream = io.BytesIO()
        assert uow.logs.export_trace(session_id, stream) == 3
    sim_packets = 0
    for _, frame in dpkt.pcap.Reader(io.BytesIO(stream.getvalue())):
        udp = dpkt.ethernet.Ethernet(frame).data.data
        gsmtap = bytes(udp.data)
        if udp.dport == GSMTAP_PORT and (gsmtap[0], gsmtap[2]) == (2, 4):
            sim_packets += 1
    assert sim_packets == 3
    assert len(read_gsmtap(io.BytesIO(stream.getvalue()))) == 6


def test_tshark_reads_an_exported_session(manager: DatabaseManager, tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        if "all" in os.environ.get("CARDLINK_TEST_REQUIRE", ""):
            pytest.fail("tshark is not installed, and CARDLINK_TEST_REQUIRE=all requires it")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    session_id = new_session(manager)
    path = tmp_path / "session.pcap"
    with UnitOfWork(manager) as uow:
        uow.logs.import_trace(io.StringIO(APDU4J_DUMP), format="apdu4j", session_id=session_id)
        uow.commit()
        with path.open("wb") as stream:
            uow.logs.export_trace(session_id, stream)
    fields = ["-e", "gsm_sim.apdu.ins", "-e", "gsm_sim.apdu.sw"]
    result = subprocess.run(
        [tshark, "-r", str(path), "-Y", "gsm_sim", "-T", "fields", *fields],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [["0xa4", "0x9000"], ["0xca", "0x6a88"], ["0xf2", "0x6310"]]


def test_a_malformed_trace_writes_nothing(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        for damaged in (pcap_bytes()[:10], pcapng_bytes()[:-7]):
            with pytest.raises(ValidationError, match=r"pcap(ng)? trace is damaged"):
                uow.logs.import_trace(io.BytesIO(damaged), session_id=session_id)
        with pytest.raises(ValidationError, match="line 3: expected hex APDU"):
            uow.logs.import_trace(
                io.StringIO("# Sent\n00A4040000\nSELECT\n"), session_id=session_id
            )
        with pytest.raises(ValidationError, match="neither pcap nor pcapng"):
            uow.logs.import_trace(io.BytesIO(b"00A4"), format="pcap", session_id=session_id)
        with pytest.raises(ValidationError, match="not an apdu4j dump"):
            uow.logs.import_trace(io.BytesIO(pcap_bytes()), format="apdu4j", session_id=session_id)
        with pytest.raises(ValidationError, match="trace format must be one of"):
            uow.logs.import_trace(io.BytesIO(b""), format="k2", session_id=session_id)
        uow.commit()
    assert stored(manager, session_id) == []


def test_an_unknown_session_is_a_one_line_error(manager: DatabaseManager) -> None:
    missing = str(uuid.uuid4())
    with UnitOfWork(manager) as uow:
        with pytest.raises(NotFoundError, match=f"session {missing} not found"):
            uow.logs.import_trace(io.StringIO(APDU4J_DUMP), session_id=missing)
        with pytest.raises(NotFoundError, match="not found"):
            uow.logs.export_trace(missing, io.BytesIO())
        with pytest.raises(ValidationError, match="'nope' is not a valid UUID"):
            uow.logs.import_trace(io.StringIO(APDU4J_DUMP), session_id="nope")
        assert uow.logs.count() == 0


# -- session summaries ---------------------------------------------------------------


def seed_sessions(manager: DatabaseManager) -> dict[str, str]:
    """Three sessions: completed with one error and one warning, failed old, pending."""
    now = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        done = uow.sessions.create(
            OTASession(
                device_id=None,
                status=SessionStatus.COMPLETED,
                started_at=now - timedelta(hours=1),
                ended_at=now - timedelta(hours=1) + timedelta(seconds=2),
                duration_ms=2000,
            )
        )
        old = uow.sessions.create(
            OTASession(status=SessionStatus.FAILED, started_at=now - timedelta(days=10))
        )
        pending = uow.sessions.create(OTASession(status=SessionStatus.PENDING))
        uow.flush()
        ids = {"done": str(done.id), "old": str(old.id), "pending": str(pending.id)}
        rows = [
            (done.id, "COMMAND", "00A4040000"),
            (done.id, "RESPONSE", "6A82"),  # error
            (done.id, "COMMAND", "0020000108"),
            (done.id, "RESPONSE", "63C2"),  # warning
            (done.id, "COMMAND", "00B0000010"),
            (done.id, "RESPONSE", "6110"),  # intermediate: neither
            (done.id, "COMMAND", "00C0000010"),
            (done.id, "RESPONSE", "9000"),
            (old.id, "COMMAND", "00A4040000"),
            (old.id, "RESPONSE", "6D00"),
        ]
        uow.logs.add_log_batch(rows)
        uow.commit()
    return ids


def test_summaries_count_apdus_errors_and_warnings_in_sql(manager: DatabaseManager) -> None:
    ids = seed_sessions(manager)
    with UnitOfWork(manager) as uow:
        summaries = uow.sessions.summaries()
    figures = {
        summary.id: (summary.status, summary.apdu_count, summary.errors, summary.warnings)
        for summary in summaries
    }
    assert figures == {
        ids["done"]: (SessionStatus.COMPLETED, 8, 1, 1),
        ids["old"]: (SessionStatus.FAILED, 2, 1, 0),
        ids["pending"]: (SessionStatus.PENDING, 0, 0, 0),
    }
    # Newest first: the pending one was created now, the completed one started 1 h ago.
    assert [summary.id for summary in summaries] == [ids["pending"], ids["done"], ids["old"]]
    done = summaries[1]
    assert done.duration_ms == 2000 and done.started_at.tzinfo is not None


def test_summaries_filter_by_status_age_and_limit(manager: DatabaseManager) -> None:
    ids = seed_sessions(manager)
    with UnitOfWork(manager) as uow:
        assert [s.id for s in uow.sessions.summaries(status="failed")] == [ids["old"]]
        assert [s.id for s in uow.sessions.summaries(status=SessionStatus.COMPLETED)] == [
            ids["done"]
        ]
        recent = uow.sessions.summaries(since_days=1)
        assert {s.id for s in recent} == {ids["done"], ids["pending"]}
        assert [s.id for s in uow.sessions.summaries(limit=1)] == [ids["pending"]]
        with pytest.raises(ValidationError, match="limit must be a whole number >= 1"):
            uow.sessions.summaries(limit=0)
        with pytest.raises(ValidationError, match="since_days must be > 0"):
            uow.sessions.summaries(since_days=-1)
        with pytest.raises(ValidationError):
            uow.sessions.summaries(status="sleeping")
