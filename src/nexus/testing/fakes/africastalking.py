"""Africa's Talking SMS, as a loopback fake.

- `POST /version1/messaging` (header `apiKey`, form `username`, `to` comma-separated,
  `message`, `from`, `enqueue`) → 201 `{SMSMessageData:{Message, Recipients:[...]}}`
  with one recipient per number: statusCode 101 Success, or 403 InvalidPhoneNumber,
  406 UserInBlacklist, ...; bad credentials → 401 text "The supplied authentication is
  invalid"; a missing field → 400 text.
- `GET /version1/user?username=` → `{UserData:{balance}}`.
- Delivery reports: form POST `id, status, phoneNumber, networkCode, failureReason,
  retryCount` to `callback_url` (AT has no per-message URL): `Sent` then `Success`, or
  `Failed` (`AbsentSubscriber`). Unsigned (the real AT signs nothing).

`error_code` values: a recipient statusCode (`401`...`407`, `500`...`502`) or `http:NNN`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from nexus.services.vas.encoding import analyze
from nexus.testing.fakes._base import (
    CallbackEvent,
    FakeProvider,
    OutgoingCall,
    json_response,
    received_of,
)

NUMBER = re.compile(r"^\+[1-9]\d{6,14}$")
RECIPIENT_STATUS = {
    100: "Processed",
    101: "Success",
    102: "Queued",
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    500: "InternalServerError",
    501: "GatewayError",
    502: "RejectedByGateway",
}


class AfricasTalkingFake(FakeProvider):
    name = "africastalking"
    default_credentials: ClassVar[dict[str, str]] = {
        "username": "sandbox",
        "api_key": "atsk_fake0123456789abcdef0123456789abcdef",
    }
    default_number = "21525"
    transient_code = "500"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/version1/messaging", self.messaging),
            web.get("/version1/user", self.user),
        ]

    def error_response(self, code: str) -> web.Response:
        status = int(code[5:]) if code.startswith("http:") else 500
        text = {401: "The supplied authentication is invalid"}.get(status, "Internal Server Error")
        return web.Response(status=status, text=text)

    def _authorized(self, request: web.Request, username: str) -> bool:
        key = request.headers.get("apiKey", "")
        return hmac.compare_digest(key.encode(), self.credentials["api_key"].encode()) & (
            username == self.credentials["username"]
        )

    async def user(self, request: web.Request) -> web.Response:
        if not self._authorized(request, request.query.get("username", "")):
            self.counters["unauthorized"] += 1
            return self.error_response("http:401")
        return json_response({"UserData": {"balance": "KES 1785.5000"}})

    async def messaging(self, request: web.Request) -> web.Response:
        form = received_of(request).form()
        if not self._authorized(request, form.get("username", "")):
            self.counters["unauthorized"] += 1
            return self.error_response("http:401")
        for required in ("username", "to", "message"):
            if not form.get(required):
                self.counters["rejected"] += 1
                return web.Response(
                    status=400, text=f"Request is missing required form field '{required}'"
                )
        injected = self.injected_error()
        if injected and injected.startswith("http:"):
            return self.error_response(injected)
        text = form["message"]
        parts = analyze(text).segments
        recipients: list[dict[str, Any]] = []
        total = 0.0
        for number in [n.strip() for n in form["to"].split(",") if n.strip()][:1000]:
            outcome = self.outcome(number) if NUMBER.match(number) else "invalid"
            code = (
                int(injected)
                if injected and injected.isdigit()
                else {"invalid": 403, "blocked": 406}.get(outcome, 101)
            )
            if code in (100, 101, 102):
                message_id = self.new_id("ATXid_")
                cost = 0.8 * parts
                total += cost
                recipients.append(
                    {
                        "statusCode": code,
                        "number": number,
                        "status": "Success",
                        "cost": f"KES {cost:.4f}",
                        "messageId": message_id,
                    }
                )
                self.record_accepted(messageId=message_id, number=number, text=text)
                if self.callback_url:
                    final = (
                        ("Failed", "AbsentSubscriber")
                        if outcome == "undeliverable"
                        else ("Success", "")
                    )
                    self.schedule(
                        [
                            CallbackEvent(
                                self.callback_url,
                                {
                                    "id": message_id,
                                    "status": status,
                                    "phoneNumber": number,
                                    "reason": reason,
                                },
                            )
                            for status, reason in (("Sent", ""), final)
                        ]
                    )
            else:
                self.counters["rejected"] += 1
                recipients.append(
                    {
                        "statusCode": code,
                        "number": number,
                        "status": RECIPIENT_STATUS.get(code, "Failed"),
                        "cost": "0",
                        "messageId": "None",
                    }
                )
        sent = sum(1 for r in recipients if r["statusCode"] in (100, 101, 102))
        return json_response(
            {
                "SMSMessageData": {
                    "Message": f"Sent to {sent}/{len(recipients)} Total Cost: KES {total:.4f}",
                    "Recipients": recipients,
                }
            },
            201,
        )

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        now = dt.datetime.now(dt.UTC)
        return [
            CallbackEvent(
                url,
                {
                    "inbound": {
                        "linkId": self.new_id(nbytes=8),
                        "text": text,
                        "to": to or self.default_number,
                        "id": self.new_id(nbytes=16),
                        "date": now.strftime("%Y-%m-%d %H:%M:%S"),
                        "from": sender,
                        "networkCode": "63902",
                    }
                },
            )
        ]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        calls = []
        for event in events:
            if "inbound" in event.data:
                form = event.data["inbound"]
            else:
                form = {
                    "id": event.data["id"],
                    "status": event.data["status"],
                    "phoneNumber": event.data["phoneNumber"],
                    "networkCode": "63902",
                    "retryCount": "0",
                }
                if event.data["reason"]:
                    form["failureReason"] = event.data["reason"]
            calls.append(OutgoingCall(url, urlencode(form).encode(), headers))
        return calls
