"""tests: one index of a run's outcomes replaces the index on run_id alone (reports).

Revision ID: 7f3a9c1d2e4b
Revises: f3a9c6d2e871
Create Date: 2026-12-06 22:20:00

The history, flaky and trend queries of the run report group a window of runs by
test; the index on (run_id, suite_name, test_name, attempt, status, duration_ms)
holds everything they read, in the order they group it. It starts with run_id, so it
also serves every look-up the index on run_id alone served: that one goes. No data
changes; downgrading puts the run_id index back.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "7f3a9c1d2e4b"
down_revision: str | Sequence[str] | None = "f3a9c6d2e871"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = "ix_tests_run_id_outcomes"
OUTCOME_COLUMNS = ["run_id", "suite_name", "test_name", "attempt", "status", "duration_ms"]


def upgrade() -> None:
    op.create_index(OUTCOMES, "tests", OUTCOME_COLUMNS)
    op.drop_index("ix_tests_run_id", table_name="tests")


def downgrade() -> None:
    op.create_index("ix_tests_run_id", "tests", ["run_id"])
    op.drop_index(OUTCOMES, table_name="tests")
