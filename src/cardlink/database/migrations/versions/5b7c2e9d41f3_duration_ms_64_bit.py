"""sessions.duration_ms becomes 64-bit.

Revision ID: 5b7c2e9d41f3
Revises: c81e5a14d2
Create Date: 2026-12-06 19:20:00

A 32-bit duration overflows after 24.8 days, so a session started longer ago could
not be completed, failed or timed out. SQLite's INTEGER is already 64-bit: nothing
to change there. Downgrading refuses durations that no longer fit 32 bits (the
database raises), so no value is silently changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5b7c2e9d41f3"
down_revision: str | Sequence[str] | None = "c81e5a14d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _alter(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("sessions", "duration_ms", existing_type=old, type_=new, existing_nullable=True)


def upgrade() -> None:
    _alter(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _alter(sa.BigInteger(), sa.Integer())
