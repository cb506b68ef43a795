"""Request and response bodies of the VAS API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

Channel = Literal["sms", "whatsapp", "telegram", "messenger", "email"]


class Media(BaseModel):
    url: HttpUrl
    type: Literal["image", "document", "audio", "video"] = "image"
    caption: str | None = Field(None, max_length=1024)


class Location(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Template(BaseModel):
    name: str = Field(min_length=1, max_length=512)
    language: str = Field("en", max_length=15)
    components: list[dict[str, Any]] = Field(default_factory=list)
    variables: list[str] = Field(default_factory=list, description="Body parameters, in order.")


class SendIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"channel": "sms", "to": "+14155550123", "body": "Your code is 123456"}]
        }
    )

    channel: Channel
    to: str = Field(min_length=1, max_length=320)
    body: str | None = Field(None, max_length=100_000)
    from_: str | None = Field(None, alias="from", max_length=100)
    subject: str | None = Field(None, max_length=300)
    template: Template | None = None
    media: Media | None = None
    location: Location | None = None
    send_at: dt.datetime | None = Field(None, description="Send later (scheduled).")
    ttl_s: int | None = Field(None, description="Validity: give up if not sent within this time.")
    region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Region for national numbers."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class ChannelSendIn(BaseModel):
    """A send on a channel-specific endpoint (the channel comes from the path)."""

    to: str = Field(min_length=1, max_length=320)
    body: str | None = Field(None, max_length=100_000)
    from_: str | None = Field(None, alias="from", max_length=100)
    send_at: dt.datetime | None = None
    ttl_s: int | None = None
    region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class TemplateSendIn(ChannelSendIn):
    template: Template


class MediaSendIn(ChannelSendIn):
    media: Media


class LocationSendIn(ChannelSendIn):
    location: Location


class BulkIn(BaseModel):
    messages: list[SendIn] = Field(min_length=1)


class ChannelBulkIn(BaseModel):
    messages: list[ChannelSendIn] = Field(min_length=1)


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    status: str
    kind: str
    provider_id: str | None
    reason: str | None
    data: dict[str, Any]
    at: dt.datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    id: str
    channel: str
    direction: str
    to: str
    from_: str | None = Field(None, alias="from", validation_alias="sender")
    body: str | None
    status: str
    provider_id: str | None
    provider_message_id: str | None
    encoding: str | None
    segments: int
    estimated_cost: Decimal | None
    cost: Decimal | None
    currency: str | None
    error_code: str | None
    error_reason: str | None
    attempts: int
    send_at: dt.datetime | None
    expires_at: dt.datetime | None
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None
    done_at: dt.datetime | None
    history: list[EventOut] | None = None


class BulkResult(BaseModel):
    index: int
    status: int
    message_id: str | None = None
    message_status: str | None = None
    error: str | None = None


class BulkOut(BaseModel):
    accepted: int
    rejected: int
    failed: int
    results: list[BulkResult]


def _provider_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in {"http", "https", "smtp", "smtps"} or not parsed.hostname:
        raise ValueError("must be an http(s):// URL (or smtp:// / smtps:// for e-mail)")
    return value.rstrip("/")


ProviderUrl = Annotated[str, Field(max_length=500), AfterValidator(_provider_url)]


class ProviderIn(BaseModel):
    type: str = Field(examples=["twilio"])
    channel: Channel
    name: str = Field(min_length=1, max_length=200)
    credentials: dict[str, Any] = Field(default_factory=dict)
    base_url: ProviderUrl | None = None
    sender: str | None = Field(None, max_length=100)
    countries: list[str] = Field(default_factory=list)
    priority: int = Field(100, ge=0, le=10_000)
    cost_per_unit: Decimal = Field(Decimal(0), ge=0)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    rate_limit_per_s: float | None = Field(None, gt=0, le=100_000)
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class ProviderPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    credentials: dict[str, Any] | None = None
    base_url: ProviderUrl | None = None
    sender: str | None = Field(None, max_length=100)
    countries: list[str] | None = None
    priority: int | None = Field(None, ge=0, le=10_000)
    cost_per_unit: Decimal | None = Field(None, ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    rate_limit_per_s: float | None = Field(None, gt=0, le=100_000)
    enabled: bool | None = None
    options: dict[str, Any] | None = None


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    type: str
    channel: str
    name: str
    base_url: str | None
    sender: str | None
    countries: list[str]
    priority: int
    cost_per_unit: Decimal
    currency: str
    rate_limit_per_s: float | None
    enabled: bool
    options: dict[str, Any]
    webhook_url: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class ProviderHealthOut(BaseModel):
    id: str
    name: str
    type: str
    channel: str
    enabled: bool
    healthy: bool
    detail: str
    latency_ms: float | None
    circuit: str
    success_rate: float


class CredentialFieldOut(BaseModel):
    name: str
    required: bool
    secret: bool = Field(description="A secret (token, key, password), not an identifier.")


class ProviderTypeOut(BaseModel):
    type: str
    channels: list[str]
    credentials: list[CredentialFieldOut]


class WebhookIn(BaseModel):
    url: HttpUrl
    events: list[str] = Field(default_factory=list, examples=[["nexus.vas.message.delivered"]])
    description: str = Field("", max_length=500)
    enabled: bool = True


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown once: verifies the X-Nexus-Signature of deliveries.")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None
    response_body: str | None
    error: str | None
    duration_ms: float | None
    succeeded: bool
    at: dt.datetime


class ConsentIn(BaseModel):
    channel: Channel
    address: str = Field(min_length=1, max_length=320)
    opted_out: bool


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    channel: str
    address: str
    opted_out: bool
    source: str
    keyword: str | None
    updated_at: dt.datetime


class PreviewIn(BaseModel):
    """A message being written: what it would cost, before it is sent."""

    channel: Channel = "sms"
    to: str | None = Field(None, max_length=320)
    body: str = Field("", max_length=100_000)
    region: str | None = Field(None, pattern=r"^[A-Z]{2}$")


class PreviewProblem(BaseModel):
    field: str
    message: str


class PreviewOut(BaseModel):
    channel: str
    to: str | None = Field(None, description="The recipient, normalized (E.164 for phones).")
    characters: int
    encoding: str | None = Field(None, description="GSM-7 or UCS-2 (SMS only).")
    units: int | None = Field(None, description="Septets or UTF-16 units (SMS only).")
    segments: int
    per_segment: int | None = None
    remaining: int | None = Field(None, description="Units left in the last segment.")
    max_body: int
    estimated_cost: Decimal | None = Field(None, description="Cheapest route times segments.")
    currency: str | None = None
    providers: int = Field(description="Enabled providers for the channel.")
    problems: list[PreviewProblem] = Field(
        default_factory=list, description="What would stop the send, in plain words."
    )
