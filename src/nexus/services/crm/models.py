"""CRM tables (prefix `crm_`). Every row belongs to an org.

Contacts, companies and deals carry `owner_id` (an IDaaS user id, no foreign key across
services) for the owner-based permission rules, and `custom` (the values of the org's
custom fields, validated on write). Activities hang off a contact, a company and/or a
deal; the three timelines are queries over them. `crm_search_docs` is the search index
(see search.py); `crm_addresses` holds every contact's normalized e-mails and phones,
for duplicate detection, imports and matching inbound messages.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.csv_import import CsvImportErrorMixin, CsvImportMixin
from nexus.kernel.db import IdMixin, JSONType, OrgScoped, TimestampMixin, UTCDateTime, utcnow

Money = Numeric(18, 2)


class Base(DeclarativeBase):
    pass


class Company(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_companies"
    name: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(253))  # normalized: lower, no www.
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)  # employees
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    custom: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    merged_into_id: Mapped[str | None] = mapped_column(String(36))  # set on the merged-away one

    __table_args__ = (UniqueConstraint("org_id", "domain", name="uq_crm_companies_domain"),)


class Contact(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_contacts"
    first_name: Mapped[str | None] = mapped_column(String(150))
    last_name: Mapped[str | None] = mapped_column(String(150))
    emails: Mapped[list[str]] = mapped_column(JSONType, default=list)
    phones: Mapped[list[str]] = mapped_column(JSONType, default=list)  # E.164
    company_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="lead")
    lead_source: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    custom: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    consent: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    merged_into_id: Mapped[str | None] = mapped_column(String(36))  # set on the merged-away one

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or (
            self.emails[0] if self.emails else (self.phones[0] if self.phones else "")
        )


class Address(Base, IdMixin, OrgScoped):
    """One normalized e-mail or phone of a contact (kept in step with Contact.emails/phones)."""

    __tablename__ = "crm_addresses"
    contact_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # email | phone
    value: Mapped[str] = mapped_column(String(320))

    __table_args__ = (
        Index("ix_crm_addresses_lookup", "org_id", "kind", "value"),
        UniqueConstraint("contact_id", "kind", "value", name="uq_crm_addresses_contact"),
    )


class Pipeline(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_pipelines"
    name: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_crm_pipelines_name"),)


class Stage(Base, IdMixin, OrgScoped):
    __tablename__ = "crm_stages"
    pipeline_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)  # 0..1, the default for deals in it


class Deal(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_deals"
    name: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    pipeline_id: Mapped[str] = mapped_column(String(36))
    stage_id: Mapped[str] = mapped_column(String(36))
    probability_override: Mapped[float | None] = mapped_column(Float)
    expected_close: Mapped[dt.date | None] = mapped_column(Date)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    company_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | won | lost
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    custom: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_crm_deals_board", "org_id", "pipeline_id", "status", "stage_id", "id"),
    )


class DealContact(Base, OrgScoped):
    """Which contacts a deal involves."""

    __tablename__ = "crm_deal_contacts"
    deal_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


class StageChange(Base, IdMixin, OrgScoped):
    """One move of a deal: stage and/or status, by whom, when."""

    __tablename__ = "crm_stage_history"
    deal_id: Mapped[str] = mapped_column(String(36), index=True)
    from_stage_id: Mapped[str | None] = mapped_column(String(36))
    to_stage_id: Mapped[str] = mapped_column(String(36))
    from_status: Mapped[str | None] = mapped_column(String(8))
    to_status: Mapped[str] = mapped_column(String(8))
    changed_by: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Activity(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_activities"
    kind: Mapped[str] = mapped_column(String(12))  # call|meeting|email|message|note|task
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    contact_id: Mapped[str | None] = mapped_column(String(36), index=True)
    company_id: Mapped[str | None] = mapped_column(String(36), index=True)
    deal_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(36))  # author; None for inbound
    assignee_id: Mapped[str | None] = mapped_column(String(36))  # tasks
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    direction: Mapped[str | None] = mapped_column(String(8))  # messages: inbound|outbound
    channel: Mapped[str | None] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(64))  # the VAS message id
    status: Mapped[str | None] = mapped_column(String(16))  # messages: VAS status
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        UniqueConstraint("org_id", "contact_id", "external_id", name="uq_crm_activities_ext"),
    )


class CustomField(Base, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "crm_custom_fields"
    object_type: Mapped[str] = mapped_column(String(12))  # contact|company|deal
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))  # text|number|date|select|multi_select|boolean
    options: Mapped[list[str]] = mapped_column(JSONType, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("org_id", "object_type", "key", name="uq_crm_custom_fields_key"),
    )


class ScoringModel(Base, IdMixin, OrgScoped):
    """The org's current lead-scoring model: a fitted logistic regression as plain numbers
    (no pickle), or the rule-based fallback, with how both did on held-out deals."""

    __tablename__ = "crm_scoring_models"
    kind: Mapped[str] = mapped_column(String(8))  # ml | rules
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    auc_ml: Mapped[float | None] = mapped_column(Float)
    auc_rules: Mapped[float | None] = mapped_column(Float)
    trained_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (UniqueConstraint("org_id", name="uq_crm_scoring_models_org"),)


class SearchDoc(Base, OrgScoped):
    """What search sees of a contact, company or deal. On PostgreSQL the migration adds a
    generated tsvector and trigram index over `text`; on SQLite an FTS5 table mirrors it."""

    __tablename__ = "crm_search_docs"
    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(12))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(300))
    subtitle: Mapped[str | None] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)  # lower-cased names, e-mails, phones, domain
    sounds: Mapped[str] = mapped_column(Text, default="")  # phonetic codes of the name words


class Import(Base, IdMixin, OrgScoped, CsvImportMixin):
    """A CSV import of contacts, companies or deals (options: object, actor, fields)."""

    __tablename__ = "crm_imports"


class ImportRowError(Base, IdMixin, OrgScoped, CsvImportErrorMixin):
    __tablename__ = "crm_import_errors"


class IdempotencyKey(Base, IdMixin, OrgScoped):
    """An `Idempotency-Key` a create request came with, and the record it created."""

    __tablename__ = "crm_idempotency_keys"
    kind: Mapped[str] = mapped_column(String(12))
    key: Mapped[str] = mapped_column(String(200))
    object_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("org_id", "kind", "key", name="uq_crm_idempotency_key"),)
