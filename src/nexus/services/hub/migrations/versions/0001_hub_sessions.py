"""hub sessions

Revision ID: hub_0001
Revises:
Create Date: 2026-11-22 03:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import nexus.kernel.db

revision: str = "hub_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("mfa_enabled", sa.Boolean(), nullable=False),
        sa.Column("access_sealed", sa.Text(), nullable=False),
        sa.Column("refresh_sealed", sa.Text(), nullable=True),
        sa.Column("access_expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hub_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_sessions_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hub_sessions_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("hub_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_hub_sessions_org_id"))
    op.drop_table("hub_sessions")
