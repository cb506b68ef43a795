"""Twilio Programmable Messaging: SMS and WhatsApp (`whatsapp:` addresses).

Credentials: `account_sid`, `auth_token`; optional `messaging_service_sid` (used when
the message has no sender; a sender starting with `MG` is a Messaging Service too).
WhatsApp templates are Content API templates: `message.template` with `content_sid`
(or an `HX...` name) and `variables` (list or dict). `metadata["media_urls"]` adds more
media to `media_url` (10 at most).

The webhook signature covers the URL Twilio called, so `WebhookRequest.url` must be the
public URL (behind a proxy, the configured public base); the default port may be
present or not.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx

from nexus.services.vas.providers import (
    http_probe,
    is_transient_status,
    response_json,
    retry_after,
    transport_error,
)
from nexus.services.vas.providers.base import (
    DeliveryStatus,
    Health,
    InboundMessage,
    OutboundMessage,
    ProviderAdapter,
    ProviderError,
    SendResult,
    SentMessage,
    StatusUpdate,
    WebhookItem,
    WebhookRequest,
)

STATUS: dict[str, DeliveryStatus] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "partially_delivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
INBOUND_STATUSES = frozenset({"received", "receiving"})
MAX_VALIDITY_S = 36_000
MAX_MEDIA = 10


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL and the sorted name+value pairs."""
    payload = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the scheme's default port added or removed (Twilio
    signs whichever form it was configured with)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or not parts.hostname:
        return [url]
    if parts.port is None:
        return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]
    if parts.port == default:
        return [url, urlunsplit(parts._replace(netloc=parts.netloc.removesuffix(f":{default}")))]
    return [url]


