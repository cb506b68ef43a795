"""WhatsApp Cloud API (Meta Graph API), and the Graph helpers Messenger shares.

Credentials: `access_token`, `phone_number_id`, `app_secret` (webhook signatures);
`verify_token` for the subscription handshake (defaults to the account's
`webhook_token`). Options: `api_version` (`v21.0`).

Sends text (`preview_url` from metadata), templates (`message.template`: `name`,
`language` (code or `{code}`), and `components`, or `variables` as a list (positional)
or a dict (named parameters)), media (`image`/`document`/`audio`/`video` by link, the
body as caption) and locations. Our message id goes out as `biz_opaque_callback_data`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import httpx

from nexus.services.vas.providers import (
    as_dict,
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
    StatusUpdate,
    WebhookItem,
    WebhookRequest,
)

DEFAULT_VERSION = "v21.0"
GRAPH_URL = "https://graph.facebook.com"
# Graph error codes worth retrying: throttling (4, 17, 32, 613, 80007, 130429, 131048,
# 131056), temporary failures (1, 2, 131000, 131016, 133004). Bad token (190),
# parameters (100, 131009), undeliverable (131026), outside the 24-hour window (131047),
# permissions (10, 200) and the like are permanent.
RETRYABLE_CODES = frozenset(
    {1, 2, 4, 17, 32, 613, 80007, 130429, 131000, 131016, 131048, 131056, 133004}
)
STATUS: dict[str, DeliveryStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
MEDIA_TYPES = frozenset({"image", "document", "audio", "video", "sticker"})
MAX_ITEMS = 1000  # entries x changes x items walked per webhook call, at most


# -- Graph API helpers (WhatsApp Cloud and Messenger) -------------------------------------


def graph_error(provider: str, response: httpx.Response) -> ProviderError:
    """A Graph API error answer `{error:{message, type, code, error_subcode, ...}}`."""
    error = response_json(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    status = response.status_code
    retryable = (
        is_transient_status(status) or code in RETRYABLE_CODES or error.get("is_transient") is True
    ) and code != 190
    label = f"{code}" if subcode is None else f"{code}/{subcode}"
    return ProviderError(
        f"{provider} {status}: {error.get('message') or response.reason_phrase} ({label})",
        retryable=retryable,
        code=str(code) if code is not None else str(status),
        status_code=status,
        retry_after_s=retry_after(response),
    )


def meta_signature_ok(app_secret: str, request: WebhookRequest) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`."""
    given = request.headers.get("x-hub-signature-256", "")
    if not app_secret or not given.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given[7:].strip().lower().encode())


def meta_handshake(request: WebhookRequest, verify_token: str) -> str | None:
    """Meta's subscription check: GET with hub.mode=subscribe and our verify token."""
    query = request.query
    if request.method.upper() != "GET" or query.get("hub.mode") != "subscribe" or not verify_token:
        return None
    given = query.get("hub.verify_token", "")
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        return None
    return query.get("hub.challenge", "")


def entries(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return []
    return [e for e in payload["entry"][:MAX_ITEMS] if isinstance(e, dict)]


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value[:MAX_ITEMS] if isinstance(v, dict)] if isinstance(value, list) else []


def unix_time(value: Any, *, millis: bool = False) -> dt.datetime | None:
    try:
        seconds = float(value) / (1000 if millis else 1)
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- the adapter --------------------------------------------------------------------------


