"""kernel tables: outbox, inbox, jobs

Revision ID: kernel_0001
Revises:
Create Date: 2026-11-21 23:57:42.380946
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import nexus.kernel.db

revision: str = "kernel_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nexus_inbox",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("handled_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
    )
    op.create_table(
        "nexus_jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nexus_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_nexus_jobs_claim", ["queue", "status", "run_at"], unique=False)

    op.create_table(
        "nexus_outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("time", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("run_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("nexus_outbox")
    with op.batch_alter_table("nexus_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_nexus_jobs_claim")

    op.drop_table("nexus_jobs")
    op.drop_table("nexus_inbox")
