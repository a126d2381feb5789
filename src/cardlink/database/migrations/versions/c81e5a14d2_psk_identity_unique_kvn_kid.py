"""A PSK identity names at most one card; cards get the PSK key's KVN and KID.

Revision ID: c81e5a14d2
Revises: ae12345678
Create Date: 2026-12-06 19:20:00

The non-unique ``ix_cards_psk_identity`` becomes a unique index of the same name
(NULLs never collide on any backend), and ``psk_key_version`` / ``psk_key_id``
(GlobalPlatform Amendment B, section 3.3.2) are added, each checked to 0..255.

A database in which two cards already share an identity cannot take the unique
index: the upgrade stops before changing anything, naming the identities and
their cards, so the operator decides which card keeps each identity (nothing is
guessed or deleted). Plain SQLAlchemy only, no application imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError

# revision identifiers, used by Alembic.
revision: str = "c81e5a14d2"
down_revision: str | Sequence[str] | None = "ae12345678"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_cards_psk_identity"
KEY_BYTES = ("psk_key_version", "psk_key_id")


def _batch_options(*, key_bytes_before: bool) -> dict[str, Any]:
    """SQLite copies the table (the migration connection has foreign keys off meanwhile).

    Offline (``--sql``) there is no table to reflect, so SQLite's copy starts from the
    table as the previous revision left it.
    """
    context = op.get_context()
    if context.dialect.name != "sqlite":
        return {"recreate": "auto"}
    if not context.as_sql:
        return {"recreate": "always"}
    return {"recreate": "always", "copy_from": _cards(key_bytes=key_bytes_before)}


def _cards(*, key_bytes: bool) -> sa.Table:
    """The cards table before (``key_bytes=False``) or after this revision, in plain types."""
    table = sa.Table(
        "cards",
        sa.MetaData(),
        sa.Column("iccid", sa.String(length=22), nullable=False),
        sa.Column("imsi", sa.String(length=20), nullable=True),
        sa.Column("card_type", sa.String(length=16), nullable=True),
        sa.Column("atr", sa.String(length=100), nullable=True),
        sa.Column("psk_identity", sa.String(length=128), nullable=True),
        sa.Column("psk_key_encrypted", sa.String(length=512), nullable=True),
        sa.Column("admin_url", sa.String(length=512), nullable=True),
        sa.Column("trigger_config", sa.JSON(), nullable=True),
        sa.Column("bip_config", sa.JSON(), nullable=True),
        sa.Column("security_domains", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("iccid", name="pk_cards"),
    )
    sa.Index("ix_cards_card_type", table.c.card_type)
    sa.Index(INDEX, table.c.psk_identity, unique=key_bytes)
    if key_bytes:
        for name in KEY_BYTES:
            table.append_column(sa.Column(name, sa.Integer(), nullable=True))
            table.append_constraint(
                sa.CheckConstraint(f"{name} BETWEEN 0 AND 255", name=f"ck_cards_{name}_range")
            )
    return table


def _refuse_shared_identities() -> None:
    cards = sa.table("cards", sa.column("iccid", sa.String), sa.column("psk_identity", sa.String))
    shared = (
        sa.select(cards.c.psk_identity)
        .where(cards.c.psk_identity.is_not(None))
        .group_by(cards.c.psk_identity)
        .having(sa.func.count() > 1)
    )
    bind = op.get_bind()
    identities = bind.execute(shared.limit(5)).scalars().all()
    if not identities:
        return
    clashes = []
    for identity in identities:
        owners = bind.execute(
            sa.select(cards.c.iccid).where(cards.c.psk_identity == identity).order_by(cards.c.iccid)
        ).scalars()
        clashes.append(f"{identity!r} ({', '.join(owners)})")
    total = bind.execute(sa.select(sa.func.count()).select_from(shared.subquery())).scalar_one()
    raise CommandError(
        f"{total} PSK identit{'y is' if total == 1 else 'ies are'} shared by several cards: "
        f"{'; '.join(clashes)}{' ...' if total > len(clashes) else ''}; nothing was changed "
        "(give each card its own identity, or clear it, then migrate again)"
    )


def upgrade() -> None:
    """Unique PSK identity, plus the KVN and KID columns."""
    if not op.get_context().as_sql:
        _refuse_shared_identities()
    with op.batch_alter_table("cards", **_batch_options(key_bytes_before=False)) as batch_op:
        for name in KEY_BYTES:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
            batch_op.create_check_constraint(
                op.f(f"ck_cards_{name}_range"), f"{name} BETWEEN 0 AND 255"
            )
        batch_op.drop_index(INDEX)
        batch_op.create_index(INDEX, ["psk_identity"], unique=True)


def downgrade() -> None:
    """Back to a plain PSK identity index, without KVN and KID (their values are lost)."""
    with op.batch_alter_table("cards", **_batch_options(key_bytes_before=True)) as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.create_index(INDEX, ["psk_identity"], unique=False)
        for name in reversed(KEY_BYTES):
            batch_op.drop_constraint(op.f(f"ck_cards_{name}_range"), type_="check")
            batch_op.drop_column(name)
