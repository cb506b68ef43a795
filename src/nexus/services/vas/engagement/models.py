"""Engagement tables (prefix `vas_`): contacts, their addresses and tags, imports,
templates, campaigns and their recipients. Opt-out state is not here: it is the core's
`vas_consents`, keyed by (org, channel, address), which inbound STOP/START also writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nexus.kernel.csv_import import CsvImportErrorMixin, CsvImportMixin
from nexus.kernel.db import IdMixin, JSONType, OrgScoped, TimestampMixin, UTCDateTime
from nexus.services.vas.models import Base, Money


class Contact(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "vas_contacts"
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_vas_contacts_org_id_id", "org_id", "id"),)


class ContactAddress(Base, IdMixin, OrgScoped):
    """One normalized address of a contact on one channel (one per channel)."""

    __tablename__ = "vas_contact_addresses"
    contact_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(320))

    __table_args__ = (
        UniqueConstraint("org_id", "channel", "address", name="uq_vas_contact_addresses"),
        UniqueConstraint("contact_id", "channel", name="uq_vas_contact_addresses_channel"),
    )


class ContactTag(Base, OrgScoped):
    __tablename__ = "vas_contact_tags"
    contact_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)

    __table_args__ = (Index("ix_vas_contact_tags_org_tag", "org_id", "tag", "contact_id"),)


class ContactImport(Base, IdMixin, OrgScoped, CsvImportMixin):
    __tablename__ = "vas_contact_imports"


class ContactImportError(Base, IdMixin, OrgScoped, CsvImportErrorMixin):
    __tablename__ = "vas_contact_import_errors"


class Template(Base, IdMixin, OrgScoped, TimestampMixin):
    """A message template for one channel: a sandboxed Jinja2 body with typed variables."""

    __tablename__ = "vas_templates"
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)  # e-mail
    body: Mapped[str] = mapped_column(Text, default="")
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # WhatsApp/Messenger provider template: {name, language, parameters: [variable names]}
    provider_template: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_vas_templates_org_name"),)


class Campaign(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "vas_campaigns"
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    # draft | scheduled | running | paused | completed | canceled
    status: Mapped[str] = mapped_column(String(12), default="draft")
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sender: Mapped[str | None] = mapped_column(String(100))
    throttle_per_s: Mapped[float] = mapped_column(Float, default=10.0)
    schedule_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str | None] = mapped_column(String(64))
    winner_metric: Mapped[str] = mapped_column(String(16), default="delivery_rate")
    # progress: the audience is walked in contact id order; `cursor` is the last one done
    cursor: Mapped[str | None] = mapped_column(String(36))
    runs: Mapped[int] = mapped_column(Integer, default=0)  # start/resume count (job ids)
    audience_total: Mapped[int | None] = mapped_column(Integer)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    excluded_opted_out: Mapped[int] = mapped_column(Integer, default=0)
    skipped_no_address: Mapped[int] = mapped_column(Integer, default=0)
    render_failed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    send_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # of this run
    sent_in_run: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class CampaignListEntry(Base, OrgScoped):
    """A contact of a campaign's uploaded audience list."""

    __tablename__ = "vas_campaign_list"
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class CampaignRecipient(Base, OrgScoped):
    """One contact of a campaign and the message it got (unique: nobody gets two)."""

    __tablename__ = "vas_campaign_recipients"
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    variant: Mapped[str] = mapped_column(String(50))
    message_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_vas_campaign_recipients_message", "message_id"),)


class MessageStats(Base):
    """Messages of one settled hour (by `created_at`), counted by channel, direction,
    provider, status and currency: what analytics read instead of scanning messages."""

    __tablename__ = "vas_message_stats"
    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # "" if none
    provider_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)  # "" if none
    messages: Mapped[int] = mapped_column(Integer)
    segments: Mapped[int] = mapped_column(Integer)
    cost: Mapped[Decimal] = mapped_column(Money)  # actual where known, else the estimate
    estimated_cost: Mapped[Decimal] = mapped_column(Money)


class LatencyStats(Base):
    """Latencies of one settled hour's messages in log-spaced bins, for percentiles."""

    __tablename__ = "vas_latency_stats"
    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # sent | done
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer)


class StatsState(Base):
    """Where the rollup is: hours before `settled_until` are in the stats tables."""

    __tablename__ = "vas_stats_state"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    settled_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # late changes since
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
