"""SCP81 sessions on record: the http_exchanges table, the TLS side of sessions, logs.exchange_id.

Revision ID: e14a7c2b90d6
Revises: 5b7c2e9d41f3
Create Date: 2026-12-06 19:50:00

Adds the table ``http_exchanges`` (one HTTP head of an Amendment B session per row),
the session columns ``tls_version``, ``client_address``, ``handshake_ms``,
``tls_alert``, ``tls_alert_description``, ``close_reason`` and ``agent_id``, and
``logs.exchange_id`` (the exchange that carried an APDU; SET NULL when it goes).
Every new column is nullable, so existing rows stay as they are. Downgrading drops
them and the table (their values are lost). Plain SQLAlchemy only, no application
imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

# revision identifiers, used by Alembic.
revision: str = "e14a7c2b90d6"
down_revision: str | Sequence[str] | None = "5b7c2e9d41f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
#: 64-bit ids on the servers; SQLite needs INTEGER for its rowid alias.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The new session columns, all nullable: (name, type).
SESSION_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("tls_version", sa.String(length=16)),
    ("client_address", sa.String(length=64)),
    ("handshake_ms", sa.Integer()),
    ("tls_alert", sa.Integer()),
    ("tls_alert_description", sa.String(length=64)),
    ("close_reason", sa.String(length=255)),
    ("agent_id", sa.String(length=255)),
)
EXCHANGE_FK = "fk_logs_exchange_id_http_exchanges"


def _logs(*, with_exchange: bool) -> sa.Table:
    """The logs table before (``with_exchange=False``) or after this revision."""
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
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_logs_session_id_sessions", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
    )
    sa.Index("ix_logs_session_id_timestamp", table.c.session_id, table.c.timestamp)
    sa.Index("ix_logs_session_id_direction", table.c.session_id, table.c.direction)
    sa.Index("ix_logs_timestamp", table.c.timestamp)
    if with_exchange:
        table.append_column(sa.Column("exchange_id", ROW_ID, nullable=True))
        table.append_constraint(
            sa.ForeignKeyConstraint(
                ["exchange_id"], ["http_exchanges.id"], name=EXCHANGE_FK, ondelete="SET NULL"
            )
        )
        sa.Index("ix_logs_exchange_id", table.c.exchange_id)
    return table


def _logs_batch(*, with_exchange_before: bool) -> dict[str, Any]:
    """SQLite adds a foreign key by copying the table; offline it copies the known layout."""
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return {}
    if not context.as_sql:
        return {"recreate": "always"}
    return {"recreate": "always", "copy_from": _logs(with_exchange=with_exchange_before)}


def upgrade() -> None:
    """The exchanges table, the TLS columns of sessions, and logs.exchange_id."""
    op.create_table(
        "http_exchanges",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("http_version", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("admin_protocol", sa.String(length=128), nullable=True),
        sa.Column("agent_id", sa.String(length=255), nullable=True),
        sa.Column("script_status", sa.String(length=21), nullable=True),
        sa.Column("resume", sa.Boolean(), nullable=False),
        sa.Column("next_uri", sa.Text(), nullable=True),
        sa.Column("targeted_application", sa.String(length=32), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("body_length", sa.BigInteger(), nullable=True),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("command_session", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_http_exchanges_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_http_exchanges")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index(
        op.f("ix_http_exchanges_session_id_timestamp"),
        "http_exchanges",
        ["session_id", "timestamp"],
    )
    op.create_index(
        op.f("ix_http_exchanges_script_status_session_id"),
        "http_exchanges",
        ["script_status", "session_id"],
    )
    for name, column_type in SESSION_COLUMNS:
        op.add_column("sessions", sa.Column(name, column_type, nullable=True))
    op.create_index(op.f("ix_sessions_tls_alert"), "sessions", ["tls_alert"])
    with op.batch_alter_table("logs", **_logs_batch(with_exchange_before=False)) as batch_op:
        batch_op.add_column(sa.Column("exchange_id", ROW_ID, nullable=True))
        batch_op.create_index(op.f("ix_logs_exchange_id"), ["exchange_id"])
        batch_op.create_foreign_key(
            EXCHANGE_FK, "http_exchanges", ["exchange_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    """Drop logs.exchange_id, the TLS columns of sessions and the exchanges table."""
    with op.batch_alter_table("logs", **_logs_batch(with_exchange_before=True)) as batch_op:
        batch_op.drop_constraint(EXCHANGE_FK, type_="foreignkey")
        batch_op.drop_index(op.f("ix_logs_exchange_id"))
        batch_op.drop_column("exchange_id")
    op.drop_index(op.f("ix_sessions_tls_alert"), table_name="sessions")
    with op.batch_alter_table("sessions") as batch_op:
        for name, _ in reversed(SESSION_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("http_exchanges")
