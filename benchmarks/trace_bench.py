"""Trace import benchmark: ``logs.import_trace`` of N pairs beside a raw insert of the same rows.

Usage::

    python benchmarks/trace_bench.py --all-backends
    python benchmarks/trace_bench.py --db-url sqlite:///traces.db --pairs 20000

N command/response pairs (100,000 by default; GP and UICC commands, mostly 9000,
some 6A82/6982/6310) are written once as an apdu4j dump and once as a GSMTAP SIM
pcap. On each backend (server database ``cardlink_bench_traces``) the package
imports each file into a fresh session with ``uow.logs.import_trace`` and commits,
reading and parsing the file inside the timed part. The raw side then inserts the
very rows that import stored, with the driver's ``executemany`` (and ``COPY`` on
PostgreSQL). Its rows are read from the file before its timing starts; the decoded
command columns and the command links are derived inside it, as W1's raw side does
(``data.StoredLogs``). Printed: rows/s of each side and the ratio. Every run's row count
is checked. Then ``logs.pairs()`` of a 200-APDU session: milliseconds per call,
beside the same join run through the bare driver.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from data import StoredLogs
from raw import RawDatabase
from sqlalchemy.engine import URL

from cardlink.database import (
    CardProfile,
    CommDirection,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    UnitOfWork,
    describe_status_word,
)
from cardlink.database.pairing import ApduPair, WireApdu
from cardlink.database.transfer.traces import read_apdu4j, read_gsmtap, write_gsmtap_pcap

#: The server database ``--all-backends`` uses.
SERVER_DATABASE = "cardlink_bench_traces"
#: (command, response) pairs repeated through the trace: a GP / UICC admin session.
EXCHANGES = (
    ("00A4040008A000000151000000", "6F108408A000000151000000A5049F6501FF9000"),
    ("8050000008B1A2C3D4E5F60718", "00001122334455667788FF0200013C4D5E6F708192A3B4C59000"),
    ("8482000010AABBCCDDEEFF00112233445566778899", "9000"),
    ("80E60200160CA0000001515350415353310008A000000151000000000000", "009000"),
    ("80E8000010C4820100010203040506070809", "9000"),
    ("80F24000024F0000", "E3104F08A0000001510000009F700107C5019E9000"),
    ("80CA9F7F00", "6A88"),
    ("00B0000010", "0102030405060708090A0B0C0D0E0F109000"),
    ("00D6000004DEADBEEF", "6982"),
    ("0020000108313233343536FFFF", "63C2"),
)
START = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def trace_pairs(count: int) -> list[ApduPair]:
    """``count`` pairs, 10 ms apart, each response 3 ms after its command."""
    pairs = []
    for number in range(count):
        command, response = EXCHANGES[number % len(EXCHANGES)]
        when = START + timedelta(milliseconds=10 * number)
        pairs.append(
            ApduPair(
                WireApdu("command", command, timestamp=when),
                WireApdu("response", response, timestamp=when, latency_ms=3.0),
            )
        )
    return pairs


def apdu4j_dump(pairs: list[ApduPair]) -> bytes:
    lines = []
    for pair in pairs:
        assert pair.command is not None and pair.response is not None
        lines += ["# Sent", pair.command.hex, "# Received in 3 ms", pair.response.hex]
    return ("\n".join(lines) + "\n").encode("ascii")


def gsmtap_pcap(pairs: list[ApduPair]) -> bytes:
    stream = io.BytesIO()
    write_gsmtap_pcap(pairs, stream)
    return stream.getvalue()


def new_session(manager: DatabaseManager) -> Any:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session("RF8M0", "8901123456789012340")
        uow.commit()
        return session.id


def raw_rows(session_id: Any, data: bytes, kind: str) -> list[tuple[Any, ...]]:
    """The rows ``import_trace`` stores, computed before the raw side's timing."""
    if kind == "apdu4j":
        apdus = read_apdu4j(data.decode("ascii").splitlines())
        clock, timed = datetime.now(timezone.utc), []
        for apdu in apdus:  # the times import_trace gives an apdu4j dump
            if not apdu.is_command and apdu.latency_ms:
                clock += timedelta(milliseconds=apdu.latency_ms)
            timed.append((apdu, clock))
    else:
        timed = [(apdu, apdu.timestamp) for apdu in read_gsmtap(io.BytesIO(data))]
    rows = []
    for apdu, when in timed:
        if apdu.is_command:
            rows.append((session_id, CommDirection.COMMAND, apdu.hex, None, None, None, None, when))
        else:
            word = apdu.hex[-4:]
            rows.append(
                (
                    session_id,
                    CommDirection.RESPONSE,
                    apdu.hex,
                    None,
                    word,
                    describe_status_word(word),
                    apdu.latency_ms,
                    when,
                )
            )
    return rows


