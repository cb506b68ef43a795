"""WhatsApp Cloud API (Meta Graph), as a loopback fake.

- `POST /{version}/{phone_number_id}/messages` (Bearer token, JSON) → `{messaging_product,
  contacts:[{input, wa_id}], messages:[{id:"wamid..."}]}`; validation errors are Graph
  errors `{error:{message, type, code, error_subcode, fbtrace_id}}` (code 100 and
  friends), a bad token 401 code 190.
- `GET /{version}/{phone_number_id}` → the phone number (health).
- Webhooks (to `callback_url`; the Cloud API has no per-message URL), signed
  `X-Hub-Signature-256` with the app secret: statuses `sent`, `delivered` (and `read`
  with `read_receipts`), or `failed` with errors[] — 131026 for numbers ending 0001,
  131047 (24-hour window) for non-template messages to numbers ending 0003 that have
  not written in. Numbers ending 0000 are refused at once (131009).
- `subscribe(url)` performs Meta's verification GET; `inbound()` posts a user message.

`error_code` values: Graph codes (130429, 131000, 131016, 131026, 131047, 190, 100, ...)
or `http:NNN`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web

from nexus.testing.fakes._base import (
    CallbackEvent,
    OutgoingCall,
    json_response,
    received_of,
)
from nexus.testing.fakes._meta import VERSION, MetaFake, graph_error

TYPES = frozenset(
    {
        "text",
        "template",
        "image",
        "document",
        "audio",
        "video",
        "sticker",
        "location",
        "interactive",
        "reaction",
        "contacts",
    }
)
MEDIA = frozenset({"image", "document", "audio", "video", "sticker"})
FAILURES = {
    131026: ("Message undeliverable", "Unable to deliver message."),
    131047: (
        "Re-engagement message",
        "More than 24 hours have passed since the recipient last replied to the sender number.",
    ),
}


class WhatsAppCloudFake(MetaFake):
    name = "whatsapp_cloud"
    default_credentials: ClassVar[dict[str, str]] = {
        "access_token": "EAAfake0123456789whatsapp",
        "phone_number_id": "106540352242922",
        "app_secret": "fake-app-secret-0123456789",
        "verify_token": "fake-verify-token",
        "waba_id": "102290129340398",
    }
    default_number = "+15550783881"
    transient_code = "131000"
    ERRORS: ClassVar[dict[str, tuple[int, str]]] = {
        **MetaFake.ERRORS,
        "130429": (130429, "(#130429) Rate limit hit"),
        "131000": (131000, "Something went wrong"),
        "131016": (131016, "(#131016) Service unavailable"),
        "131009": (131009, "(#131009) Parameter value is not valid"),
        "131026": (131026, "(#131026) Message undeliverable"),
        "131047": (131047, "(#131047) Re-engagement message"),
        "131056": (131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/{version}/{node}/messages", self.messages),
            web.get("/{version}/{node}", self.node),
        ]

    def _node_error(self, request: web.Request) -> web.Response | None:
        node = request.match_info["node"]
        if not VERSION.match(request.match_info["version"]):
            return graph_error(2500, "Unknown path components", status=400)
        if node != self.credentials["phone_number_id"]:
            return graph_error(
                100,
                f"Unsupported post request. Object with ID '{node}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation.",
                subcode=33,
                error_type="GraphMethodException",
            )
        return None

    async def node(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.unauthorized()
        if error := self._node_error(request):
            return error
        return json_response(
            {
                "verified_name": "Fake Business",
                "display_phone_number": self.default_number.lstrip("+"),
                "quality_rating": "GREEN",
                "id": self.credentials["phone_number_id"],
            }
        )

    def _invalid(self, message: str) -> web.Response:
        self.counters["rejected"] += 1
        return graph_error(100, message)

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return self._invalid("(#100) The parameter messaging_product is required.")
        if body.get("messaging_product") != "whatsapp":
            return self._invalid("(#100) The parameter messaging_product is required.")
        if not body.get("to"):
            return self._invalid("(#100) The parameter to is required.")
        kind = body.get("type", "text")
        if kind not in TYPES:
            return self._invalid(f"(#100) Param type must be one of {{{', '.join(sorted(TYPES))}}}")
        content = body.get(kind)
        if not isinstance(content, dict):
            return self._invalid(f"(#100) The parameter {kind} is required.")
        if kind == "text":
            text = content.get("body")
            if not isinstance(text, str) or not text:
                return self._invalid("(#100) The parameter text['body'] is required.")
            if len(text) > 4096:
                return self._invalid(
                    "(#100) Param text['body'] must be at most 4096 characters long."
                )
        elif kind == "template":
            language = content.get("language")
            if not content.get("name"):
                return self._invalid("(#100) The parameter template['name'] is required.")
            if not isinstance(language, dict) or not language.get("code"):
                return self._invalid(
                    "(#100) The parameter template['language']['code'] is required."
                )
        elif kind in MEDIA:
            if not content.get("link") and not content.get("id"):
                return self._invalid(f"(#100) Param {kind} must contain link or id")
        elif kind == "location" and not (
            isinstance(content.get("latitude"), int | float)
            and isinstance(content.get("longitude"), int | float)
        ):
            return self._invalid("(#100) The parameter location['latitude'] is required.")
        return None

    async def messages(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return self.unauthorized()
        if error := self._node_error(request):
            return error
        try:
            body = received_of(request).json()
        except ValueError:
            return self._invalid("(#100) Invalid parameter")
        if error := self._validate(body):
            return error
        if injected := self.injected_error():
            return self.error_response(injected)
        to = str(body["to"]).lstrip("+")
        outcome = self.outcome("+" + to)
        if outcome == "invalid":
            self.counters["rejected"] += 1
            return self.error_response("131009")
        wamid = "wamid." + base64.b64encode(self._rng.randbytes(30)).decode()
        kind = body.get("type", "text")
        self.record_accepted(id=wamid, to=to, type=kind, body=body)
        if self.callback_url:
            common = {
                "id": wamid,
                "recipient_id": to,
                "biz_opaque_callback_data": body.get("biz_opaque_callback_data"),
            }
            plan: list[dict[str, Any]] = []
            if outcome in ("undeliverable", "blocked"):
                plan = [{"status": "failed", "error": 131026}]
            elif outcome == "no_session" and kind != "template":
                plan = [{"status": "failed", "error": 131047}]
            else:
                plan = [{"status": "sent"}, {"status": "delivered"}]
                if self.read_receipts:
                    plan.append({"status": "read"})
            self.schedule([CallbackEvent(self.callback_url, {**common, **step}) for step in plan])
        answer: dict[str, Any] = {"id": wamid}
        if kind == "template":
            answer["message_status"] = "accepted"
        return json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": str(body["to"]), "wa_id": to}],
                "messages": [answer],
            }
        )

    def _status(self, data: dict[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": data["id"],
            "status": data["status"],
            "timestamp": str(int(time.time())),
            "recipient_id": data["recipient_id"],
        }
        if data.get("biz_opaque_callback_data"):
            status["biz_opaque_callback_data"] = data["biz_opaque_callback_data"]
        if data["status"] in ("sent", "delivered"):
            status["conversation"] = {"id": "c" + data["id"][-12:], "origin": {"type": "service"}}
            status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
        if data.get("error"):
            title, details = FAILURES[data["error"]]
            status["errors"] = [
                {
                    "code": data["error"],
                    "title": title,
                    "message": title,
                    "error_data": {"details": details},
                    "href": "https://developers.facebook.com/docs/whatsapp/",
                }
            ]
        return status

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        wa_id = sender.lstrip("+")
        message: dict[str, Any] = {
            "from": wa_id,
            "id": "wamid." + base64.b64encode(self._rng.randbytes(30)).decode(),
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        if extra.get("image_id"):
            message.update(
                type="image",
                image={
                    "id": extra["image_id"],
                    "mime_type": "image/jpeg",
                    "sha256": "0" * 64,
                    "caption": text,
                },
            )
            message.pop("text")
        return [
            CallbackEvent(
                url, {"inbound": message, "profile": extra.get("profile_name", "Fake User")}
            )
        ]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.default_number.lstrip("+"),
                "phone_number_id": self.credentials["phone_number_id"],
            },
        }
        statuses = [self._status(e.data) for e in events if "inbound" not in e.data]
        messages = [e.data["inbound"] for e in events if "inbound" in e.data]
        if statuses:
            value["statuses"] = statuses
        if messages:
            value["contacts"] = [
                {"profile": {"name": e.data["profile"]}, "wa_id": e.data["inbound"]["from"]}
                for e in events
                if "inbound" in e.data
            ]
            value["messages"] = messages
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": self.credentials["waba_id"],
                    "changes": [{"value": value, "field": "messages"}],
                }
            ],
        }
        return [self.signed(url, payload)]
