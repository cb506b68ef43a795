"""idaas tables

Revision ID: idaas_0001
Revises:
Create Date: 2026-11-22 00:14:26.708307
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import nexus.kernel.db

revision: str = "idaas_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idaas_audit_events",
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("actor_type", sa.String(length=16), nullable=True),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("idaas_audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idaas_audit_events_actor_id"), ["actor_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_idaas_audit_events_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_idaas_audit_events_type"), ["type"], unique=False)
        batch_op.create_index("ix_idaas_audit_org_time", ["org_id", "created_at"], unique=False)

    op.create_table(
        "idaas_authorization_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(length=255), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("issued_session_id", sa.String(length=36), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("idaas_authorization_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idaas_authorization_codes_org_id"), ["org_id"], unique=False
        )

    op.create_table(
        "idaas_groups",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_idaas_groups_org_name"),
    )
    with op.batch_alter_table("idaas_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_groups_org_id"), ["org_id"], unique=False)

    op.create_table(
        "idaas_login_throttle",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "idaas_oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "redirect_uris",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "grant_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("service_user_id", sa.String(length=36), nullable=True),
        sa.Column("require_consent", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    with op.batch_alter_table("idaas_oauth_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_oauth_clients_org_id"), ["org_id"], unique=False)

    op.create_table(
        "idaas_orgs",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("default_region", sa.String(length=2), nullable=True),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["idaas_orgs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    with op.batch_alter_table("idaas_orgs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_orgs_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "idaas_roles",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "name", name="uq_idaas_roles_org_name"),
    )
    with op.batch_alter_table("idaas_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_roles_org_id"), ["org_id"], unique=False)

    op.create_table(
        "idaas_signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("private_sealed", sa.Text(), nullable=False),
        sa.Column(
            "public_jwk",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("publish_until", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "idaas_users",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("last_login_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "email", name="uq_idaas_users_org_email"),
    )
    with op.batch_alter_table("idaas_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_users_org_id"), ["org_id"], unique=False)

    op.create_table(
        "idaas_api_keys",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    with op.batch_alter_table("idaas_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_api_keys_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_idaas_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "idaas_group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("added_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["idaas_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    with op.batch_alter_table("idaas_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_group_members_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_idaas_group_members_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "idaas_mfa_challenges",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("idaas_mfa_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idaas_mfa_challenges_org_id"), ["org_id"], unique=False
        )

    op.create_table(
        "idaas_mfa_factors",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("confirmed_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("idaas_mfa_factors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_mfa_factors_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_idaas_mfa_factors_user_id"), ["user_id"], unique=False)

    op.create_table(
        "idaas_recovery_codes",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("idaas_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idaas_recovery_codes_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_idaas_recovery_codes_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "idaas_role_bindings",
        sa.Column("role_id", sa.String(length=36), nullable=False),
        sa.Column("subject_type", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("resource", sa.String(length=200), nullable=True),
        sa.Column(
            "conditions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["idaas_roles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("idaas_role_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_role_bindings_org_id"), ["org_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_idaas_role_bindings_role_id"), ["role_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_idaas_role_bindings_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "idaas_sessions",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("revoked_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=64), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["idaas_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("idaas_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idaas_sessions_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_idaas_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "idaas_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", nexus.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["idaas_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("idaas_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idaas_refresh_tokens_org_id"), ["org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_idaas_refresh_tokens_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("idaas_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_refresh_tokens_session_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_refresh_tokens_org_id"))

    op.drop_table("idaas_refresh_tokens")
    with op.batch_alter_table("idaas_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_sessions_org_id"))

    op.drop_table("idaas_sessions")
    with op.batch_alter_table("idaas_role_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_role_bindings_subject_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_role_bindings_role_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_role_bindings_org_id"))

    op.drop_table("idaas_role_bindings")
    with op.batch_alter_table("idaas_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_recovery_codes_user_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_recovery_codes_org_id"))

    op.drop_table("idaas_recovery_codes")
    with op.batch_alter_table("idaas_mfa_factors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_mfa_factors_user_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_mfa_factors_org_id"))

    op.drop_table("idaas_mfa_factors")
    with op.batch_alter_table("idaas_mfa_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_mfa_challenges_org_id"))

    op.drop_table("idaas_mfa_challenges")
    with op.batch_alter_table("idaas_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_group_members_user_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_group_members_org_id"))

    op.drop_table("idaas_group_members")
    with op.batch_alter_table("idaas_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_api_keys_user_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_api_keys_org_id"))

    op.drop_table("idaas_api_keys")
    with op.batch_alter_table("idaas_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_users_org_id"))

    op.drop_table("idaas_users")
    op.drop_table("idaas_signing_keys")
    with op.batch_alter_table("idaas_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_roles_org_id"))

    op.drop_table("idaas_roles")
    with op.batch_alter_table("idaas_orgs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_orgs_parent_id"))

    op.drop_table("idaas_orgs")
    with op.batch_alter_table("idaas_oauth_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_oauth_clients_org_id"))

    op.drop_table("idaas_oauth_clients")
    op.drop_table("idaas_login_throttle")
    with op.batch_alter_table("idaas_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_groups_org_id"))

    op.drop_table("idaas_groups")
    with op.batch_alter_table("idaas_authorization_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idaas_authorization_codes_org_id"))

    op.drop_table("idaas_authorization_codes")
    with op.batch_alter_table("idaas_audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_idaas_audit_org_time")
        batch_op.drop_index(batch_op.f("ix_idaas_audit_events_type"))
        batch_op.drop_index(batch_op.f("ix_idaas_audit_events_org_id"))
        batch_op.drop_index(batch_op.f("ix_idaas_audit_events_actor_id"))

    op.drop_table("idaas_audit_events")