def _price(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return abs(Decimal(str(value)))  # Twilio reports prices as negative amounts
    except InvalidOperation:
        return None


class Adapter(ProviderAdapter):
    type = "twilio"
    channels = frozenset({"sms", "whatsapp"})
    default_base_url = "https://api.twilio.com"
    required_credentials = ("account_sid", "auth_token")
    optional_credentials = ("messaging_service_sid",)
    public_credentials = frozenset({"account_sid", "messaging_service_sid"})
    status_lookup = True

    @property
    def _sid(self) -> str:
        return str(self.config.credentials["account_sid"])

    @property
    def _auth(self) -> tuple[str, str]:
        return self._sid, str(self.config.credentials["auth_token"])

    def _address(self, value: str, channel: str) -> str:
        value = value.removeprefix("whatsapp:")
        return f"whatsapp:{value}" if channel == "whatsapp" else value

    def _form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        channel = message.channel if message.channel in self.channels else self.config.channel
        form = [("To", self._address(message.to, channel))]
        sender = (
            message.sender
            or self.config.sender
            or self.config.credentials.get("messaging_service_sid")
            or self.config.options.get("messaging_service_sid")
        )
        if not sender:
            raise ProviderError(
                "No sender (From or Messaging Service) is configured.",
                retryable=False,
                code="no_sender",
            )
        if str(sender).startswith("MG"):
            form.append(("MessagingServiceSid", str(sender)))
        else:
            form.append(("From", self._address(str(sender), channel)))
        template = message.template or {}
        content_sid = template.get("content_sid") or (
            template.get("name") if str(template.get("name", "")).startswith("HX") else None
        )
        if content_sid:
            form.append(("ContentSid", str(content_sid)))
            variables = template.get("variables")
            if isinstance(variables, list | tuple):
                variables = {str(i): v for i, v in enumerate(variables, 1)}
            if variables:
                form.append(("ContentVariables", json.dumps(variables)))
        elif message.body:
            form.append(("Body", message.body))
        if message.media_url:
            form.append(("MediaUrl", message.media_url))
        extra_media = message.metadata.get("media_urls")
        if isinstance(extra_media, list):
            form.extend(("MediaUrl", str(url)) for url in extra_media[:MAX_MEDIA])
        if self.config.status_callback_url:
            form.append(("StatusCallback", self.config.status_callback_url))
        if message.validity_s:
            form.append(("ValidityPeriod", str(max(1, min(MAX_VALIDITY_S, message.validity_s)))))
        return form

    async def send(self, message: OutboundMessage) -> SendResult:
        url = f"{self.base_url}/2010-04-01/Accounts/{self._sid}/Messages.json"
        try:
            response = await self.http.post(
                url,
                content=urlencode(self._form(message)),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=self._auth,
            )
        except httpx.TransportError as exc:
            raise transport_error("Twilio", exc) from exc
        if response.status_code >= 400:
            raise self._error(response)
        data = response_json(response)
        sid = data.get("sid")
        status = STATUS.get(str(data.get("status")), "sent")
        if status in ("failed", "undelivered"):
            raise ProviderError(
                str(data.get("error_message") or f"Twilio: {status}"),
                retryable=False,
                code=_str(data.get("error_code")),
                status_code=response.status_code,
            )
        segments = data.get("num_segments")
        return SendResult(
            provider_message_id=str(sid) if sid else None,
            status="sent",
            cost=_price(data.get("price")),
            currency=data.get("price_unit") or None,
            segments=int(str(segments)) if str(segments or "").isdigit() else None,
            raw=data,
        )

    def _error(self, response: httpx.Response) -> ProviderError:
        data = response_json(response)
        code = _str(data.get("code")) or str(response.status_code)
        detail = str(data.get("message") or response.reason_phrase or "error")
        status = response.status_code
        retryable = is_transient_status(status)
        if status in (401, 403):
            code = code or "20003"
        return ProviderError(
            f"Twilio {status}: {detail}",
            retryable=retryable,
            code=code,
            status_code=status,
            retry_after_s=retry_after(response),
        )

    async def fetch_status(
        self, provider_message_id: str, message: SentMessage
    ) -> StatusUpdate | None:
        """The Message resource (`GET .../Messages/{Sid}.json`); 404: Twilio has no such
        message (or no longer: deleted or redacted)."""
        sid = quote(provider_message_id, safe="")
        url = f"{self.base_url}/2010-04-01/Accounts/{self._sid}/Messages/{sid}.json"
        try:
            response = await self.http.get(url, auth=self._auth)
        except httpx.TransportError as exc:
            raise transport_error("Twilio", exc) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(response)
        data = response_json(response)
        status = STATUS.get(str(data.get("status")))
        if status is None:
            return None
        return StatusUpdate(
            provider_message_id=provider_message_id,
            status=status,
            error_code=_str(data.get("error_code")),
            error_message=_str(data.get("error_message")),
            at=_rfc2822(data.get("date_updated")),
            cost=_price(data.get("price")),
            currency=data.get("price_unit") or None,
            raw=data,
        )

    # -- webhooks ----------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> bool:
        given = request.headers.get("x-twilio-signature", "")
        token = str(self.config.credentials.get("auth_token") or "")
        if not given or not token:
            return False
        params: list[tuple[str, str]] = []
        content_type = request.headers.get("content-type", "")
        if request.method.upper() == "POST" and "application/json" not in content_type:
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        ok = False
        for url in _url_variants(request.url):
            ok |= hmac.compare_digest(signature(token, url, params), given)
        return ok

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        form = request.form() if request.body else dict(request.query)
        sid = form.get("MessageSid") or form.get("SmsSid") or form.get("SmsMessageSid")
        if not sid:
            return []
        raw_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        if raw_status in INBOUND_STATUSES or ("MessageStatus" not in form and "Body" in form):
            sender = form.get("From", "")
            channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
            try:
                count = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
            except ValueError:
                count = 0
            media = [
                {"url": form[f"MediaUrl{i}"], "content_type": form.get(f"MediaContentType{i}")}
                for i in range(count)
                if form.get(f"MediaUrl{i}")
            ]
            return [
                InboundMessage(
                    provider_message_id=sid,
                    sender=sender.removeprefix("whatsapp:"),
                    to=form.get("To", "").removeprefix("whatsapp:") or None,
                    body=form.get("Body"),
                    channel=channel,
                    media=media,
                    raw=form,
                )
            ]
        status = STATUS.get(raw_status)
        if status is None:
            return []
        error_code = form.get("ErrorCode") or None
        return [
            StatusUpdate(
                provider_message_id=sid,
                status=status,
                error_code=error_code if error_code != "0" else None,
                error_message=form.get("ErrorMessage") or None,
                raw=form,
            )
        ]

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            status = response_json(response).get("status", "active")
            return status == "active", f"account {status}"

        return await http_probe(
            self.http,
            f"{self.base_url}/2010-04-01/Accounts/{self._sid}.json",
            auth=self._auth,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _rfc2822(value: Any) -> dt.datetime | None:
    """Twilio's dates (`Tue, 21 Jul 2026 10:04:05 +0000`)."""
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None
