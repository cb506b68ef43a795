"""VAS tables (prefix `vas_`). Every row belongs to an org."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.db import IdMixin, JSONType, OrgScoped, TimestampMixin, UTCDateTime, utcnow

Money = Numeric(14, 6)


class Base(DeclarativeBase):
    pass


class ProviderAccount(Base, IdMixin, OrgScoped, TimestampMixin):
    """An org's account at a messaging provider (credentials sealed, never returned)."""

    __tablename__ = "vas_providers"
    type: Mapped[str] = mapped_column(String(32))  # twilio, infobip, sandbox, ...
    channel: Mapped[str] = mapped_column(String(16))  # sms, whatsapp, telegram, messenger, email
    name: Mapped[str] = mapped_column(String(200))
    credentials_sealed: Mapped[str] = mapped_column(Text)
    base_url: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str | None] = mapped_column(String(100))  # from number / sender id / address
    countries: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: everywhere
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower first when scores tie
    cost_per_unit: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    rate_limit_per_s: Mapped[float | None] = mapped_column(Numeric(10, 3))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    webhook_token: Mapped[str] = mapped_column(String(64), unique=True)  # in callback URLs
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_vas_providers_org_name"),)


class Message(Base, IdMixin, OrgScoped):
    __tablename__ = "vas_messages"
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8), default="outbound")  # outbound | inbound
    to: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str | None] = mapped_column(String(320))
    body: Mapped[str | None] = mapped_column(Text)
    content: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict
    )  # template, media, location
    status: Mapped[str] = mapped_column(String(16), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(36))
    provider_type: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer, default=1)
    estimated_cost: Mapped[Decimal | None] = mapped_column(Money)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    send_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key", name="uq_vas_messages_idempotency"),
        Index("ix_vas_messages_org_created", "org_id", "id"),
        Index("ix_vas_messages_provider_ref", "provider_type", "provider_message_id"),
        # engagement (vas_0004): hourly analytics rollups, replies to campaign messages
        Index("ix_vas_messages_created_at", "created_at"),
        Index("ix_vas_messages_org_sender", "org_id", "sender"),
        Index("ix_vas_messages_updated_at", "updated_at"),  # late changes to roll up again
    )


class MessageEvent(Base, IdMixin, OrgScoped):
    """One step of a message's history: a status change, a routing decision, an attempt."""

    __tablename__ = "vas_message_events"
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="status")  # status | routing | attempt
    provider_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base, IdMixin, OrgScoped):
    """Opt-out state of one address on one channel."""

    __tablename__ = "vas_consents"
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(32), default="keyword")  # keyword | api | import
    keyword: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "channel", "address", name="uq_vas_consents_address"),
    )


class Webhook(Base, IdMixin, OrgScoped, TimestampMixin):
    """An org's URL for message events, signed with its secret."""

    __tablename__ = "vas_webhooks"
    url: Mapped[str] = mapped_column(String(2000))
    secret_sealed: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)  # event types; empty: all
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(500), default="")


class WebhookDelivery(Base, IdMixin, OrgScoped):
    __tablename__ = "vas_webhook_deliveries"
    webhook_id: Mapped[str] = mapped_column(String(36), index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # first 2 KB
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Numeric(10, 2))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrgSettings(Base):
    """Per-org messaging settings: default region for national numbers, opt-out keywords."""

    __tablename__ = "vas_org_settings"
    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    default_region: Mapped[str | None] = mapped_column(String(2))
    stop_keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    start_keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
