"""twilio credentials and twilio-api messages

Revision ID: vas_0003
Revises: vas_0002
Create Date: 2026-11-22 02:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import nexus.kernel.db

revision: str = "vas_0003"
down_revision: str | None = "vas_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vas_twilio_credentials",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("friendly_name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sid", name="uq_vas_twilio_credentials_sid"),
    )
    with op.batch_alter_table("vas_twilio_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vas_twilio_credentials_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_vas_twilio_credentials_account_sid"), ["account_sid"], unique=False
        )

    op.create_table(
        "vas_twilio_messages",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("messaging_service_sid", sa.String(length=34), nullable=True),
        sa.Column("status_callback", sa.String(length=2000), nullable=True),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    with op.batch_alter_table("vas_twilio_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vas_twilio_messages_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_table("vas_twilio_messages")
    op.drop_table("vas_twilio_credentials")
