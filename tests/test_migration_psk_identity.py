"""The revision that makes a PSK identity name one card and adds the KVN/KID columns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy import exc as sa_exc

from cardlink.database import (
    DatabaseManager,
    MigrationError,
    downgrade,
    get_current_revision,
    run_migrations,
)
from cardlink.database.migrate import SCRIPT_LOCATION
from conftest import migrated_to
from revisions import revision_described_by
from test_migrations import differences

REVISION, PREVIOUS = revision_described_by("psk_key_version")
NOW = datetime(2026, 12, 1, 12, 0, 0)

#: The tables as the previous revision leaves them (only the columns these rows need).
_OLD = MetaData()
OLD_CARDS = Table(
    "cards",
    _OLD,
    Column("iccid", String(22)),
    Column("psk_identity", String(128)),
    Column("psk_key_encrypted", String(512)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)
OLD_SESSIONS = Table(
    "sessions",
    _OLD,
    Column("id", Uuid()),
    Column("card_iccid", String(22)),
    Column("status", String(16)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
)


@pytest.fixture
def previous(empty_database_url: str) -> Iterator[DatabaseManager]:
    """A database migrated to the revision before this one."""
    with migrated_to(PREVIOUS, empty_database_url) as db:
        yield db


def add_card(manager: DatabaseManager, iccid: str, identity: str | None) -> None:
    with manager.engine.begin() as connection:
        connection.execute(
            insert(OLD_CARDS).values(
                iccid=iccid,
                psk_identity=identity,
                psk_key_encrypted="gAAAAAtoken" if identity else None,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def cards(manager: DatabaseManager) -> list[tuple[str, str | None]]:
    with manager.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT iccid, psk_identity FROM cards ORDER BY iccid")
        ).all()
    return [(row[0], row[1]) for row in rows]


def identity_index(manager: DatabaseManager) -> dict[str, object]:
    (index,) = [
        index
        for index in inspect(manager.engine).get_indexes("cards")
        if index["name"] == "ix_cards_psk_identity"
    ]
    return {"columns": index["column_names"], "unique": bool(index["unique"])}


def test_upgrade_and_downgrade_keep_every_card_and_session(previous: DatabaseManager) -> None:
    add_card(previous, "8901", "card-1")
    add_card(previous, "8902", "card-2")
    add_card(previous, "8903", None)
    add_card(previous, "8904", None)  # identities that are NULL never collide
    session_id = uuid.uuid4()
    with previous.engine.begin() as connection:
        connection.execute(
            insert(OLD_SESSIONS).values(
                id=session_id, card_iccid="8901", status="completed", created_at=NOW, updated_at=NOW
            )
        )
    before = cards(previous)
    assert identity_index(previous) == {"columns": ["psk_identity"], "unique": False}

    assert run_migrations(REVISION, manager=previous) == REVISION
    assert cards(previous) == before
    assert identity_index(previous) == {"columns": ["psk_identity"], "unique": True}
    columns = {column["name"] for column in inspect(previous.engine).get_columns("cards")}
    assert {"psk_key_version", "psk_key_id"} <= columns
    with previous.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one() == 1
        assert connection.execute(
            text("SELECT psk_key_version, psk_key_id FROM cards WHERE iccid = '8901'")
        ).one() == (None, None)
        connection.execute(text("UPDATE cards SET psk_key_version = 48, psk_key_id = 1"))
        connection.commit()
    with (
        pytest.raises(sa_exc.IntegrityError, match="psk_identity"),
        previous.engine.begin() as connection,
    ):
        connection.execute(text("UPDATE cards SET psk_identity = 'card-1' WHERE iccid = '8902'"))
    if _head() == REVISION:
        assert differences(previous) == []  # the models' schema, exactly

    assert downgrade(revision=PREVIOUS, manager=previous) == PREVIOUS
    assert cards(previous) == before
    assert identity_index(previous) == {"columns": ["psk_identity"], "unique": False}
    columns = {column["name"] for column in inspect(previous.engine).get_columns("cards")}
    assert columns.isdisjoint({"psk_key_version", "psk_key_id"})
    with previous.engine.connect() as connection:
        sessions = connection.execute(select(OLD_SESSIONS.c.id, OLD_SESSIONS.c.card_iccid)).all()
    assert [tuple(row) for row in sessions] == [(session_id, "8901")]
    add_card(previous, "8905", "card-1")  # the old schema lets two cards share it again


def test_an_upgrade_over_shared_identities_stops_naming_them_and_changes_nothing(
    previous: DatabaseManager,
) -> None:
    add_card(previous, "8901", "shared")
    add_card(previous, "8902", "shared")
    add_card(previous, "8903", "alone")
    before = cards(previous)
    with pytest.raises(MigrationError) as refused:
        run_migrations(REVISION, manager=previous)
    message = str(refused.value)
    assert "'shared' (8901, 8902)" in message and "nothing was changed" in message
    assert "gAAAA" not in message
    assert get_current_revision(manager=previous) == PREVIOUS
    assert cards(previous) == before
    assert identity_index(previous)["unique"] is False
    # Once the operator gives each card its own identity, the upgrade goes through.
    with previous.engine.begin() as connection:
        connection.execute(text("UPDATE cards SET psk_identity = 'shared-2' WHERE iccid = '8902'"))
    assert run_migrations(REVISION, manager=previous) == REVISION


def test_the_dry_run_writes_the_revision_for_every_backend(previous: DatabaseManager) -> None:
    sql = run_migrations(REVISION, sql=True, manager=previous)
    assert sql is not None
    assert "psk_key_version" in sql and "CREATE UNIQUE INDEX ix_cards_psk_identity" in sql
    assert get_current_revision(manager=previous) == PREVIOUS


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return ", ".join(ScriptDirectory.from_config(config).get_heads())
