"""The revision that records SCP81 sessions: http_exchanges, TLS columns, logs.exchange_id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
    text,
)

from cardlink.database import DatabaseManager, downgrade, run_migrations
from conftest import migrated_to
from revisions import HEAD, revision_described_by
from test_migrations import differences

REVISION, PREVIOUS = revision_described_by("the http_exchanges table")
NOW = datetime(2026, 12, 1, 12, 0, 0)
TLS_COLUMNS = {
    "tls_version",
    "client_address",
    "handshake_ms",
    "tls_alert",
    "tls_alert_description",
    "close_reason",
    "agent_id",
}

#: The tables with only the columns these rows need, as each revision has them.
_OLD = MetaData()
SESSIONS = Table(
    "sessions",
    _OLD,
    Column("id", Uuid()),
    Column("status", String(16)),
    Column("error_code", String(64)),
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
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
_NEW = MetaData()
EXCHANGES = Table(
    "http_exchanges",
    _NEW,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("session_id", Uuid()),
    Column("timestamp", DateTime),
    Column("direction", String(16)),
    Column("http_version", String(8)),
    Column("status_code", Integer),
    Column("resume", Boolean),
    Column("headers", JSON),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)


@pytest.fixture
def previous(empty_database_url: str) -> Iterator[DatabaseManager]:
    """A database migrated to the revision before this one."""
    with migrated_to(PREVIOUS, empty_database_url) as db:
        yield db


def _seed(manager: DatabaseManager) -> uuid.UUID:
    session_id = uuid.uuid4()
    stamps = {"created_at": NOW, "updated_at": NOW}
    with manager.engine.begin() as connection:
        connection.execute(
            insert(SESSIONS).values(id=session_id, status="failed", error_code="E1", **stamps)
        )
        for direction, raw in (("command", "00A40400"), ("response", "9000")):
            connection.execute(
                insert(LOGS).values(
                    session_id=session_id,
                    timestamp=NOW,
                    direction=direction,
                    raw_data=raw,
                    **stamps,
                )
            )
    return session_id


def _rows(manager: DatabaseManager) -> dict[str, list[tuple[object, ...]]]:
    with manager.engine.connect() as connection:
        return {
            "sessions": [
                tuple(row)
                for row in connection.execute(
                    select(SESSIONS.c.id, SESSIONS.c.status, SESSIONS.c.error_code)
                )
            ],
            "logs": [
                tuple(row)
                for row in connection.execute(
                    select(LOGS.c.id, LOGS.c.session_id, LOGS.c.raw_data).order_by(LOGS.c.id)
                )
            ],
        }


def _columns(manager: DatabaseManager, table: str) -> set[str]:
    return {column["name"] for column in inspect(manager.engine).get_columns(table)}


def test_upgrade_and_downgrade_keep_every_session_and_log(previous: DatabaseManager) -> None:
    session_id = _seed(previous)
    before = _rows(previous)

    assert run_migrations(REVISION, manager=previous) == REVISION
    assert _rows(previous) == before
    assert _columns(previous, "sessions") >= TLS_COLUMNS
    assert "exchange_id" in _columns(previous, "logs")
    with previous.engine.begin() as connection:
        exchange_id = connection.execute(
            insert(EXCHANGES).values(
                session_id=session_id,
                timestamp=NOW,
                direction="response",
                http_version="HTTP/1.1",
                status_code=204,
                resume=False,
                headers=[["X-Admin-Protocol", "globalplatform-remote-admin/1.0"]],
                created_at=NOW,
                updated_at=NOW,
            )
        ).inserted_primary_key[0]
        connection.execute(
            text("UPDATE logs SET exchange_id = :exchange"), {"exchange": exchange_id}
        )
        connection.execute(text("UPDATE sessions SET tls_alert = 115, agent_id = 'agent-1'"))
        assert (
            connection.execute(
                text("SELECT COUNT(*) FROM logs WHERE exchange_id IS NOT NULL")
            ).scalar_one()
            == 2
        )
    with previous.engine.begin() as connection:  # a deleted exchange leaves its logs
        connection.execute(text("DELETE FROM http_exchanges"))
        assert (
            connection.execute(
                text("SELECT COUNT(*) FROM logs WHERE exchange_id IS NULL")
            ).scalar_one()
            == 2
        )
    if HEAD == REVISION:
        assert differences(previous) == []  # the models' schema, exactly

    assert downgrade(revision=PREVIOUS, manager=previous) == PREVIOUS
    assert _rows(previous) == before
    assert _columns(previous, "sessions").isdisjoint(TLS_COLUMNS)
    assert "exchange_id" not in _columns(previous, "logs")
    assert "http_exchanges" not in inspect(previous.engine).get_table_names()
    assert run_migrations(REVISION, manager=previous) == REVISION
    assert _rows(previous) == before


def test_the_dry_run_writes_the_revision(previous: DatabaseManager) -> None:
    sql = run_migrations(REVISION, sql=True, manager=previous)
    assert sql is not None
    assert "CREATE TABLE http_exchanges" in sql and "exchange_id" in sql and "tls_alert" in sql
    assert "http_exchanges" not in inspect(previous.engine).get_table_names()
