"""IDaaS tables. Every table is prefixed `idaas_`; business rows carry `org_id`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.db import IdMixin, JSONType, OrgScoped, TimestampMixin, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class Org(Base, IdMixin, TimestampMixin):
    """A tenant. Not OrgScoped itself: its id is the org_id of everything it owns."""

    __tablename__ = "idaas_orgs"
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("idaas_orgs.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    default_region: Mapped[str | None] = mapped_column(String(2))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class User(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "idaas_users"
    email: Mapped[str] = mapped_column(String(320))  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16), default="user")  # user | service_account
    status: Mapped[str] = mapped_column(String(16), default="active")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("org_id", "email", name="uq_idaas_users_org_email"),)


class Group(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "idaas_groups"
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_idaas_groups_org_name"),)


class GroupMember(Base, OrgScoped):
    __tablename__ = "idaas_group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "idaas_roles"
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_idaas_roles_org_name"),)


class RoleBinding(Base, IdMixin, OrgScoped):
    """Grants a role to a user or a group, optionally only on one resource or under conditions."""

    __tablename__ = "idaas_role_bindings"
    role_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_roles.id", ondelete="CASCADE"), index=True
    )
    subject_type: Mapped[str] = mapped_column(String(8))  # user | group
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    resource: Mapped[str | None] = mapped_column(String(200))
    conditions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36))


class Session(Base, IdMixin, OrgScoped):
    """A login: the refresh tokens of one family hang off it."""

    __tablename__ = "idaas_sessions"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_users.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))


class RefreshToken(Base, IdMixin, OrgScoped):
    __tablename__ = "idaas_refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MfaFactor(Base, IdMixin, OrgScoped):
    __tablename__ = "idaas_mfa_factors"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="totp")
    secret_sealed: Mapped[str] = mapped_column(Text)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_step: Mapped[int] = mapped_column(Integer, default=0)  # refuses a replayed TOTP code
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryCode(Base, IdMixin, OrgScoped):
    __tablename__ = "idaas_recovery_codes"
    user_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MfaChallenge(Base, IdMixin, OrgScoped):
    """The `mfa_token` of a login waiting for its second factor."""

    __tablename__ = "idaas_mfa_challenges"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("idaas_users.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class ApiKey(Base, IdMixin, OrgScoped):
    __tablename__ = "idaas_api_keys"
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # shown in lists: nxk_ab12cd34
    secret_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(
        ForeignKey("idaas_users.id", ondelete="CASCADE"), index=True
    )
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SigningKey(Base):
    """A token signing key. Retired keys stay published until their tokens expire."""

    __tablename__ = "idaas_signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16), default="ES256")
    private_sealed: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    publish_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LoginThrottle(Base):
    """Failed logins per account and per address: backoff, then a temporary lock."""

    __tablename__ = "idaas_login_throttle"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base, IdMixin, OrgScoped):
    """Append-only: the API can list these, never change them."""

    __tablename__ = "idaas_audit_events"
    type: Mapped[str] = mapped_column(String(100), index=True)
    result: Mapped[str] = mapped_column(String(16), default="success")
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_type: Mapped[str | None] = mapped_column(String(16))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_idaas_audit_org_time", "org_id", "created_at"),)


class OAuthClient(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "idaas_oauth_clients"
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))  # None for public clients
    redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)  # allowed scope values
    service_user_id: Mapped[str | None] = mapped_column(String(36))  # client_credentials acts as
    require_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuthorizationCode(Base, IdMixin, OrgScoped):
    __tablename__ = "idaas_authorization_codes"
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(36))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(36))  # the browser (SSO) session
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The token session the code was exchanged for: replaying the code revokes it.
    issued_session_id: Mapped[str | None] = mapped_column(String(36))
