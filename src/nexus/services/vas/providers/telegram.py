"""Telegram Bot API.

Credentials: `bot_token`; `webhook_secret` (the `secret_token` given to setWebhook and
echoed in `X-Telegram-Bot-Api-Secret-Token`; defaults to the account's
`webhook_token`). `message.to` is the chat id (or `@channel`).

Sends text (`sendMessage`; `parse_mode`, `disable_notification`, `protect_content`,
`reply_markup` from metadata), media (`sendPhoto` for images, `sendVideo`, `sendAudio`,
`sendDocument` otherwise; the body is the caption) and locations (`sendLocation`).
Telegram has no delivery receipts: `sent` is final. Message ids are unique per chat
only, so `provider_message_id` is `<chat id>:<message id>`.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

import httpx

from nexus.services.vas.providers import (
    as_dict,
    http_probe,
    response_json,
    transport_error,
)
from nexus.services.vas.providers.base import (
    Health,
    InboundMessage,
    OutboundMessage,
    ProviderAdapter,
    ProviderError,
    SendResult,
    WebhookItem,
    WebhookRequest,
)
from nexus.services.vas.providers.whatsapp_cloud import unix_time

CHAT_ID = re.compile(r"^-?\d+$")
MEDIA_METHODS = {
    "image": ("sendPhoto", "photo"),
    "video": ("sendVideo", "video"),
    "audio": ("sendAudio", "audio"),
    "document": ("sendDocument", "document"),
}
TEXT_OPTIONS = (
    "parse_mode",
    "disable_notification",
    "protect_content",
    "reply_markup",
    "message_thread_id",
)
UPDATE_KINDS = ("message", "edited_message", "channel_post", "business_message")


class Adapter(ProviderAdapter):
    type = "telegram"
    channels = frozenset({"telegram"})
    delivery_reports = False  # `sent` is final
    default_base_url = "https://api.telegram.org"
    required_credentials = ("bot_token",)
    optional_credentials = ("webhook_secret",)

    def _url(self, method: str) -> str:
        return f"{self.base_url}/bot{self.config.credentials['bot_token']}/{method}"

    @property
    def _secret(self) -> str:
        return str(self.config.credentials.get("webhook_secret") or self.config.webhook_token)

    def request_for(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        chat: int | str = int(message.to) if CHAT_ID.match(message.to) else message.to
        params: dict[str, Any] = {"chat_id": chat}
        options = {k: message.metadata[k] for k in TEXT_OPTIONS if k in message.metadata}
        if message.location:
            params.update(
                latitude=message.location.get("latitude"),
                longitude=message.location.get("longitude"),
            )
            return "sendLocation", params
        if message.media_url:
            method, field = MEDIA_METHODS.get(message.media_type or "", MEDIA_METHODS["document"])
            params[field] = message.media_url
            if message.body:
                params["caption"] = message.body
            return method, params | options
        params["text"] = message.body or ""
        return "sendMessage", params | options

    async def send(self, message: OutboundMessage) -> SendResult:
        method, params = self.request_for(message)
        try:
            response = await self.http.post(self._url(method), json=params)
        except httpx.TransportError as exc:
            raise transport_error("Telegram", exc) from exc
        data = response_json(response)
        if response.status_code >= 400 or data.get("ok") is not True:
            raise api_error(response, data)
        result = as_dict(data.get("result"))
        chat = as_dict(result.get("chat")).get("id", params["chat_id"])
        return SendResult(
            provider_message_id=f"{chat}:{result.get('message_id')}",
            status="sent",
            raw=result,
        )

    async def register_webhook(self, url: str) -> None:
        """setWebhook with our secret token (Telegram then signs every update with it)."""
        params = {
            "url": url,
            "secret_token": self._secret,
            "allowed_updates": ["message", "edited_message", "channel_post", "callback_query"],
        }
        try:
            response = await self.http.post(self._url("setWebhook"), json=params)
        except httpx.TransportError as exc:
            raise transport_error("Telegram", exc) from exc
        data = response_json(response)
        if response.status_code >= 400 or data.get("ok") is not True:
            raise api_error(response, data)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        secret = self._secret
        return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        try:
            update = request.json()
        except ValueError:
            return []
        if not isinstance(update, dict):
            return []
        for kind in UPDATE_KINDS:
            message = update.get(kind)
            if isinstance(message, dict):
                item = _inbound(message, update)
                return [item] if item is not None else []
        query = update.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("from"), dict):
            chat = ((query.get("message") or {}).get("chat") or {}).get(
                "id", query["from"].get("id")
            )
            return [
                InboundMessage(
                    provider_message_id=f"callback:{query.get('id')}",
                    sender=str(chat),
                    to=None,
                    body=query.get("data"),
                    channel="telegram",
                    raw=update,
                )
            ]
        return []

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            data = response_json(response)
            bot = data.get("result") or {}
            return data.get("ok") is True, f"bot @{bot.get('username')}"

        return await http_probe(
            self.http,
            self._url("getMe"),
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def api_error(response: httpx.Response, data: dict[str, Any]) -> ProviderError:
    """`{ok:false, error_code, description, parameters:{retry_after, migrate_to_chat_id}}`."""
    code = data.get("error_code") if isinstance(data.get("error_code"), int) else None
    status = response.status_code if response.status_code >= 400 else (code or 500)
    code = code or status
    parameters = as_dict(data.get("parameters"))
    retry_after = parameters.get("retry_after")
    description = str(data.get("description") or response.reason_phrase or "error")
    if parameters.get("migrate_to_chat_id"):
        description += f" (the chat moved to {parameters['migrate_to_chat_id']})"
    # 401 and 404 on the bot URL mean the token is wrong; 400/403 are about the chat
    # or the message (not found, blocked by the user, too long): all permanent.
    return ProviderError(
        f"Telegram {code}: {description}",
        retryable=code == 429 or code >= 500,
        code=str(code),
        status_code=status,
        retry_after_s=float(retry_after) if isinstance(retry_after, int | float) else None,
    )


def _inbound(message: dict[str, Any], update: dict[str, Any]) -> InboundMessage | None:
    chat = message.get("chat")
    if not isinstance(chat, dict) or chat.get("id") is None or message.get("message_id") is None:
        return None
    media: list[dict[str, Any]] = []
    photos = [p for p in message.get("photo") or [] if isinstance(p, dict)]
    if photos:
        largest = max(photos, key=lambda p: int(p.get("file_size") or p.get("width") or 0))
        media.append({"type": "image", "file_id": largest.get("file_id")})
    for kind in ("document", "video", "audio", "voice", "sticker"):
        item = message.get(kind)
        if isinstance(item, dict):
            media.append(
                {
                    "type": kind,
                    "file_id": item.get("file_id"),
                    "mime_type": item.get("mime_type"),
                    "file_name": item.get("file_name"),
                }
            )
    location = message.get("location")
    if isinstance(location, dict):
        media.append(
            {
                "type": "location",
                "latitude": location.get("latitude"),
                "longitude": location.get("longitude"),
            }
        )
    return InboundMessage(
        provider_message_id=f"{chat['id']}:{message['message_id']}",
        sender=str(chat["id"]),
        to=None,
        body=message.get("text") if message.get("text") is not None else message.get("caption"),
        channel="telegram",
        at=unix_time(message.get("date")),
        media=media,
        raw=update,
    )