def run_backend(url: URL, files: dict[str, bytes], pairs: int) -> None:
    backends.ensure_database(url)
    name = url.get_backend_name()
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.recreate_tables()
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="RF8M0", device_type=DeviceType.PHONE))
        uow.cards.create(CardProfile(iccid="8901123456789012340"))
        uow.commit()
    raw = RawDatabase(url)
    try:
        for kind, data in files.items():
            session_id = new_session(manager)
            started = time.perf_counter()
            with UnitOfWork(manager) as uow:
                result = uow.logs.import_trace(
                    io.BytesIO(data), format="auto", session_id=session_id
                )
                uow.commit()
            package_seconds = time.perf_counter() - started
            with UnitOfWork(manager) as uow:
                stored = uow.logs.count_by_session(session_id)
            if stored != 2 * pairs or result.pairs != pairs:
                raise AssertionError(f"{name} {kind}: {stored} rows, {result.pairs} pairs stored")
            rows = raw_rows(new_session(manager), data, kind)
            sides = {"executemany": False, **({"COPY": True} if name == "postgresql" else {})}
            figures = []
            for label, copy in sides.items():
                raw.clear_logs()
                started = time.perf_counter()
                raw.insert_logs(rows, chunk=len(rows), copy=copy, derive=StoredLogs())
                seconds = time.perf_counter() - started
                if raw.count("logs") != len(rows):
                    raise AssertionError(f"{name} raw {label}: wrong row count")
                figures.append(
                    f"raw {label} {len(rows) / seconds:9,.0f} rows/s "
                    f"(package {seconds / package_seconds:.2f}x)"
                )
            print(
                f"{name:<10} import_trace {kind:<6} {pairs:,} pairs: "
                f"package {2 * pairs / package_seconds:9,.0f} rows/s | " + " | ".join(figures),
                flush=True,
            )
            raw.clear_logs()
        pairs_of_a_session(manager, raw, name)
    finally:
        raw.close()
        manager.close()


def pairs_of_a_session(manager: DatabaseManager, raw: RawDatabase, name: str) -> None:
    """``logs.pairs()`` of one 200-APDU session (a unit of work per call, as an application
    would), beside the same outer join through the driver; best of 5 rounds of 20 calls."""
    session_id = new_session(manager)
    apdus = []
    for pair in trace_pairs(100):
        assert pair.command is not None and pair.response is not None
        for apdu in (pair.command, pair.response):
            direction = CommDirection.COMMAND if apdu.is_command else CommDirection.RESPONSE
            apdus.append((session_id, direction, apdu.hex, None, None, None, None, apdu.timestamp))
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(apdus)
        uow.commit()

    def package_call() -> None:
        with UnitOfWork(manager) as uow:
            if len(uow.logs.pairs(session_id)) != 100:
                raise AssertionError(f"{name} pairs(): wrong pair count")

    quote, mark = raw.quote, raw.mark
    sql = (
        "SELECT c.*, r.* FROM logs c LEFT JOIN logs r ON r.command_id = c.id "
        f"WHERE c.session_id = {mark} AND c.direction = 'command' "
        f"ORDER BY c.{quote}timestamp{quote}, c.id"
    )
    key = raw.uuid_value(session_id)

    def raw_call() -> None:
        if len(raw.execute(sql, (key,))) != 100:
            raise AssertionError(f"{name} raw pairs: wrong pair count")
        if raw.backend != "sqlite":
            raw.connection.commit()

    timings = {}
    for label, call in (("package", package_call), ("raw", raw_call)):
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(20):
                call()
            best = min(best, (time.perf_counter() - started) / 20)
        timings[label] = best * 1000
    print(
        f"{name:<10} pairs() of a 200-APDU session: package {timings['package']:6.2f} ms | "
        f"raw join {timings['raw']:6.2f} ms (package {timings['package'] / timings['raw']:.1f}x)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    backends.add_options(parser)
    parser.add_argument("--pairs", type=int, default=100_000, help="command/response pairs")
    args = parser.parse_args(argv)
    urls = backends.database_urls(args, server_database=SERVER_DATABASE, sqlite_file="traces.db")
    pairs = trace_pairs(args.pairs)
    files = {"apdu4j": apdu4j_dump(pairs), "pcap": gsmtap_pcap(pairs)}
    for url in urls:
        run_backend(url, files, args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
