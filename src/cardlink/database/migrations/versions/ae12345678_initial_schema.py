"""Initial schema: devices, cards, sessions, logs, tests and settings.

Revision ID: ae12345678
Revises:
Create Date: 2026-11-26 08:29:06

Plain SQLAlchemy types only (no application imports), so this revision keeps
meaning the same schema whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

# revision identifiers, used by Alembic.
revision: str = "ae12345678"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Naive UTC timestamps; microseconds on MySQL/MariaDB need DATETIME(6).
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: JSON everywhere, JSONB on PostgreSQL.
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
#: Enums are stored as their text value (no native ENUM, no CHECK).
ENUM = sa.String(length=16)
#: 64-bit log ids on the servers; SQLite needs INTEGER for its rowid alias.
LOG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXES: dict[str, list[list[str]]] = {
    "devices": [["device_type"], ["iccid"], ["last_seen"]],
    "cards": [["card_type"], ["psk_identity"]],
    "settings": [["category"]],
    "sessions": [
        ["device_id", "created_at"],
        ["card_iccid", "created_at"],
        ["status"],
        ["created_at"],
        ["started_at", "status", "duration_ms"],
    ],
    "tests": [
        ["run_id"],
        ["suite_name", "started_at"],
        ["status"],
        ["device_id"],
        ["card_iccid"],
        ["created_at"],
    ],
    "logs": [["session_id", "timestamp"], ["session_id", "direction"], ["timestamp"]],
}


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    ]


def upgrade() -> None:
    """Create the six tables and their indexes."""
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("device_type", ENUM, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("manufacturer", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("firmware_version", sa.String(length=128), nullable=True),
        sa.Column("imei", sa.String(length=20), nullable=True),
        sa.Column("imsi", sa.String(length=20), nullable=True),
        sa.Column("iccid", sa.String(length=22), nullable=True),
        sa.Column("connection_settings", JSON, nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "cards",
        sa.Column("iccid", sa.String(length=22), nullable=False),
        sa.Column("imsi", sa.String(length=20), nullable=True),
        sa.Column("card_type", ENUM, nullable=True),
        sa.Column("atr", sa.String(length=100), nullable=True),
        sa.Column("psk_identity", sa.String(length=128), nullable=True),
        sa.Column("psk_key_encrypted", sa.String(length=512), nullable=True),
        sa.Column("admin_url", sa.String(length=512), nullable=True),
        sa.Column("trigger_config", JSON, nullable=True),
        sa.Column("bip_config", JSON, nullable=True),
        sa.Column("security_domains", JSON, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("iccid", name=op.f("pk_cards")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("card_iccid", sa.String(length=22), nullable=True),
        sa.Column("session_type", sa.String(length=64), nullable=True),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("cipher_suite", sa.String(length=128), nullable=True),
        sa.Column("psk_identity", sa.String(length=128), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_sessions_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["card_iccid"], ["cards.iccid"], name=op.f("fk_sessions_card_iccid_cards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "tests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("suite_name", sa.String(length=255), nullable=False),
        sa.Column("test_name", sa.String(length=255), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("card_iccid", sa.String(length=22), nullable=True),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("assertions", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_tests_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["card_iccid"],
            ["cards.iccid"],
            name=op.f("fk_tests_card_iccid_cards"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tests")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_table(
        "logs",
        sa.Column("id", LOG_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("direction", ENUM, nullable=False),
        sa.Column("raw_data", sa.Text(), nullable=True),
        sa.Column("decoded_data", sa.Text(), nullable=True),
        sa.Column("status_word", sa.String(length=4), nullable=True),
        sa.Column("status_message", sa.String(length=255), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_logs_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    for table, indexes in INDEXES.items():
        for columns in indexes:
            op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, columns)


def downgrade() -> None:
    """Drop the six tables, children first (their indexes go with them)."""
    for table in ("logs", "tests", "sessions", "settings", "cards", "devices"):
        op.drop_table(table)
