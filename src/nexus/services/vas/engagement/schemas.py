"""Request and response bodies of the engagement API (contacts, templates, campaigns)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus.services.vas.schemas import Channel

AddressKey = Literal["phone", "sms", "whatsapp", "telegram", "messenger", "email"]


# -- contacts ----------------------------------------------------------------------------------
class ContactIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "addresses": {"phone": "+447700900123", "email": "ada@example.com"},
                    "tags": ["vip"],
                    "attributes": {"plan": "gold"},
                }
            ]
        },
    )

    name: str | None = Field(None, max_length=200)
    locale: str | None = Field(None, max_length=16)
    timezone: str | None = Field(None, max_length=64, description="IANA zone, e.g. Europe/Paris")
    attributes: dict[str, Any] | None = None
    tags: list[str] | None = Field(None, max_length=50)
    addresses: dict[AddressKey, str | None] = Field(
        default_factory=dict,
        description="One address per channel; `phone` fills sms and whatsapp. "
        "In a PATCH, null removes the channel's address.",
    )
    opted_out: bool | None = Field(None, description="Opt every address out (or back in).")
    region: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="For national numbers.")


class AddressOut(BaseModel):
    channel: str
    address: str
    opted_out: bool
    consent_source: str | None = None
    consent_updated_at: dt.datetime | None = None


class ContactOut(BaseModel):
    id: str
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    tags: list[str]
    addresses: list[AddressOut]
    created_at: dt.datetime
    updated_at: dt.datetime


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opted_out: bool
    channels: list[Channel] | None = Field(None, description="Default: every channel.")


# -- templates ---------------------------------------------------------------------------------
VariableType = Literal["string", "integer", "number", "boolean", "date"]


class VariableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: VariableType = "string"
    required: bool = True
    default: Any = None
    max_length: int | None = Field(None, ge=1, le=10_000)


class ProviderTemplate(BaseModel):
    """The provider-approved template to send (WhatsApp, Messenger): the rendered
    variables named in `parameters` become its body parameters, in order."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field("en", min_length=2, max_length=15)
    parameters: list[str] = Field(default_factory=list, max_length=20)


class TemplateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "welcome",
                    "channel": "sms",
                    "body": "Hi {{ contact.name }}, your code is {{ code }}.",
                    "variables": [{"name": "code", "type": "string"}],
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    subject: str | None = Field(None, max_length=1000)
    body: str = Field("", max_length=20_000)
    variables: list[VariableSpec] = Field(default_factory=list, max_length=50)
    provider_template: ProviderTemplate | None = None


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(None, max_length=1000)
    body: str | None = Field(None, max_length=20_000)
    variables: list[VariableSpec] | None = Field(None, max_length=50)
    provider_template: ProviderTemplate | None = None


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    channel: str
    subject: str | None
    body: str
    variables: list[VariableSpec]
    provider_template: ProviderTemplate | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: dict[str, Any] = Field(default_factory=dict)
    contact_id: str | None = Field(None, description="Render for this contact.")


class PreviewOut(BaseModel):
    ok: bool
    error: str | None = None
    body: str | None = None
    subject: str | None = None
    provider_template: dict[str, Any] | None = None
    characters: int | None = None
    encoding: str | None = None
    segments: int | None = None
    parts: list[str] | None = None
    estimated_cost: Decimal | None = None
    currency: str | None = None


# -- campaigns ---------------------------------------------------------------------------------
class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(default_factory=list, description="Contacts with any of these tags.")
    all_tags: list[str] = Field(default_factory=list, description="... and all of these.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Attribute equal to the value."
    )
    uploaded_list: bool = Field(False, description="Only contacts of the uploaded list.")
    everyone: bool = Field(False, description="No filter: every contact of the org.")


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    template_id: str
    percent: float = Field(gt=0, le=100)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: dt.datetime = Field(description="Local time in `timezone` (or with an offset).")
    timezone: str = Field("UTC", max_length=64)


class CampaignIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring sale",
                    "channel": "sms",
                    "audience": {"tags": ["customers"]},
                    "variants": [
                        {"name": "A", "template_id": "…", "percent": 50},
                        {"name": "B", "template_id": "…", "percent": 50},
                    ],
                    "throttle_per_s": 200,
                    "schedule": {"at": "2026-12-01T09:00:00", "timezone": "Europe/Paris"},
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    audience: Audience
    variants: list[Variant] = Field(min_length=1, max_length=10)
    variables: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = Field(None, alias="from", max_length=100)
    throttle_per_s: float = Field(10.0, gt=0, le=10_000)
    schedule: Schedule | None = None
    winner_metric: Literal["delivery_rate", "reply_rate"] = "delivery_rate"


class CampaignPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    audience: Audience | None = None
    variants: list[Variant] | None = Field(None, min_length=1, max_length=10)
    variables: dict[str, Any] | None = None
    throttle_per_s: float | None = Field(None, gt=0, le=10_000)
    schedule: Schedule | None = None
    winner_metric: Literal["delivery_rate", "reply_rate"] | None = None


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    channel: str
    status: str
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    variables: dict[str, Any]
    sender: str | None
    throttle_per_s: float
    schedule_at: dt.datetime | None
    timezone: str | None
    winner_metric: str
    audience_total: int | None
    processed: int
    accepted: int
    excluded_opted_out: int
    skipped_no_address: int
    render_failed: int
    rejected: int
    progress: float = 0.0
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class VariantStats(BaseModel):
    variant: str
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    pending: int = 0
    opted_out: int = 0
    replies: int = 0
    cost: Decimal = Decimal(0)
    delivery_rate: float | None = None
    reply_rate: float | None = None


class CampaignStats(BaseModel):
    campaign_id: str
    status: str
    audience_total: int | None
    processed: int
    excluded_opted_out: int
    skipped_no_address: int
    render_failed: int
    overall: VariantStats
    variants: list[VariantStats]
    winner: str | None = None
    winner_metric: str
    send_rate_per_s: float | None = Field(
        None, description="Messages accepted per second while running (against the throttle)."
    )
