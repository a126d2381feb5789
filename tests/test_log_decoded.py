"""Logs store their decoded command fields and the command each response answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete

from cardlink.database import (
    CommDirection,
    CommLog,
    DatabaseManager,
    DataExporter,
    DataImporter,
    ExportFormat,
    UnitOfWork,
)
from cardlink.database.codec import TABLE_NAMES
from cardlink.database.models import Base

START = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
C, R = CommDirection.COMMAND, CommDirection.RESPONSE


def new_session(manager: DatabaseManager) -> str:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session()
        uow.commit()
        return str(session.id)


def rows(session_id: str, *apdus: tuple[CommDirection, str], start: int = 0) -> list[tuple]:
    """Batch tuples one millisecond apart, responses with their status word derived."""
    return [
        (session_id, direction, hex_text, None, None, None, None, START + timedelta(milliseconds=n))
        for n, (direction, hex_text) in enumerate(apdus, start=start)
    ]


def links(manager: DatabaseManager, session_id: str) -> list[tuple[str, str | None]]:
    """Each response's raw data and its command's raw data, in wire order."""
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    by_id = {log.id: log for log in logs}
    return [
        (log.raw_data or "", by_id[log.command_id].raw_data if log.command_id else None)
        for log in logs
        if log.direction is R
    ]


def test_a_command_is_stored_with_its_decoded_fields(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, (C, "01A4040007A000000151000000")))
        uow.commit()
    with UnitOfWork(manager) as uow:
        (log,) = uow.logs.find_by_session(session_id)
    fields = (log.cla, log.ins, log.p1, log.p2, log.lc, log.le, log.channel, log.command_name)
    assert fields == (0x01, 0xA4, 0x04, 0x00, 7, 256, 1, "SELECT")


@pytest.mark.parametrize("raw_data", ["not hex", "00A4", "", None])
def test_an_undecodable_command_is_stored_as_given_with_empty_fields(
    manager: DatabaseManager, raw_data: Any
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log(session_id, "command", raw_data)
        uow.commit()
    with UnitOfWork(manager) as uow:
        (log,) = uow.logs.find_by_session(session_id)
    assert log.raw_data == raw_data
    assert (log.cla, log.ins, log.lc, log.le, log.channel, log.command_name) == (None,) * 6


def test_a_response_gets_its_status_words_meaning_unless_one_is_given(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log(session_id, "response", "6A88")
        uow.logs.add_log_batch([(session_id, R, "63C2"), (session_id, R, "9000", None, None, "ok")])
        uow.commit()
    with UnitOfWork(manager) as uow:
        messages = [log.status_message for log in uow.logs.find_by_session(session_id)]
    assert sorted(messages) == sorted(
        ["referenced data not found", "verification failed, 2 retries left", "ok"]
    )


def test_a_response_answers_the_newest_unanswered_command_of_its_channel(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    trace = [
        (C, "00A4040000"),  # channel 0
        (C, "01B0000010"),  # channel 1, newest
        (R, "AA" * 16 + "9000"),  # answers channel 1's READ BINARY
        (R, "6A82"),  # answers the SELECT, the only one left open
        (R, "6D00"),  # nothing left: kept unpaired
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, *trace))
        uow.commit()
    assert links(manager, session_id) == [
        ("AA" * 16 + "9000", "01B0000010"),
        ("6A82", "00A4040000"),
        ("6D00", None),
    ]


def test_pairing_carries_across_batches_units_of_work_and_add_log(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, (C, "00A4040000"), (C, "00B0000004")))
        uow.logs.flush_batch()
        uow.logs.add_log_batch(rows(session_id, (R, "01020304" + "9000"), start=2))
        uow.commit()
    with UnitOfWork(manager) as uow:  # a new unit of work resumes from the database
        uow.logs.add_log(session_id, "response", "9000", timestamp=START + timedelta(seconds=1))
        uow.logs.add_log(
            session_id, "command", "80CA9F7F00", timestamp=START + timedelta(seconds=2)
        )
        uow.logs.add_log_batch(rows(session_id, (R, "6A88"), start=3000))
        uow.commit()
    assert links(manager, session_id) == [
        ("010203049000", "00B0000004"),
        ("9000", "00A4040000"),
        ("6A88", "80CA9F7F00"),
    ]


def test_sessions_pair_apart(manager: DatabaseManager) -> None:
    first, second = new_session(manager), new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(
            [*rows(first, (C, "00A4040000")), *rows(second, (R, "9000"), start=1)]
        )
        uow.logs.add_log_batch(rows(first, (R, "9000"), start=2))
        uow.commit()
    assert links(manager, first) == [("9000", "00A4040000")]
    assert links(manager, second) == [("9000", None)]


def test_get_response_and_re_issue_chains_pair_each_step(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    trace = [
        (C, "00A4040007A0000000871002"),
        (R, "6120"),  # answers the SELECT: 32 bytes wait
        (C, "00C0000020"),  # GET RESPONSE continues the SELECT
        (R, "62" + "00" * 31 + "9000"),
        (C, "00B0000000"),  # READ BINARY, Le 256
        (R, "6C10"),  # wrong Le
        (C, "00B0000010"),  # re-issued with Le 16
        (R, "11" * 16 + "9000"),
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, *trace[:3]))
        uow.logs.flush_batch()
        uow.logs.add_log_batch(rows(session_id, *trace[3:], start=3))
        uow.commit()
    assert links(manager, session_id) == [
        ("6120", "00A4040007A0000000871002"),
        ("62" + "00" * 31 + "9000", "00C0000020"),
        ("6C10", "00B0000000"),
        ("11" * 16 + "9000", "00B0000010"),
    ]
    with UnitOfWork(manager) as uow:
        names = [log.command_name for log in uow.logs.find_commands(session_id)]
    assert names == ["SELECT", "GET RESPONSE", "READ BINARY", "READ BINARY"]


def test_a_rolled_back_batch_leaves_no_pairing_behind(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, (C, "00A4040000")))
        uow.logs.flush_batch()
        uow.rollback()
        uow.logs.add_log_batch(rows(session_id, (C, "00B0000004"), (R, "9000"), start=1))
        uow.commit()
    assert links(manager, session_id) == [("9000", "00B0000004")]


def test_deleting_a_command_unlinks_its_response(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, (C, "00A4040000"), (R, "9000")))
        uow.commit()
    with UnitOfWork(manager) as uow:
        command = uow.logs.find_commands(session_id)[0]
        uow.logs.delete(command)
        uow.commit()
    assert links(manager, session_id) == [("9000", None)]


def _exported_then_cleared(manager: DatabaseManager) -> dict[str, Any]:
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all(ExportFormat.JSON))
    with UnitOfWork(manager) as uow:
        for name in reversed(TABLE_NAMES):
            uow.session.execute(delete(Base.metadata.tables[name]))
        uow.commit()
    return document


@pytest.mark.parametrize("carried", [True, False], ids=["with-columns", "older-document"])
def test_an_imported_document_brings_or_gets_the_decoded_columns(
    manager: DatabaseManager, carried: bool
) -> None:
    session_id = new_session(manager)
    trace = [(C, "00A4040000"), (C, "01B0000004"), (R, "010203049000"), (R, "6A82"), (R, "9000")]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, *trace))
        uow.commit()
    before = links(manager, session_id)
    document = _exported_then_cleared(manager)
    if not carried:  # as written before the columns existed
        for row in document["tables"]["logs"]:
            for name in ("cla", "ins", "p1", "p2", "lc", "le", "channel", "command_name"):
                del row[name]
            del row["command_id"]
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(json.dumps(document), ExportFormat.JSON)
        uow.commit()
    assert links(manager, session_id) == before
    with UnitOfWork(manager) as uow:
        names = [(log.command_name, log.channel) for log in uow.logs.find_commands(session_id)]
    assert names == [("SELECT", 0), ("READ BINARY", 1)]


def test_the_guides_comm_log_through_create_is_decoded_and_linked(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        command = uow.logs.create(
            CommLog(session_id=session_id, direction=C, raw_data="00A4040008A000000151000000")
        )
        response = uow.logs.create(
            CommLog(session_id=session_id, direction=R, raw_data="9000", status_word="9000")
        )
        uow.commit()
        assert (command.command_name, command.lc, response.command_id) == (
            "SELECT",
            8,
            command.id,
        )


def test_a_writer_that_took_the_next_ids_first_does_not_break_the_links(
    manager: DatabaseManager,
) -> None:
    """On MariaDB the batch guesses MAX(id) + 1 from its snapshot; here another unit of
    work stored a log after that snapshot, so the guess collides and the batch links
    its rows after inserting them. Elsewhere the ids are reserved: same result."""
    session_id, other = new_session(manager), new_session(manager)
    with UnitOfWork(manager) as uow:
        assert uow.logs.count_by_session(session_id) == 0  # the snapshot starts here
        with UnitOfWork(manager) as meanwhile:
            meanwhile.logs.add_log(other, "command", "00A4040000")
            meanwhile.commit()
        uow.logs.add_log_batch(rows(session_id, (C, "00B0000004"), (C, "01B0000004")))
        uow.logs.add_log_batch(rows(session_id, (R, "6A82"), (R, "9000"), start=2))
        uow.logs.flush_batch()
        uow.logs.add_log_batch(rows(session_id, (C, "00CA00FF00"), (R, "6D00"), start=4))
        uow.commit()
    assert links(manager, session_id) == [
        ("6A82", "01B0000004"),
        ("9000", "00B0000004"),
        ("6D00", "00CA00FF00"),
    ]
