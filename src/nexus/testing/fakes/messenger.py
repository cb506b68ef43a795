"""Messenger Send API (Meta Graph), as a loopback fake.

- `POST /{version}/{page_id|me}/messages?access_token=…` JSON `{recipient:{id},
  messaging_type, tag?, message:{text | attachment}}` → `{recipient_id, message_id}`;
  Graph errors otherwise: 100/2018001 no matching user (PSID ending 0000), 551/1545041
  person unavailable (0002), 10/2018278 outside the 24-hour window (0003, unless
  tagged or the user wrote in), 100 for bad parameters, 190 (401) for a bad token.
- `GET /{version}/me` → the page (health).
- Webhooks (to `callback_url`), signed `X-Hub-Signature-256`: `delivery {mids,
  watermark}` and, with `read_receipts`, `read {watermark}`. PSIDs ending 0001 never get
  a delivery. `subscribe(url)` performs the verification GET; `inbound()` posts a user
  message (and opens the 24-hour window).

`error_code` values: 613 (rate limit), 2 (temporary), 4, 190, 100, 10, 551 or `http:NNN`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web

from nexus.testing.fakes._base import CallbackEvent, OutgoingCall, json_response, received_of
from nexus.testing.fakes._meta import VERSION, MetaFake, graph_error

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
ATTACHMENTS = ("image", "video", "audio", "file", "template")


class MessengerFake(MetaFake):
    name = "messenger"
    auth_credential = "page_access_token"
    default_credentials: ClassVar[dict[str, str]] = {
        "page_access_token": "EAAfake0123456789messenger",
        "page_id": "1234567890123",
        "app_secret": "fake-app-secret-messenger-0123",
        "verify_token": "fake-verify-token",
    }
    default_number = "1234567890123"
    transient_code = "2"
    ERRORS: ClassVar[dict[str, tuple[int, str]]] = {
        **MetaFake.ERRORS,
        "10": (10, "(#10) This message is sent outside of allowed window."),
        "551": (551, "(#551) This person isn't available right now."),
        "200": (200, "(#200) Permissions error"),
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/{version}/{node}/messages", self.messages),
            web.get("/{version}/{node}", self.node),
        ]

    def _node_ok(self, request: web.Request) -> bool:
        return bool(VERSION.match(request.match_info["version"])) and request.match_info[
            "node"
        ] in ("me", self.credentials["page_id"])

    async def node(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.unauthorized()
        if not self._node_ok(request):
            return graph_error(100, "(#100) Unknown node", error_type="GraphMethodException")
        return json_response({"name": "Fake Page", "id": self.credentials["page_id"]})

    def _invalid(self, message: str, subcode: int | None = None) -> web.Response:
        self.counters["rejected"] += 1
        return graph_error(100, message, subcode=subcode)

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return self._invalid("(#100) Invalid parameter")
        recipient = body.get("recipient")
        if not isinstance(recipient, dict) or not recipient.get("id"):
            return self._invalid("(#100) The parameter recipient is required")
        if body.get("messaging_type") not in MESSAGING_TYPES:
            return self._invalid(
                "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"
            )
        if body["messaging_type"] == "MESSAGE_TAG" and body.get("tag") not in TAGS:
            return self._invalid(f"(#100) Param tag must be one of {{{', '.join(TAGS)}}}")
        message = body.get("message")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return self._invalid("(#100) Must send either message or sender action")
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > 2000):
            return self._invalid(
                "(#100) Length of param message[text] must be less than or equal to 2000"
            )
        attachment = message.get("attachment")
        if attachment is not None and (
            not isinstance(attachment, dict)
            or attachment.get("type") not in ATTACHMENTS
            or not isinstance(attachment.get("payload"), dict)
        ):
            return self._invalid("(#100) Invalid attachment")
        return None

    async def messages(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.unauthorized()
        if not self._node_ok(request):
            return graph_error(100, "(#100) Unknown node", error_type="GraphMethodException")
        try:
            body = received_of(request).json()
        except ValueError:
            body = None
        if error := self._validate(body):
            return error
        if injected := self.injected_error():
            return self.error_response(injected)
        psid = str(body["recipient"]["id"])
        outcome = self.outcome(psid)
        if outcome == "invalid":
            return self._invalid("(#100) No matching user found", 2018001)
        if outcome == "blocked":
            self.counters["rejected"] += 1
            return graph_error(551, self.ERRORS["551"][1], subcode=1545041)
        if outcome == "no_session" and body["messaging_type"] != "MESSAGE_TAG":
            self.counters["rejected"] += 1
            return graph_error(10, self.ERRORS["10"][1], subcode=2018278)
        mid = "m_" + self.new_id(nbytes=24)
        self.record_accepted(message_id=mid, recipient=psid, body=body)
        if self.callback_url and outcome != "undeliverable":
            plan = [{"kind": "delivery", "mid": mid, "psid": psid}]
            if self.read_receipts:
                plan.append({"kind": "read", "psid": psid})
            self.schedule([CallbackEvent(self.callback_url, step) for step in plan])
        return json_response({"recipient_id": psid, "message_id": mid})

    def _messaging(self, data: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time() * 1000)
        page = self.credentials["page_id"]
        if data["kind"] == "inbound":
            return {
                "sender": {"id": data["psid"]},
                "recipient": {"id": page},
                "timestamp": now,
                "message": data["message"],
            }
        event: dict[str, Any] = {
            "sender": {"id": data["psid"]},
            "recipient": {"id": page},
            "timestamp": now,
        }
        if data["kind"] == "delivery":
            event["delivery"] = {"mids": [data["mid"]], "watermark": now}
        else:
            event["read"] = {"watermark": now}
        return event

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        message: dict[str, Any] = {"mid": "m_" + self.new_id(nbytes=24), "text": text}
        if extra.get("image_url"):
            message["attachments"] = [{"type": "image", "payload": {"url": extra["image_url"]}}]
        return [CallbackEvent(url, {"kind": "inbound", "psid": sender, "message": message})]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        payload = {
            "object": "page",
            "entry": [
                {
                    "id": self.credentials["page_id"],
                    "time": int(time.time() * 1000),
                    "messaging": [self._messaging(e.data) for e in events],
                }
            ],
        }
        return [self.signed(url, payload)]
