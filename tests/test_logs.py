"""LogRepository: adding logs one by one and in batches, queries, status-word classes, export."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from cardlink.database import (
    CommDirection,
    DatabaseManager,
    OTASession,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.status_words import StatusClass, classify


def new_session(manager: DatabaseManager) -> uuid.UUID:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create(OTASession(session_type="test"))
        uow.commit()
    return session.id


def base_time() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=10)


def test_add_log_takes_every_field_and_defaults_the_timestamp_to_now(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    before = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log(
            session_id=session_id,
            direction=CommDirection.RESPONSE,
            raw_data="6F10A000",
            decoded_data="FCP template",
            status_word="9000",
            status_message="Success",
            latency_ms=15.2,
        )
        uow.logs.add_log(session_id, "command", "00A4040008A000000151000000")
        uow.commit()
    with UnitOfWork(manager) as uow:
        response, command = uow.logs.find_by_session(session_id)
    assert (response.direction, response.raw_data, response.decoded_data) == (
        CommDirection.RESPONSE,
        "6F10A000",
        "FCP template",
    )
    assert (response.status_word, response.status_message, response.latency_ms) == (
        "9000",
        "Success",
        15.2,
    )
    assert before <= response.timestamp <= datetime.now(timezone.utc)
    assert command.direction is CommDirection.COMMAND and command.status_word is None


def test_a_response_without_a_status_word_takes_its_last_two_bytes(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        log = uow.logs.add_log(session_id, CommDirection.RESPONSE, "6F10a000 6a82")
        assert log.status_word == "6A82"


def test_add_log_batch_takes_the_guides_tuples_and_dicts_and_writes_on_flush(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    at = base_time()
    with UnitOfWork(manager) as uow:
        added = uow.logs.add_log_batch(
            [
                (session_id, CommDirection.COMMAND, "00A4...", "SELECT"),
                (session_id, CommDirection.RESPONSE, "9000", "Success"),
                {"session_id": str(session_id), "direction": "response", "raw_data": "6A82",
                 "latency_ms": 3.5, "timestamp": at},
            ]
        )  # fmt: skip
        assert added == 3 and uow.logs.pending_count == 3
        assert uow.logs.flush_batch() == 3
        assert uow.logs.pending_count == 0 and uow.logs.flush_batch() == 0
        uow.commit()
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    assert [log.raw_data for log in logs] == ["6A82", "00A4...", "9000"]  # time order
    assert [log.status_word for log in logs] == ["6A82", None, "9000"]
    assert logs[0].latency_ms == 3.5 and logs[0].timestamp == at


def test_a_bad_row_in_a_batch_buffers_nothing(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match=r"log #1: direction"):
            uow.logs.add_log_batch([(session_id, "command", "00"), (session_id, "sideways", "00")])
        with pytest.raises(ValidationError, match=r"log #0: session_id: not a valid UUID"):
            uow.logs.add_log_batch([("nope", "command")])
        with pytest.raises(ValidationError, match=r"log #0: status_word: must be four hex"):
            uow.logs.add_log_batch([{"session_id": session_id, "direction": "response",
                                     "status_word": "90"}])  # fmt: skip
        with pytest.raises(ValidationError, match="unknown field"):
            uow.logs.add_log_batch([{"session_id": session_id, "direction": "command", "x": 1}])
        assert uow.logs.pending_count == 0


def test_a_large_batch_is_written_whole_by_one_flush(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch([(session_id, "command", f"{n:04X}") for n in range(500)])
        assert uow.logs.flush_batch() == 500
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count_by_session(session_id) == 500


# -- queries --------------------------------------------------------------------------------


@pytest.fixture
def exchange(manager: DatabaseManager) -> uuid.UUID:
    """One session of 10 APDUs: 5 commands, 5 responses with various status words."""
    session_id = new_session(manager)
    at = base_time()
    rows = []
    words = ["9000", "6A82", "6110", "6283", "9000"]
    for n, word in enumerate(words):
        rows.append((session_id, "command", f"00A4040{n}", f"CMD {n}", None, None, None,
                     at + timedelta(seconds=2 * n)))  # fmt: skip
        rows.append((session_id, "response", f"6F{n:02d}{word}", f"RSP {n}", word, None, 1.0,
                     at + timedelta(seconds=2 * n + 1)))  # fmt: skip
    other = new_session(manager)
    rows.append((other, "command", "00A4FFFF", "elsewhere"))
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows)
        uow.commit()
    return session_id


def test_find_by_session_commands_and_responses_page_in_time_order(
    manager: DatabaseManager, exchange: uuid.UUID
) -> None:
    with UnitOfWork(manager) as uow:
        everything = uow.logs.find_by_session(exchange)
        assert [log.decoded_data for log in everything][:3] == ["CMD 0", "RSP 0", "CMD 1"]
        assert len(everything) == 10
        assert [log.decoded_data for log in uow.logs.find_commands(exchange, limit=2)] == [
            "CMD 0",
            "CMD 1",
        ]
        assert [log.decoded_data for log in uow.logs.find_responses(exchange, offset=3)] == [
            "RSP 3",
            "RSP 4",
        ]
        assert [log.decoded_data for log in uow.logs.find_by_session(exchange, 2, 8)] == [
            "CMD 4",
            "RSP 4",
        ]


def test_find_by_status_matches_the_status_word_in_any_case(
    manager: DatabaseManager, exchange: uuid.UUID
) -> None:
    with UnitOfWork(manager) as uow:
        assert [log.decoded_data for log in uow.logs.find_by_status(exchange, "9000")] == [
            "RSP 0",
            "RSP 4",
        ]
        assert [log.decoded_data for log in uow.logs.find_by_status(exchange, "6a82")] == ["RSP 1"]
        with pytest.raises(ValidationError, match="four hex digits"):
            uow.logs.find_by_status(exchange, "success")


#: status word -> class, after ISO/IEC 7816-4 and ETSI TS 102 221.
STATUS_WORDS = {
    "9000": StatusClass.SUCCESS,
    "9110": StatusClass.SUCCESS,
    "9201": StatusClass.SUCCESS,
    "6110": StatusClass.INTERMEDIATE,
    "6C20": StatusClass.INTERMEDIATE,
    "9F0F": StatusClass.INTERMEDIATE,
    "6283": StatusClass.WARNING,
    "63C2": StatusClass.WARNING,
    "6A82": StatusClass.ERROR,
    "6982": StatusClass.ERROR,
    "6D00": StatusClass.ERROR,
    "6E00": StatusClass.ERROR,
    "9240": StatusClass.ERROR,
    "9804": StatusClass.ERROR,
    "6400": StatusClass.ERROR,
}


def test_status_words_fall_in_the_documented_classes() -> None:
    assert {word: classify(word) for word in STATUS_WORDS} == STATUS_WORDS
    assert classify("6c20") is StatusClass.INTERMEDIATE


def test_find_errors_returns_exactly_the_error_class_responses(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    at = base_time()
    rows = [
        (session_id, "response", word, None, word, None, None, at + timedelta(seconds=n))
        for n, word in enumerate(STATUS_WORDS)
    ]
    rows.append((session_id, "command", "00A4", None, "6A82"))  # a command is never an error
    rows.append((session_id, "response", None, "no status word"))
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows)
        errors = [log.status_word for log in uow.logs.find_errors(session_id)]
        everywhere = [log.status_word for log in uow.logs.find_errors()]
    expected = [word for word, kind in STATUS_WORDS.items() if kind is StatusClass.ERROR]
    assert errors == expected and everywhere == expected


def test_search_hex_is_case_insensitive_and_refuses_non_hex(
    manager: DatabaseManager, exchange: uuid.UUID
) -> None:
    with UnitOfWork(manager) as uow:
        assert len(uow.logs.search_hex("a4", session_id=exchange)) == 5
        assert len(uow.logs.search_hex("A4 04")) == 5
        assert [log.decoded_data for log in uow.logs.search_hex("a4ffff")] == ["elsewhere"]
        assert len(uow.logs.search_hex("00A4")) == 6
        for bad in ("SELECT", "A4%", "", "0x00"):
            with pytest.raises(ValidationError, match="hex pattern"):
                uow.logs.search_hex(bad)


def test_purge_old_deletes_only_older_logs_and_counts_them(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    now = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(
            [(session_id, "command", "00", None, None, None, None, now - timedelta(days=100))] * 4
            + [(session_id, "command", "01", None, None, None, None, now - timedelta(days=10))] * 2
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.purge_old(days=90) == 4
        assert uow.logs.purge_old(days=90) == 0
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [log.raw_data for log in uow.logs.find_by_session(session_id)] == ["01", "01"]
        assert uow.logs.purge_old(days=0) == 2
        with pytest.raises(ValidationError, match="days"):
            uow.logs.purge_old(days=-1)


def test_export_session_logs_as_json_records_and_as_csv(
    manager: DatabaseManager, exchange: uuid.UUID
) -> None:
    with UnitOfWork(manager) as uow:
        records = uow.logs.export_session_logs(exchange)
        as_csv = uow.logs.export_session_logs(exchange, format="csv")
        with pytest.raises(ValidationError, match="'json' or 'csv'"):
            uow.logs.export_session_logs(exchange, format="xml")
    assert json.loads(json.dumps(records)) == records
    assert len(records) == 10
    first = records[1]
    assert first["session_id"] == str(exchange) and first["direction"] == "response"
    assert (first["raw_data"], first["status_word"], first["latency_ms"]) == (
        "6F009000",
        "9000",
        1.0,
    )
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert (
        len(rows) == 10 and rows[1]["raw_data"] == "6F009000" and rows[1]["status_word"] == "9000"
    )
    assert list(rows[0]) == list(records[0])


def test_search_hex_matches_whole_bytes_only(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    rows = [
        (session_id, "command", "00A4040007A0000000871002", "SELECT"),
        (session_id, "command", "80CA4000", "GET DATA: A4 only across a nibble boundary"),
        (session_id, "command", "80ca 9f7f 00", "spaced and lower case"),
        (session_id, "response", "0A4A49000", "A4 at odd offsets, 4A49 at an even one"),
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [log.decoded_data for log in uow.logs.search_hex("A4")] == ["SELECT"]
        assert [log.decoded_data for log in uow.logs.search_hex("9F7F")] == [
            "spaced and lower case"
        ]
        assert len(uow.logs.search_hex("ca40", session_id=session_id)) == 1
        assert uow.logs.search_hex("A44A") == []
        assert len(uow.logs.search_hex("4A49")) == 1
        for odd in ("A", "0A4", "00A 40"):
            with pytest.raises(ValidationError, match="even number of hex digits"):
                uow.logs.search_hex(odd)


def test_search_hex_finds_a_whole_byte_deep_inside_a_long_apdu(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    block = "AB" * 30_000
    rows = [
        (session_id, "command", f"80E80000{block}C4", "C4 at an even offset after 60,000 digits"),
        (session_id, "command", f"80E800000{block}C40", "the same C4 one digit later"),
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows)
        uow.commit()
    with UnitOfWork(manager) as uow:
        found = uow.logs.search_hex("ABC4", session_id=session_id)
    assert [log.decoded_data for log in found] == ["C4 at an even offset after 60,000 digits"]
