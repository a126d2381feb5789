"""The batch log path stores exactly what add_log stores, or nothing at all."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import inspect, text

from cardlink.database import (
    CommDirection,
    CommLog,
    DatabaseManager,
    IntegrityError,
    UnitOfWork,
    ValidationError,
)
from cardlink.database._sa_internals import FAST_PATH_VARIABLE

UTC = timezone.utc
PARIS_SUMMER = timezone(timedelta(hours=2))

#: Rows in the guide's batch-tuple shape, covering the conversions the fast path does itself.
ROWS: list[tuple[Any, ...]] = [
    # aware UTC timestamp with microseconds; explicit lower-case status word
    (
        "SID",
        CommDirection.RESPONSE,
        "6A82",
        None,
        "6a82",
        "not found",
        1.5,
        datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    ),
    # another zone: stored as UTC
    (
        "SID",
        CommDirection.COMMAND,
        "00A4040008A000000151000000",
        "SELECT",
        None,
        None,
        2,
        datetime(2024, 3, 1, 14, 0, 1, 999999, tzinfo=PARIS_SUMMER),
    ),
    # naive = local time; status word derived from the response tail
    ("SID", "response", "01029000", None, None, None, None, datetime(2024, 3, 1, 13, 0, 2, 5)),
    # name spelling of the direction, session id as text, status word with a space
    (
        "SID-TEXT",
        "COMMAND",
        "80F2",
        None,
        "91 10",
        "proactive",
        0.25,
        datetime(2024, 3, 1, 12, 0, 3, tzinfo=UTC),
    ),
    # short tuple: no timestamp (now), nothing but the direction
    ("SID", CommDirection.RESPONSE),
    # response whose tail is not hex: no status word
    (
        "SID",
        CommDirection.RESPONSE,
        "zz",
        None,
        None,
        None,
        7.0,
        datetime(2024, 3, 1, 12, 0, 4, 1, tzinfo=UTC),
    ),
]

STORED_COLUMNS = (
    "session_id, direction, raw_data, decoded_data, status_word, status_message, latency_ms, {ts}"
)


def _rows_for(session_id: uuid.UUID) -> list[tuple[Any, ...]]:
    replaced = []
    for row in ROWS:
        first = session_id if row[0] == "SID" else str(session_id)
        replaced.append((first, *row[1:]))
    return replaced


def _new_session(manager: DatabaseManager) -> uuid.UUID:
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(session_type="batch-test")
        uow.commit()
        return session.id


def _stored(manager: DatabaseManager, session_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """The rows exactly as the database holds them (driver values, no SQLAlchemy types)."""
    quoted = '"timestamp"' if manager.config.backend != "mysql" else "`timestamp`"
    key = session_id if manager.config.is_postgresql else session_id.hex
    with manager.engine.connect() as connection:
        result = connection.execute(
            text(
                f"SELECT {STORED_COLUMNS.format(ts=quoted)} FROM logs "
                f"WHERE session_id = :key ORDER BY id"
            ),
            {"key": key},
        )
        return [tuple(row) for row in result]


def _without_session(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [row[1:] for row in rows]


def test_batch_stores_exactly_the_values_add_log_stores(manager: DatabaseManager) -> None:
    one_by_one, batched = _new_session(manager), _new_session(manager)
    with UnitOfWork(manager) as uow:
        for row in _rows_for(one_by_one):
            uow.logs.add_log(*row)
        assert uow.logs.add_log_batch(_rows_for(batched)) == len(ROWS)
        assert uow.logs.flush_batch() == len(ROWS)
        uow.commit()
    single, batch = _stored(manager, one_by_one), _stored(manager, batched)
    # Rows without a timestamp get "now", which differs between the two calls.
    untimed = [index for index, row in enumerate(ROWS) if len(row) < 8]
    for index in untimed:
        single[index], batch[index] = single[index][:-1], batch[index][:-1]
    assert _without_session(batch) == _without_session(single)
    assert {uuid.UUID(str(row[0])) for row in batch} == {batched}


def test_batch_values_read_back_as_utc_uuid_and_enum(manager: DatabaseManager) -> None:
    session_id = _new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(_rows_for(session_id))
        uow.commit()
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    by_raw = {log.raw_data: log for log in logs}
    first = by_raw["6A82"]
    assert first.session_id == session_id
    assert first.direction is CommDirection.RESPONSE
    assert first.status_word == "6A82"
    assert first.timestamp == datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert first.timestamp.tzinfo is not None and first.timestamp.utcoffset() == timedelta(0)
    assert by_raw["00A4040008A000000151000000"].timestamp == datetime(
        2024, 3, 1, 12, 0, 1, 999999, tzinfo=UTC
    )
    local = datetime(2024, 3, 1, 13, 0, 2, 5).astimezone(UTC)
    assert by_raw["01029000"].timestamp == local
    assert by_raw["01029000"].status_word == "9000"
    assert by_raw["80F2"].status_word == "9110"
    assert by_raw["80F2"].direction is CommDirection.COMMAND
    assert by_raw["zz"].status_word is None
    assert by_raw[None].status_word is None
    assert abs(by_raw[None].timestamp - datetime.now(UTC)) < timedelta(minutes=5)
    assert all(log.created_at.tzinfo is not None for log in logs)


def test_dict_rows_are_checked_like_tuples(manager: DatabaseManager) -> None:
    session_id = _new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(
            [{"session_id": session_id, "direction": "response", "raw_data": "6F009000"}]
        )
        with pytest.raises(ValidationError, match="unknown field"):
            uow.logs.add_log_batch([{"session_id": session_id, "direction": "command", "sw": 1}])
        uow.commit()
    with UnitOfWork(manager) as uow:
        (log,) = uow.logs.find_by_session(session_id)
        assert log.status_word == "9000"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ((None, CommDirection.COMMAND), "session_id: required field is missing"),
        (("not-a-uuid", CommDirection.COMMAND), "not a valid UUID"),
        (("SID", "sideways"), "direction"),
        (("SID",), "expected a tuple of 2 to 8"),
        (("SID", CommDirection.RESPONSE, 9000), "raw_data: expected text"),
        (("SID", CommDirection.RESPONSE, "9000", None, "90"), "four hex digits"),
        (("SID", CommDirection.RESPONSE, "9000", None, None, "x" * 256), "at most 255"),
        (("SID", CommDirection.RESPONSE, "90\x0000"), "NUL"),
        (("SID", CommDirection.RESPONSE, "9000", None, None, None, "fast"), "expected a number"),
        (("SID", CommDirection.RESPONSE, "9000", None, None, None, True), "expected a number"),
        (("SID", CommDirection.RESPONSE, "9000", None, None, None, 1.0, "2024-01-01"), "datetime"),
    ],
)
def test_a_bad_row_in_a_batch_writes_nothing(
    manager: DatabaseManager, bad_row: tuple[Any, ...], message: str
) -> None:
    session_id = _new_session(manager)
    good = (session_id, CommDirection.COMMAND, "00A40400")
    bad = tuple(session_id if value == "SID" else value for value in bad_row)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch([good])
        with pytest.raises(ValidationError, match=message) as refused:
            uow.logs.add_log_batch([good, good, bad])
        assert "log #2" in str(refused.value)
        assert uow.logs.pending_count == 1  # the refused call added nothing
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count_by_session(session_id) == 1


def test_a_batch_the_database_refuses_leaves_none_of_its_rows(manager: DatabaseManager) -> None:
    session_id = _new_session(manager)
    stranger = uuid.uuid4()  # no such session: the foreign key refuses it
    rows = [(session_id, CommDirection.COMMAND, f"00B0{index:04X}") for index in range(50)]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch([*rows, (stranger, CommDirection.COMMAND, "00")])
        with pytest.raises(IntegrityError):
            uow.logs.flush_batch()
        uow.rollback()
        uow.logs.add_log_batch(rows[:3])
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count_by_session(session_id) == 3


def test_a_large_batch_is_one_transaction_with_one_event(manager: DatabaseManager) -> None:
    from cardlink.database import EventType, get_emitter

    session_id = _new_session(manager)
    seen: list[Any] = []
    get_emitter().on(EventType.LOG_BATCH_CREATED, seen.append)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        (
            session_id,
            CommDirection.COMMAND,
            "00A4",
            None,
            None,
            None,
            1.0,
            start + timedelta(microseconds=index),
        )
        for index in range(5_000)
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows)
        uow.logs.flush_batch()
        with UnitOfWork(manager) as other:  # not visible before the commit
            assert other.logs.count_by_session(session_id) == 0
        uow.commit()
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
    assert len(logs) == 5_000
    assert [log.timestamp for log in logs[:3]] == [row[-1] for row in rows[:3]]
    assert len(seen) == 1 and seen[0].data["count"] == 5_000
    assert seen[0].data["session_ids"] == [str(session_id)]


# -- find_by_session builds entities straight from rows (repositories/fast_load.py) ------------


def test_found_logs_are_persistent_entities_of_the_unit_of_work(manager: DatabaseManager) -> None:
    session_id = _new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(_rows_for(session_id))
        uow.commit()
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
        first = logs[0]
        state = inspect(first)
        assert state.persistent and state.session is uow.session
        assert uow.session.get(type(first), first.id) is first  # one object per identity
        assert first.session.id == session_id  # lazy relationship loads on access
        assert uow.logs.find_by_session(session_id)[0] is first
        first.decoded_data = "edited"
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.find_by_session(session_id)[0].decoded_data == "edited"
    # Still readable after the unit of work closed (detached, not expired).
    assert logs[0].raw_data == "6A82" and all(log.direction for log in logs)


def test_find_by_session_sees_unflushed_work_and_keeps_held_objects(
    manager: DatabaseManager,
) -> None:
    session_id = _new_session(manager)
    with UnitOfWork(manager) as uow:
        single = uow.logs.add_log(session_id, CommDirection.COMMAND, "00A4")
        single.decoded_data = "changed, not flushed"
        uow.logs.add_log_batch([(session_id, CommDirection.RESPONSE, "9000")])
        found = uow.logs.find_by_session(session_id)
        assert found[0] is single and found[0].decoded_data == "changed, not flushed"
        assert [log.status_word for log in found] == [None, "9000"]
        assert [log.direction for log in uow.logs.find_responses(session_id)] == [
            CommDirection.RESPONSE
        ]
        assert len(uow.logs.find_by_session(session_id, limit=1, offset=1)) == 1


def test_logs_written_by_other_tools_read_back_the_same(
    manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows inserted with plain SQL (no microseconds; on SQLite also text with an offset of
    its own) come back through the prepared fast path exactly as through the plain ORM query
    (the fast path switched off)."""
    session_id = _new_session(manager)
    stored_id = session_id.hex if not manager.config.is_postgresql else str(session_id)
    # SQLite keeps whatever text it is given: an ISO form with its own offset must still read.
    second_form = "2026-01-02T03:04:06+00:00" if manager.config.is_sqlite else "2026-01-02 03:04:06"
    with manager.engine.begin() as connection:
        for at, direction in (("2026-01-02 03:04:05", "command"), (second_form, "response")):
            connection.execute(
                text(
                    "INSERT INTO logs (session_id, timestamp, direction, raw_data, "
                    "created_at, updated_at) VALUES (:sid, :at, :direction, '00A4', :at, :at)"
                ),
                {"sid": stored_id, "at": at, "direction": direction},
            )
    with UnitOfWork(manager) as uow:
        fast = uow.logs.find_by_session(session_id)
    with monkeypatch.context() as patch, UnitOfWork(manager) as uow:
        patch.setenv(FAST_PATH_VARIABLE, "0")
        through_orm = uow.logs.find_by_session(session_id)
    assert [log.timestamp for log in fast] == [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc),
    ]
    assert all(log.timestamp.tzinfo is timezone.utc for log in fast)
    assert [log.direction for log in fast] == [CommDirection.COMMAND, CommDirection.RESPONSE]
    columns = [attribute.key for attribute in inspect(CommLog).column_attrs]
    assert [[getattr(log, key) for key in columns] for log in fast] == [
        [getattr(log, key) for key in columns] for log in through_orm
    ]
