"""org settings

Revision ID: vas_0002
Revises: vas_0001
Create Date: 2026-11-22 00:48:21.590784
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import nexus.kernel.db

revision: str = "vas_0002"
down_revision: str | None = "vas_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vas_org_settings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("default_region", sa.String(length=2), nullable=True),
        sa.Column(
            "stop_keywords",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "start_keywords",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("vas_org_settings")