class Adapter(ProviderAdapter):
    type = "whatsapp_cloud"
    channels = frozenset({"whatsapp"})
    default_base_url = GRAPH_URL
    required_credentials = ("access_token", "phone_number_id", "app_secret")
    optional_credentials = ("verify_token",)
    public_credentials = frozenset({"phone_number_id"})

    @property
    def _version(self) -> str:
        return str(self.config.options.get("api_version", DEFAULT_VERSION))

    @property
    def _phone_id(self) -> str:
        return str(self.config.credentials["phone_number_id"])

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.credentials['access_token']}"}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.lstrip("+"),
            "biz_opaque_callback_data": message.id,
        }
        if message.metadata.get("reply_to"):
            body["context"] = {"message_id": str(message.metadata["reply_to"])}
        if message.template:
            body["type"] = "template"
            body["template"] = template_object(message.template)
        elif message.location:
            body["type"] = "location"
            body["location"] = {
                k: v
                for k, v in {
                    "latitude": message.location.get("latitude"),
                    "longitude": message.location.get("longitude"),
                    "name": message.metadata.get("location_name"),
                    "address": message.metadata.get("location_address"),
                }.items()
                if v is not None
            }
        elif message.media_url:
            kind = message.media_type if message.media_type in MEDIA_TYPES else "image"
            media: dict[str, Any] = {"link": message.media_url}
            if message.body and kind in ("image", "document", "video"):
                media["caption"] = message.body
            if kind == "document" and message.metadata.get("filename"):
                media["filename"] = str(message.metadata["filename"])
            body["type"] = kind
            body[kind] = media
        else:
            body["type"] = "text"
            body["text"] = {
                "body": message.body or "",
                "preview_url": bool(message.metadata.get("preview_url", False)),
            }
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        url = f"{self.base_url}/{self._version}/{self._phone_id}/messages"
        try:
            response = await self.http.post(url, json=self.payload(message), headers=self._headers)
        except httpx.TransportError as exc:
            raise transport_error("WhatsApp", exc) from exc
        if response.status_code >= 400:
            raise graph_error("WhatsApp", response)
        data = response_json(response)
        messages = dicts(data.get("messages"))
        if not messages or not messages[0].get("id"):
            raise ProviderError(
                "WhatsApp answered without a message id.",
                retryable=False,
                code="no_result",
                status_code=response.status_code,
            )
        return SendResult(provider_message_id=str(messages[0]["id"]), status="sent", raw=data)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return meta_signature_ok(str(self.config.credentials.get("app_secret") or ""), request)

    def handshake(self, request: WebhookRequest) -> str | None:
        token = str(self.config.credentials.get("verify_token") or self.config.webhook_token)
        return meta_handshake(request, token)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        try:
            payload = request.json()
        except ValueError:
            return []
        items: list[WebhookItem] = []
        for entry in entries(payload):
            for change in dicts(entry.get("changes")):
                if change.get("field", "messages") != "messages":
                    continue
                value = change.get("value")
                if not isinstance(value, dict):
                    continue
                metadata = as_dict(value.get("metadata"))
                ours = _plus(metadata.get("display_phone_number"))
                for status in dicts(value.get("statuses")):
                    update = _status(status)
                    if update is not None:
                        items.append(update)
                for message in dicts(value.get("messages")):
                    inbound = _inbound(message, ours)
                    if inbound is not None:
                        items.append(inbound)
        return items

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            data = response_json(response)
            return True, f"quality {data.get('quality_rating', 'unknown')}"

        return await http_probe(
            self.http,
            f"{self.base_url}/{self._version}/{self._phone_id}",
            params={"fields": "id,display_phone_number,quality_rating"},
            headers=self._headers,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def template_object(template: dict[str, Any]) -> dict[str, Any]:
    language = template.get("language") or "en_US"
    result: dict[str, Any] = {
        "name": str(template.get("name", "")),
        "language": language if isinstance(language, dict) else {"code": str(language)},
    }
    if template.get("components"):
        result["components"] = template["components"]
    else:
        variables = template.get("variables")
        parameters: list[dict[str, Any]] = []
        if isinstance(variables, dict):
            parameters = [
                {"type": "text", "parameter_name": str(k), "text": str(v)}
                for k, v in variables.items()
            ]
        elif isinstance(variables, list | tuple):
            parameters = [{"type": "text", "text": str(v)} for v in variables]
        if parameters:
            result["components"] = [{"type": "body", "parameters": parameters}]
    return result


def _status(status: dict[str, Any]) -> StatusUpdate | None:
    mapped = STATUS.get(str(status.get("status", "")).lower())
    if mapped is None or not status.get("id"):
        return None  # e.g. "deleted", "warning", or a status Meta added later
    errors = dicts(status.get("errors"))
    error = errors[0] if errors else {}
    detail = (
        error.get("error_data", {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None
    )
    return StatusUpdate(
        provider_message_id=str(status["id"]),
        status=mapped,
        error_code=str(error["code"]) if error.get("code") is not None else None,
        error_message=(detail or error.get("message") or error.get("title")) if error else None,
        at=unix_time(status.get("timestamp")),
        raw=status,
    )


def _inbound(message: dict[str, Any], ours: str | None) -> InboundMessage | None:
    if not message.get("id") or not message.get("from"):
        return None
    kind = str(message.get("type", "text"))
    content = as_dict(message.get(kind))
    body: str | None = None
    media: list[dict[str, Any]] = []
    if kind == "text":
        body = content.get("body")
    elif kind == "button":
        body = content.get("text") or content.get("payload")
    elif kind == "interactive":
        reply = content.get("button_reply") or content.get("list_reply") or {}
        body = reply.get("title") if isinstance(reply, dict) else None
    elif kind in MEDIA_TYPES or kind == "voice":
        body = content.get("caption")
        media.append(
            {
                "type": kind,
                **{
                    k: content[k] for k in ("id", "mime_type", "sha256", "filename") if k in content
                },
            }
        )
    elif kind == "location":
        media.append(
            {
                "type": "location",
                **{
                    k: content[k]
                    for k in ("latitude", "longitude", "name", "address")
                    if k in content
                },
            }
        )
    return InboundMessage(
        provider_message_id=str(message["id"]),
        sender=_plus(message["from"]) or str(message["from"]),
        to=ours,
        body=body,
        channel="whatsapp",
        at=unix_time(message.get("timestamp")),
        media=media,
        raw=message,
    )


def _plus(value: Any) -> str | None:
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return f"+{digits}" if digits else None
