"""Telegram Bot API, as a loopback fake.

- `POST|GET /bot<token>/<method>` with JSON, form or query parameters:
  `getMe`, `setWebhook` (`url`, `secret_token`), `deleteWebhook`, `getWebhookInfo`,
  `sendMessage`, `sendPhoto`, `sendDocument`, `sendVideo`, `sendAudio`, `sendLocation`.
  Answers `{ok:true, result}` or `{ok:false, error_code, description[, parameters]}`:
  401 Unauthorized (bad token), 404 Not Found (unknown method), 400 "chat not found"
  (chat ids ending 0000), 403 "bot was blocked by the user" (0002), 400 for empty or
  too long text / captions, 429 with `parameters.retry_after`.
- No delivery callbacks (Telegram has none). `inbound()` posts an update to the webhook
  set with setWebhook (else `callback_url`), with `X-Telegram-Bot-Api-Secret-Token`.

`error_code` values: `429` (retry_after = `retry_after_s` knob), `500`, `502`, `400`,
`403`, or `http:NNN`.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web

from nexus.testing.fakes._base import (
    CallbackEvent,
    FakeProvider,
    OutgoingCall,
    is_loopback_url,
    json_response,
    read_params,
)

DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    429: "Too Many Requests: retry after {}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
MEDIA = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendVideo": "video",
    "sendAudio": "audio",
}
PARSE_MODES = frozenset({"HTML", "Markdown", "MarkdownV2"})


class TelegramFake(FakeProvider):
    name = "telegram"
    default_credentials: ClassVar[dict[str, str]] = {
        "bot_token": "123456789:AAFakeBotToken0123456789abcdefghijk",
        "webhook_secret": "fake-telegram-secret_0123456789",
    }
    transient_code = "429"
    KNOBS = (*FakeProvider.KNOBS, "retry_after_s")

    def __init__(self, *, retry_after_s: int = 1, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.retry_after_s = retry_after_s
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = self.credentials.get("webhook_secret")
        self._update_id = 100_000
        self._message_ids: dict[str, int] = {}

    @property
    def bot_id(self) -> int:
        return int(self.credentials["bot_token"].split(":", 1)[0])

    @property
    def inbound_url(self) -> str | None:
        return self.webhook_url or self.callback_url

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/bot{token}/{method}", self.call)]

    @staticmethod
    def failure(
        code: int, description: str | None = None, parameters: dict[str, Any] | None = None
    ) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": code,
            "description": description or DESCRIPTIONS.get(code, "Error"),
        }
        if parameters:
            body["parameters"] = parameters
        return json_response(body, code)

    def error_response(self, code: str) -> web.Response:
        number = int(code[5:]) if code.startswith("http:") else int(code)
        if number == 429:
            return self.failure(
                429,
                DESCRIPTIONS[429].format(self.retry_after_s),
                {"retry_after": self.retry_after_s},
            )
        return self.failure(number)

    def ok(self, result: Any) -> web.Response:
        return json_response({"ok": True, "result": result})

    async def call(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if not hmac.compare_digest(token.encode(), self.credentials["bot_token"].encode()):
            self.counters["unauthorized"] += 1
            return self.failure(401)
        method = request.match_info["method"]
        params = await read_params(request)
        handler = {
            "getMe": self.get_me,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.webhook_info,
            "sendMessage": self.send_message,
            "sendLocation": self.send_location,
            **dict.fromkeys(MEDIA, self.send_media),
        }.get(method)
        if handler is None:
            return self.failure(404)
        if method.startswith("send"):
            if not params.get("chat_id"):
                self.counters["rejected"] += 1
                return self.failure(400, "Bad Request: chat_id is empty")
            if injected := self.injected_error():
                return self.error_response(injected)
            outcome = self.outcome(params["chat_id"])
            if outcome == "invalid":
                self.counters["rejected"] += 1
                return self.failure(400, "Bad Request: chat not found")
            if outcome == "blocked":
                self.counters["rejected"] += 1
                return self.failure(403)
        return await handler(method, params)

    def _bot(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Fake Bot",
            "username": "fake_nexus_bot",
        }

    async def get_me(self, method: str, params: dict[str, str]) -> web.Response:
        return self.ok({**self._bot(), "can_join_groups": True, "supports_inline_queries": False})

    async def set_webhook(self, method: str, params: dict[str, str]) -> web.Response:
        url = params.get("url", "")
        if url and not is_loopback_url(url):
            return self.failure(400, "Bad Request: the fake only calls loopback webhooks")
        secret = params.get("secret_token")
        if secret is not None and not (1 <= len(secret) <= 256):
            return self.failure(400, "Bad Request: secret token is invalid")
        self.webhook_url = url or None
        self.webhook_secret = secret
        return json_response({"ok": True, "result": True, "description": "Webhook was set"})

    async def delete_webhook(self, method: str, params: dict[str, str]) -> web.Response:
        self.webhook_url = None
        return json_response({"ok": True, "result": True, "description": "Webhook was deleted"})

    async def webhook_info(self, method: str, params: dict[str, str]) -> web.Response:
        return self.ok(
            {
                "url": self.webhook_url or "",
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        )

    def _message(self, chat_id: str, **content: Any) -> dict[str, Any]:
        number = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = number
        chat: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        message = {
            "message_id": number,
            "from": self._bot(),
            "chat": {
                "id": chat,
                "type": "private" if isinstance(chat, int) and chat > 0 else "channel",
            },
            "date": int(time.time()),
            **content,
        }
        self.record_accepted(**message)
        return message

    def _check_parse_mode(self, params: dict[str, str]) -> web.Response | None:
        mode = params.get("parse_mode")
        if mode and mode not in PARSE_MODES:
            self.counters["rejected"] += 1
            return self.failure(400, f"Bad Request: unsupported parse_mode {mode}")
        return None

    async def send_message(self, method: str, params: dict[str, str]) -> web.Response:
        text = params.get("text", "")
        if not text.strip():
            self.counters["rejected"] += 1
            return self.failure(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            self.counters["rejected"] += 1
            return self.failure(400, "Bad Request: message is too long")
        if error := self._check_parse_mode(params):
            return error
        return self.ok(self._message(params["chat_id"], text=text))

    async def send_media(self, method: str, params: dict[str, str]) -> web.Response:
        field = MEDIA[method]
        if not params.get(field):
            self.counters["rejected"] += 1
            return self.failure(400, f"Bad Request: there is no {field} in the request")
        caption = params.get("caption", "")
        if len(caption) > 1024:
            self.counters["rejected"] += 1
            return self.failure(400, "Bad Request: message caption is too long")
        if error := self._check_parse_mode(params):
            return error
        file_id = "AgAC" + self.new_id(nbytes=12)
        content: dict[str, Any] = (
            {"photo": [{"file_id": file_id, "width": 90, "height": 90, "file_size": 1200}]}
            if field == "photo"
            else {field: {"file_id": file_id}}
        )
        if caption:
            content["caption"] = caption
        return self.ok(self._message(params["chat_id"], **content))

    async def send_location(self, method: str, params: dict[str, str]) -> web.Response:
        try:
            latitude, longitude = float(params["latitude"]), float(params["longitude"])
        except (KeyError, ValueError):
            self.counters["rejected"] += 1
            return self.failure(400, "Bad Request: wrong latitude or longitude")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            self.counters["rejected"] += 1
            return self.failure(400, "Bad Request: wrong latitude or longitude")
        location = {"latitude": latitude, "longitude": longitude}
        return self.ok(self._message(params["chat_id"], location=location))

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        self._update_id += 1
        chat_id = int(sender) if sender.lstrip("-").isdigit() else sender
        number = self._message_ids.get(sender, 0) + 1
        self._message_ids[sender] = number
        message: dict[str, Any] = {
            "message_id": number,
            "from": {
                "id": chat_id,
                "is_bot": False,
                "first_name": str(extra.get("name", "Ada")),
                "language_code": "en",
            },
            "chat": {"id": chat_id, "first_name": str(extra.get("name", "Ada")), "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        return [CallbackEvent(url, {"update_id": self._update_id, "message": message})]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
        return [OutgoingCall(url, json.dumps(e.data).encode(), headers) for e in events]
