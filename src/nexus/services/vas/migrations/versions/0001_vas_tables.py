"""vas tables

Revision ID: vas_0001
Revises:
Create Date: 2026-11-22 00:21:59.763312
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import nexus.kernel.db

revision: str = "vas_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vas_consents",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("keyword", sa.String(length=32), nullable=True),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "channel", "address", name="uq_vas_consents_address"),
    )
    with op.batch_alter_table("vas_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vas_consents_org_id"), ["org_id"], unique=False)

    op.create_table(
        "vas_message_events",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vas_message_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vas_message_events_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_vas_message_events_org_id"), ["org_id"], unique=False)

    op.create_table(
        "vas_messages",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=True),
        sa.Column("provider_type", sa.String(length=32), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("encoding", sa.String(length=8), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("estimated_cost", sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column("cost", sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("send_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_vas_messages_idempotency"),
    )
    with op.batch_alter_table("vas_messages", schema=None) as batch_op:
        batch_op.create_index("ix_vas_messages_org_created", ["org_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vas_messages_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            "ix_vas_messages_provider_ref", ["provider_type", "provider_message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_vas_messages_status"), ["status"], unique=False)

    op.create_table(
        "vas_providers",
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credentials_sealed", sa.Text(), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("sender", sa.String(length=100), nullable=True),
        sa.Column(
            "countries",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("cost_per_unit", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate_limit_per_s", sa.Numeric(precision=10, scale=3), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_token", sa.String(length=64), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_vas_providers_org_name"),
        sa.UniqueConstraint("webhook_token"),
    )
    with op.batch_alter_table("vas_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vas_providers_org_id"), ["org_id"], unique=False)

    op.create_table(
        "vas_webhook_deliveries",
        sa.Column("webhook_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vas_webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vas_webhook_deliveries_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_vas_webhook_deliveries_webhook_id"), ["webhook_id"], unique=False
        )

    op.create_table(
        "vas_webhooks",
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column(
            "events",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vas_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vas_webhooks_org_id"), ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vas_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_webhooks_org_id"))

    op.drop_table("vas_webhooks")
    with op.batch_alter_table("vas_webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_webhook_deliveries_webhook_id"))
        batch_op.drop_index(batch_op.f("ix_vas_webhook_deliveries_org_id"))

    op.drop_table("vas_webhook_deliveries")
    with op.batch_alter_table("vas_providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_providers_org_id"))

    op.drop_table("vas_providers")
    with op.batch_alter_table("vas_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_messages_status"))
        batch_op.drop_index("ix_vas_messages_provider_ref")
        batch_op.drop_index(batch_op.f("ix_vas_messages_org_id"))
        batch_op.drop_index("ix_vas_messages_org_created")

    op.drop_table("vas_messages")
    with op.batch_alter_table("vas_message_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_message_events_org_id"))
        batch_op.drop_index(batch_op.f("ix_vas_message_events_message_id"))

    op.drop_table("vas_message_events")
    with op.batch_alter_table("vas_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vas_consents_org_id"))

    op.drop_table("vas_consents")
