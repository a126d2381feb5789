"""The revision that stores decoded APDU columns and command links, over real data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    insert,
    inspect,
    select,
)

from cardlink.database import DatabaseManager, downgrade, run_migrations
from cardlink.database.log_backfill import backfill_logs
from conftest import migrated_to
from revisions import HEAD, revision_described_by
from test_migrations import differences

REVISION, PREVIOUS = revision_described_by("logs store decoded APDU columns")
NOW = datetime(2026, 12, 1, 12, 0, 0)
NEW_COLUMNS = {"cla", "ins", "p1", "p2", "lc", "le", "channel", "command_name", "command_id"}

#: The tables as the previous revision leaves them (only the columns these rows need).
_OLD = MetaData()
SESSIONS = Table(
    "sessions",
    _OLD,
    Column("id", Uuid()),
    Column("status", String(16)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
LOGS = Table(
    "logs",
    _OLD,
    Column("id", Integer, primary_key=True),
    Column("session_id", Uuid()),
    Column("timestamp", DateTime),
    Column("direction", String(16)),
    Column("raw_data", Text),
    Column("status_word", String(4)),
    Column("status_message", String(255)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
#: Two sessions' traces, interleaved on insert: (session, direction, raw data).
TRACE = [
    (0, "command", "00A4040007A0000000871002"),
    (1, "command", "80F21000024F0000"),
    (0, "response", "6120"),
    (0, "command", "00C0000020"),
    (1, "response", "6A88"),
    (0, "response", "62" + "00" * 31 + "9000"),
    (0, "command", "01B0000010"),
    (0, "command", "not an apdu"),
    (0, "response", "9000"),  # answers the undecodable command on channel 0
    (0, "response", "11" * 16 + "9000"),  # then channel 1's READ BINARY
    (1, "response", "6D00"),  # nothing open: unpaired
]


@pytest.fixture
def previous(empty_database_url: str) -> Iterator[DatabaseManager]:
    """A database migrated to the revision before this one."""
    with migrated_to(PREVIOUS, empty_database_url) as db:
        yield db


def _old_rows(manager: DatabaseManager) -> list[tuple[object, ...]]:
    with manager.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(LOGS).order_by(LOGS.c.id))]


def _fill(manager: DatabaseManager) -> list[uuid.UUID]:
    sessions = [uuid.uuid4(), uuid.uuid4()]
    with manager.engine.begin() as connection:
        for session in sessions:
            connection.execute(
                insert(SESSIONS).values(
                    id=session, status="completed", created_at=NOW, updated_at=NOW
                )
            )
        for number, (which, direction, raw_data) in enumerate(TRACE):
            connection.execute(
                insert(LOGS).values(
                    session_id=sessions[which],
                    timestamp=NOW + timedelta(milliseconds=number),
                    direction=direction,
                    raw_data=raw_data,
                    status_word=raw_data[-4:] if direction == "response" else None,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    return sessions


def test_upgrade_decodes_and_links_every_stored_log_and_downgrade_keeps_them(
    previous: DatabaseManager,
) -> None:
    _fill(previous)
    before = _old_rows(previous)

    assert run_migrations(REVISION, manager=previous) == REVISION
    assert _old_rows(previous) == before  # every old value as it was
    logs = Table("logs", MetaData(), autoload_with=previous.engine)
    with previous.engine.connect() as connection:
        stored = connection.execute(select(logs).order_by(logs.c.id)).mappings().all()
    by_id = {row["id"]: row for row in stored}
    decoded = [
        (row["raw_data"], row["cla"], row["ins"], row["channel"], row["le"], row["command_name"])
        for row in stored
        if row["direction"] == "command"
    ]
    assert decoded == [
        ("00A4040007A0000000871002", 0x00, 0xA4, 0, None, "SELECT"),
        ("80F21000024F0000", 0x80, 0xF2, 0, 256, "GET STATUS"),
        ("00C0000020", 0x00, 0xC0, 0, 32, "GET RESPONSE"),
        ("01B0000010", 0x01, 0xB0, 1, 16, "READ BINARY"),
        ("not an apdu", None, None, None, None, None),
    ]
    links = [
        (row["raw_data"], by_id[row["command_id"]]["raw_data"] if row["command_id"] else None)
        for row in stored
        if row["direction"] == "response"
    ]
    assert links == [
        ("6120", "00A4040007A0000000871002"),
        ("6A88", "80F21000024F0000"),
        ("62" + "00" * 31 + "9000", "00C0000020"),
        ("9000", "not an apdu"),
        ("11" * 16 + "9000", "01B0000010"),
        ("6D00", None),
    ]
    if HEAD == REVISION:
        assert differences(previous) == []  # the models' schema, exactly

    assert downgrade(revision=PREVIOUS, manager=previous) == PREVIOUS
    assert _old_rows(previous) == before
    columns = {column["name"] for column in inspect(previous.engine).get_columns("logs")}
    assert columns.isdisjoint(NEW_COLUMNS)
    indexes = {index["name"] for index in inspect(previous.engine).get_indexes("logs")}
    assert not any("command" in str(name) or name == "ix_logs_ins" for name in indexes)


def test_the_backfill_pages_through_a_session_carrying_its_pairing(
    previous: DatabaseManager,
) -> None:
    """Pages of two rows split every command from its response; the links stay right."""
    sessions = _fill(previous)
    assert run_migrations(REVISION, manager=previous) == REVISION
    logs = Table("logs", MetaData(), autoload_with=previous.engine)
    with previous.engine.begin() as connection:
        expected = connection.execute(
            select(logs.c.id, logs.c.command_id, logs.c.command_name).order_by(logs.c.id)
        ).all()
        connection.execute(logs.update().values(command_id=None, command_name=None))
        fields = {"command_name": "name"}
        done = backfill_logs(connection, logs, fields, session_ids=sessions, page_rows=2)
        again = connection.execute(
            select(logs.c.id, logs.c.command_id, logs.c.command_name).order_by(logs.c.id)
        ).all()
    assert done == len(TRACE)
    assert again == expected
