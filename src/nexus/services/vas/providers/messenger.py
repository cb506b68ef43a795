"""Messenger Send API (Meta Graph).

Credentials: `page_access_token`, `page_id`, `app_secret`; `verify_token` for the
subscription handshake (defaults to the account's `webhook_token`). Options:
`api_version` (`v21.0`).

`message.metadata`: `messaging_type` (`RESPONSE` default, `UPDATE`, `MESSAGE_TAG`) and
`tag` (`CONFIRMED_EVENT_UPDATE`, `POST_PURCHASE_UPDATE`, `ACCOUNT_UPDATE`,
`HUMAN_AGENT`; a tag alone implies `MESSAGE_TAG`), `quick_replies`. Templates
(`message.template`) are attachment templates: `{payload: {...}}` or the payload itself
(`{template_type: "button", ...}`). Media: image/video/audio/file attachments by URL.

Delivery and read receipts are watermarks: a delivery may list `mids` (reported per
message), a read only says "everything before this time was read" — the base interface
has no shape for that, so `watermarks()` returns them separately and `parse_webhook`
reports only per-message updates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx

from nexus.services.vas.providers import http_probe, response_json, transport_error
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
from nexus.services.vas.providers.whatsapp_cloud import (
    DEFAULT_VERSION,
    GRAPH_URL,
    dicts,
    entries,
    graph_error,
    meta_handshake,
    meta_signature_ok,
    unix_time,
)

MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
ATTACHMENT_TYPES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "file",
    "file": "file",
}


@dataclass(frozen=True)
class Watermark:
    """Everything sent to `recipient` (a PSID) up to `up_to` reached `status`."""

    recipient: str
    status: DeliveryStatus
    up_to: dt.datetime


class Adapter(ProviderAdapter):
    type = "messenger"
    channels = frozenset({"messenger"})
    default_base_url = GRAPH_URL
    required_credentials = ("page_access_token", "page_id", "app_secret")
    optional_credentials = ("verify_token",)
    public_credentials = frozenset({"page_id"})

    @property
    def _version(self) -> str:
        return str(self.config.options.get("api_version", DEFAULT_VERSION))

    @property
    def _token(self) -> dict[str, str]:
        return {"access_token": str(self.config.credentials["page_access_token"])}

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        meta = message.metadata
        tag = meta.get("tag")
        messaging_type = str(meta.get("messaging_type") or ("MESSAGE_TAG" if tag else "RESPONSE"))
        if messaging_type not in MESSAGING_TYPES:
            raise ProviderError(
                f"Unknown messaging_type {messaging_type!r}.",
                retryable=False,
                code="invalid_messaging_type",
            )
        if messaging_type == "MESSAGE_TAG" and not tag:
            raise ProviderError("MESSAGE_TAG needs a tag.", retryable=False, code="missing_tag")
        content: dict[str, Any] = {}
        if message.template:
            template = message.template
            payload = (
                template.get("payload")
                if isinstance(template.get("payload"), dict)
                else {
                    k: v for k, v in template.items() if k not in ("name", "language", "variables")
                }
            )
            content["attachment"] = {"type": "template", "payload": payload}
        elif message.media_url:
            kind = ATTACHMENT_TYPES.get(message.media_type or "image", "file")
            content["attachment"] = {
                "type": kind,
                "payload": {"url": message.media_url, "is_reusable": True},
            }
        else:
            content["text"] = message.body or ""
        if meta.get("quick_replies"):
            content["quick_replies"] = meta["quick_replies"]
        body: dict[str, Any] = {
            "recipient": {"id": message.to},
            "messaging_type": messaging_type,
            "message": content,
        }
        if messaging_type == "MESSAGE_TAG":
            body["tag"] = str(tag)
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        page = str(self.config.credentials["page_id"])
        url = f"{self.base_url}/{self._version}/{page}/messages"
        payload = self.payload(message)
        try:
            response = await self.http.post(url, params=self._token, json=payload)
        except httpx.TransportError as exc:
            raise transport_error("Messenger", exc) from exc
        if response.status_code >= 400:
            raise graph_error("Messenger", response)
        data = response_json(response)
        if not data.get("message_id"):
            raise ProviderError(
                "Messenger answered without a message id.",
                retryable=False,
                code="no_result",
                status_code=response.status_code,
            )
        return SendResult(provider_message_id=str(data["message_id"]), status="sent", raw=data)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return meta_signature_ok(str(self.config.credentials.get("app_secret") or ""), request)

    def handshake(self, request: WebhookRequest) -> str | None:
        token = str(self.config.credentials.get("verify_token") or self.config.webhook_token)
        return meta_handshake(request, token)

    def _events(self, request: WebhookRequest) -> list[dict[str, Any]]:
        try:
            payload = request.json()
        except ValueError:
            return []
        return [event for entry in entries(payload) for event in dicts(entry.get("messaging"))]

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        items: list[WebhookItem] = []
        for event in self._events(request):
            sender = _id(event.get("sender"))
            recipient = _id(event.get("recipient"))
            at = unix_time(event.get("timestamp"), millis=True)
            delivery = event.get("delivery")
            if isinstance(delivery, dict):
                when = unix_time(delivery.get("watermark"), millis=True) or at
                for mid in delivery.get("mids") or []:
                    if isinstance(mid, str) and mid:
                        items.append(StatusUpdate(mid, "delivered", at=when, raw=event))
                continue
            message = event.get("message")
            if isinstance(message, dict):
                if message.get("is_echo") or not message.get("mid") or not sender:
                    continue  # our own messages echoed back
                media = [
                    {"type": a.get("type"), "url": (a.get("payload") or {}).get("url")}
                    for a in dicts(message.get("attachments"))
                    if isinstance(a.get("payload") or {}, dict)
                ]
                items.append(
                    InboundMessage(
                        provider_message_id=str(message["mid"]),
                        sender=sender,
                        to=recipient,
                        body=message.get("text"),
                        channel="messenger",
                        at=at,
                        media=media,
                        raw=event,
                    )
                )
                continue
            postback = event.get("postback")
            if isinstance(postback, dict) and sender:
                items.append(
                    InboundMessage(
                        provider_message_id=str(
                            postback.get("mid") or f"postback:{sender}:{event.get('timestamp')}"
                        ),
                        sender=sender,
                        to=recipient,
                        body=postback.get("title") or postback.get("payload"),
                        channel="messenger",
                        at=at,
                        raw=event,
                    )
                )
        return items

    def watermarks(self, request: WebhookRequest) -> list[Watermark]:
        """Read receipts, and deliveries that list no message ids, as watermarks."""
        marks: list[Watermark] = []
        kinds: tuple[tuple[str, DeliveryStatus], ...] = (
            ("read", "read"),
            ("delivery", "delivered"),
        )
        for event in self._events(request):
            sender = _id(event.get("sender"))
            for key, status in kinds:
                receipt = event.get(key)
                if not isinstance(receipt, dict) or not sender:
                    continue
                if key == "delivery" and receipt.get("mids"):
                    continue
                up_to = unix_time(receipt.get("watermark"), millis=True)
                if up_to is not None:
                    marks.append(Watermark(sender, status, up_to))
        return marks

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            data = response_json(response)
            return True, f"page {data.get('name') or data.get('id')}"

        return await http_probe(
            self.http,
            f"{self.base_url}/{self._version}/me",
            params=self._token,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def _id(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("id") is not None:
        return str(value["id"])
    return None
