"""The interface every provider adapter implements, and the shapes it speaks in.

An adapter is the real wire protocol of one provider: it sends, classifies errors as
retryable or not, verifies and parses the provider's webhooks (delivery status and
inbound messages), and probes the provider's health. It holds no state of its own
beyond its configuration and the shared HTTP client, so one instance serves any number
of concurrent sends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

import httpx

# Normalized delivery states an adapter may report, in lifecycle order.
DeliveryStatus = Literal["queued", "sending", "sent", "delivered", "read", "undelivered", "failed"]


@dataclass(frozen=True)
class ProviderConfig:
    """One provider account, with its credentials opened."""

    id: str
    org_id: str
    type: str
    channel: str
    name: str
    credentials: dict[str, Any]
    base_url: str | None = None
    sender: str | None = None
    webhook_token: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    # Where the provider should post delivery reports for this account (absolute URL).
    status_callback_url: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    id: str
    channel: str
    to: str  # normalized: E.164 for phone channels, chat id / PSID / e-mail otherwise
    body: str | None = None
    sender: str | None = None
    encoding: str | None = None  # GSM-7 | UCS-2 for SMS
    segments: int = 1
    media_url: str | None = None
    media_type: str | None = None  # image | document | audio | video
    template: dict[str, Any] | None = None  # {name, language, components | variables}
    location: dict[str, float] | None = None  # {latitude, longitude}
    subject: str | None = None  # e-mail
    validity_s: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    status: DeliveryStatus = "sent"
    cost: Decimal | None = None
    currency: str | None = None
    segments: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# Codes that say the account, not the message, is the problem (bad credentials, token).
PROVIDER_FAULT_CODES = frozenset({"20003", "unauthorized", "190", "4", "auth"})


class ProviderError(Exception):
    """A send the provider refused or could not take.

    `retryable`: trying again (here or elsewhere) may work. `provider_fault`: the account
    is broken (credentials, suspended): not the message's fault, so the dispatcher fails
    over to another provider and counts it against this one instead of failing the
    message. Inferred from a 401 or a known code when not given.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        provider_fault: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        if provider_fault is None:
            provider_fault = status_code == 401 or (not retryable and code in PROVIDER_FAULT_CODES)
        self.provider_fault = provider_fault


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: DeliveryStatus
    error_code: str | None = None
    error_message: str | None = None
    at: dt.datetime | None = None
    cost: Decimal | None = None
    currency: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SentMessage:
    """What a status lookup may need besides the provider's id: our id (some providers
    file the message under it) and when it was sent (lookups by date range)."""

    id: str
    sent_at: dt.datetime


@dataclass(frozen=True)
class InboundMessage:
    provider_message_id: str
    sender: str  # normalized like OutboundMessage.to
    to: str | None
    body: str | None
    channel: str
    at: dt.datetime | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP call to us, as received (the raw body is what gets signed)."""

    method: str
    url: str  # the public URL the provider called (proxies: configured public base)
    headers: dict[str, str]  # lower-cased names
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def json(self) -> Any:
        import json

        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Health:
    ok: bool
    latency_ms: float | None = None
    detail: str = ""


WebhookItem = StatusUpdate | InboundMessage


class ProviderAdapter:
    """Base class of adapters. Subclasses set `type`, `channels`, `default_base_url`."""

    type: ClassVar[str]
    channels: ClassVar[frozenset[str]]
    default_base_url: ClassVar[str] = ""
    # Credential fields the account must carry (validated when the account is saved).
    required_credentials: ClassVar[tuple[str, ...]] = ()
    # Fields the account may carry besides those (the adapter reads them when present).
    optional_credentials: ClassVar[tuple[str, ...]] = ()
    # Fields that identify the account rather than prove it (ids, user names): a form may
    # show them while they are typed; all others are secrets. None is ever read back.
    public_credentials: ClassVar[frozenset[str]] = frozenset()
    # The provider reports deliveries (else `sent` is final).
    delivery_reports: ClassVar[bool] = True
    # The provider's API can tell a sent message's status (see `fetch_status`).
    status_lookup: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    @property
    def base_url(self) -> str:
        return (self.config.base_url or self.default_base_url).rstrip("/")

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """True when the request really comes from the provider (signature, token)."""
        raise NotImplementedError

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        """Delivery updates and inbound messages in a verified webhook call."""
        raise NotImplementedError

    def handshake(self, request: WebhookRequest) -> str | None:
        """Answer a provider's webhook set-up check (Meta's GET hub.challenge), if any."""
        return None

    async def fetch_status(
        self, provider_message_id: str, message: SentMessage
    ) -> StatusUpdate | None:
        """Ask the provider for a sent message's status (when its delivery report never
        came). None: the provider does not know the message, or has no such API
        (`status_lookup` False). Raises `ProviderError` when the provider cannot answer
        now."""
        return None

    async def health(self) -> Health:
        raise NotImplementedError
