"""test_runs table; tests.attempt and tests.session_id.

Revision ID: d4e7a1c9b305
Revises: e14a7c2b90d6
Create Date: 2026-12-06 20:05:00

A run becomes a record (span, environment, totals) instead of a string on each
result; every run_id already stored gets its run row, spanning its results. A
result gains ``attempt`` (existing rows: 1) and ``session_id``, the OTA session it
drove (set to NULL when the session is deleted). Downgrading drops the runs and
both columns (retries then read as separate results). Plain SQLAlchemy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

# revision identifiers, used by Alembic.
revision: str = "d4e7a1c9b305"
down_revision: str | Sequence[str] | None = "e14a7c2b90d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
MILLISECONDS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TOTALS = ("total", "passed", "failed", "skipped", "error")
FK_SESSION = "fk_tests_session_id_sessions"
NEW_INDEXES = {
    "ix_tests_session_id": ["session_id"],
    "ix_tests_suite_name_test_name": ["suite_name", "test_name"],
}


def _tests(*, linked: bool) -> sa.Table:
    """The tests table before (``linked=False``) or after this revision, in plain types;
    SQLite's offline (``--sql``) copy starts from it."""
    table = sa.Table(
        "tests",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("suite_name", sa.String(length=255), nullable=False),
        sa.Column("test_name", sa.String(length=255), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.Column("card_iccid", sa.String(length=22), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("assertions", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_tests_device_id_devices", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["card_iccid"], ["cards.iccid"], name="fk_tests_card_iccid_cards", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tests"),
    )
    old_indexes = (["run_id"], ["suite_name", "started_at"], ["status"], ["device_id"])
    for columns in (*old_indexes, ["card_iccid"], ["created_at"]):
        sa.Index(f"ix_tests_{'_'.join(columns)}", *(table.c[name] for name in columns))
    if linked:
        table.append_column(sa.Column("attempt", sa.Integer(), nullable=False))
        table.append_column(sa.Column("session_id", sa.Uuid(), nullable=True))
        table.append_constraint(
            sa.ForeignKeyConstraint(
                ["session_id"], ["sessions.id"], name=FK_SESSION, ondelete="SET NULL"
            )
        )
        for name, columns in NEW_INDEXES.items():
            sa.Index(name, *(table.c[column] for column in columns))
    return table


def _batch_options(*, linked_before: bool) -> dict[str, Any]:
    """SQLite copies the table (foreign keys are off on the migration connection)."""
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return {"recreate": "auto"}
    if not context.as_sql:
        return {"recreate": "always"}
    return {"recreate": "always", "copy_from": _tests(linked=linked_before)}


def upgrade() -> None:
    """Create test_runs with a row per stored run; add attempt and session_id to tests."""
    runs = op.create_table(
        "test_runs",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("environment", JSON, nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=True) for name in TOTALS),
        sa.Column("duration_ms", MILLISECONDS, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_test_runs")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index(op.f("ix_test_runs_started_at"), "test_runs", ["started_at"], unique=False)
    tests = _tests(linked=False)
    assert runs is not None

    def tally(status: str) -> Any:
        return sa.func.sum(sa.case((tests.c.status == status, 1), else_=0))

    existing = sa.select(
        tests.c.run_id,
        sa.func.min(tests.c.started_at),
        sa.func.max(tests.c.ended_at),
        sa.func.count(),
        tally("passed"),
        tally("failed"),
        tally("skipped"),
        tally("error"),
        sa.func.coalesce(sa.func.sum(tests.c.duration_ms), 0),
        sa.func.min(tests.c.created_at),
        sa.func.max(tests.c.updated_at),
    ).group_by(tests.c.run_id)
    columns = ["run_id", "started_at", "ended_at", *TOTALS, "duration_ms"]
    op.execute(runs.insert().from_select([*columns, "created_at", "updated_at"], existing))
    with op.batch_alter_table("tests", **_batch_options(linked_before=False)) as batch_op:
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("session_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            FK_SESSION, "sessions", ["session_id"], ["id"], ondelete="SET NULL"
        )
        for name, index_columns in NEW_INDEXES.items():
            batch_op.create_index(name, index_columns, unique=False)
    with op.batch_alter_table("tests", **_batch_options(linked_before=True)) as batch_op:
        batch_op.alter_column(
            "attempt", existing_type=sa.Integer(), existing_nullable=False, server_default=None
        )


def downgrade() -> None:
    """Drop test_runs and the two columns (attempt numbers and session links are lost)."""
    with op.batch_alter_table("tests", **_batch_options(linked_before=True)) as batch_op:
        batch_op.drop_constraint(FK_SESSION, type_="foreignkey")  # MySQL: before its index
        for name in NEW_INDEXES:
            batch_op.drop_index(name)
        batch_op.drop_column("session_id")
        batch_op.drop_column("attempt")
    op.drop_index(op.f("ix_test_runs_started_at"), table_name="test_runs")
    op.drop_table("test_runs")
