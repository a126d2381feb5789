"""The schema revision a database records (Alembic's version table), below the migration API.

``DatabaseManager.create_tables()`` records the head revision here, and the
migration API (``migrate.py``) reads and moves it. This module imports neither of
them, which is what keeps the engine owner and the migration API out of an import
cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from .exceptions import DatabaseError, MigrationError, translated_errors
from .sqlite_locking import write_transactions

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

#: Where the Alembic environment lives, as a package resource (works from a wheel).
SCRIPT_LOCATION = "cardlink.database:migrations"
VERSION_TABLE = "alembic_version"


def script_directory(script_location: str | None = None) -> ScriptDirectory:
    """The package's revisions, as Alembic's script directory."""
    from alembic.config import Config  # Alembic: a sixth of the CLI's start-up, loaded on use
    from alembic.script import ScriptDirectory  # as above

    config = Config()
    config.set_main_option("script_location", script_location or SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config)


def current_heads(connection: Connection) -> tuple[str, ...]:
    """The revision(s) recorded in the database; empty when none is."""
    from alembic.runtime.migration import MigrationContext  # Alembic: loaded on use, as above

    with translated_errors():
        heads = MigrationContext.configure(connection).get_current_heads()
    return tuple(heads)


def stamp_head(connection: Connection) -> bool:
    """Record the head revision on ``connection`` unless one is recorded; True if it stamped.

    Runs inside the caller's transaction, so tables created in it and their revision
    commit together.
    """
    from alembic.runtime.migration import MigrationContext  # Alembic: loaded on use, as above

    with translated_errors():
        context = MigrationContext.configure(connection)
        if context.get_current_heads():
            return False
        context.stamp(script_directory(), "head")
    return True


def stamp_head_if_unversioned(engine: Engine) -> bool:
    """Record the head revision in its own transaction if none is recorded; True if stamped.

    Two processes creating the tables at once both try; the one that loses finds the
    revision recorded and returns False.
    """
    try:
        with translated_errors(), write_transactions(), engine.begin() as connection:
            return stamp_head(connection)
    except DatabaseError as error:
        with translated_errors(), engine.connect() as connection:
            if current_heads(connection):  # another process stamped it meanwhile
                return False
        raise MigrationError(f"cannot record the schema revision: {error}") from error
