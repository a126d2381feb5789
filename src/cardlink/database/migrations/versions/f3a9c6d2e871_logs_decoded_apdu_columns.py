"""logs store decoded APDU columns and the command a response answers.

Revision ID: f3a9c6d2e871
Revises: d4e7a1c9b305
Create Date: 2026-12-06 22:20:00

Adds to ``logs`` the decoded command fields ``cla``, ``ins``, ``p1``, ``p2``, ``lc``,
``le``, ``channel`` and ``command_name``, and ``command_id`` (the command a response
answers; SET NULL when that command goes), with indexes on ``command_name``,
(``session_id``, ``command_name``), ``ins`` and ``command_id``. Every existing row is
then filled by ``cardlink.database.log_backfill``: one session at a time in wire
order, keyset pages of rows, so memory stays flat at millions of rows. The backfill
uses the package's APDU decoder and pairing rules (the same that fill new rows), so
it is the one application import of a revision; offline (``--sql``) scripts hold the
schema change only. Downgrading drops the columns and indexes and keeps every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from cardlink.database.log_backfill import backfill_logs

# revision identifiers, used by Alembic.
revision: str = "f3a9c6d2e871"
down_revision: str | Sequence[str] | None = "d4e7a1c9b305"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: 64-bit ids on the servers; SQLite needs INTEGER for its rowid alias.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: The decoded columns this revision adds and the ``DecodedApdu`` field each holds.
DECODED_COLUMNS = {
    "cla": "cla",
    "ins": "ins",
    "p1": "p1",
    "p2": "p2",
    "lc": "lc",
    "le": "le",
    "channel": "channel",
    "command_name": "name",
}
COMMAND_FK = "fk_logs_command_id_logs"
NEW_INDEXES = {
    "ix_logs_command_name": ["command_name"],
    "ix_logs_session_id_command_name": ["session_id", "command_name"],
    "ix_logs_ins": ["ins"],
    "ix_logs_command_id": ["command_id"],
}


def _new_columns() -> list[sa.Column[Any]]:
    return [
        *(
            sa.Column(name, sa.String(length=64) if name == "command_name" else sa.Integer())
            for name in DECODED_COLUMNS
        ),
        sa.Column("command_id", ROW_ID, nullable=True),
    ]


def _logs(*, decoded: bool) -> sa.Table:
    """The logs table before (``decoded=False``) or after this revision, in plain types."""
    table = sa.Table(
        "logs",
        sa.MetaData(),
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("raw_data", sa.Text(), nullable=True),
        sa.Column("decoded_data", sa.Text(), nullable=True),
        sa.Column("status_word", sa.String(length=4), nullable=True),
        sa.Column("status_message", sa.String(length=255), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("exchange_id", ROW_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_logs_session_id_sessions", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["http_exchanges.id"],
            name="fk_logs_exchange_id_http_exchanges",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
    )
    sa.Index("ix_logs_session_id_timestamp", table.c.session_id, table.c.timestamp)
    sa.Index("ix_logs_session_id_direction", table.c.session_id, table.c.direction)
    sa.Index("ix_logs_timestamp", table.c.timestamp)
    sa.Index("ix_logs_exchange_id", table.c.exchange_id)
    if decoded:
        for column in _new_columns():
            table.append_column(column)
        table.append_constraint(
            sa.ForeignKeyConstraint(
                ["command_id"], ["logs.id"], name=COMMAND_FK, ondelete="SET NULL"
            )
        )
        for name, columns in NEW_INDEXES.items():
            sa.Index(name, *(table.c[column] for column in columns))
    return table


def _logs_batch(*, decoded_before: bool) -> dict[str, Any]:
    """SQLite adds a foreign key by copying the table; offline it copies the known layout."""
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return {}
    if not context.as_sql:
        return {"recreate": "always"}
    return {"recreate": "always", "copy_from": _logs(decoded=decoded_before)}


def upgrade() -> None:
    """Add the columns, their indexes and the link; fill them for every stored row."""
    with op.batch_alter_table("logs", **_logs_batch(decoded_before=False)) as batch_op:
        for column in _new_columns():
            batch_op.add_column(column)
        for name, columns in NEW_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        batch_op.create_foreign_key(COMMAND_FK, "logs", ["command_id"], ["id"], ondelete="SET NULL")
    if not op.get_context().as_sql:
        backfill_logs(op.get_bind(), _logs(decoded=True), DECODED_COLUMNS)


def downgrade() -> None:
    """Drop the link, the indexes and the columns; every row stays."""
    with op.batch_alter_table("logs", **_logs_batch(decoded_before=True)) as batch_op:
        batch_op.drop_constraint(COMMAND_FK, type_="foreignkey")  # MySQL: before its index
        for name in NEW_INDEXES:
            batch_op.drop_index(name)
        for column in reversed(_new_columns()):
            batch_op.drop_column(column.name)
