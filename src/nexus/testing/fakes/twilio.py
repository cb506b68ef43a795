"""Twilio Programmable Messaging (SMS and WhatsApp), as a loopback fake.

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form, HTTP Basic) → 201 message
  resource, or Twilio's error JSON `{code, message, more_info, status}`.
- `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json` (the message resource, its
  `status` moved on as the callbacks are played, lost or not), `GET .../{AccountSid}.json`.
- Status callbacks (form POST to `StatusCallback`, else `callback_url`) signed with
  `X-Twilio-Signature` (HMAC-SHA1 of the auth token over URL + sorted params): `sent`,
  then `delivered` (and `read` on WhatsApp with `read_receipts`) or `undelivered`.
- `inbound()` posts an incoming SMS / WhatsApp message the same way.

Error codes for `error_code`: 21211 invalid To, 21610 unsubscribed, 21602/21603/21604
missing fields, 20003 bad credentials (401), 20429 rate limit (429), 20500 (500),
20503 (503), `http:NNN` bare status.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from email.utils import formatdate
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

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
API = "/2010-04-01/Accounts/{sid}"
HTTP_STATUS = {"20003": 401, "20404": 404, "20429": 429, "20500": 500, "20503": 503}
MESSAGES = {
    "20003": "Authenticate",
    "20404": "The requested resource was not found",
    "20429": "Too Many Requests",
    "20500": "Internal Server Error",
    "20503": "Service unavailable",
    "21211": "The 'To' number is not a valid phone number.",
    "21602": "Message body is required.",
    "21603": "A 'From' phone number is required.",
    "21604": "A 'To' phone number is required.",
    "21610": "Attempt to send to unsubscribed recipient",
    "21617": "The concatenated message body exceeds the 1600 character limit.",
    "21910": "Invalid 'From' and 'To' pair. 'From' and 'To' should be of the same channel.",
}


def twilio_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioFake(FakeProvider):
    name = "twilio"
    default_credentials: ClassVar[dict[str, str]] = {
        "account_sid": "AC" + "fa4e" * 8,
        "auth_token": "fake-twilio-auth-token-0123456789",
    }
    transient_code = "20500"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(API + "/Messages.json", self.create_message),
            web.get(API + "/Messages/{msid}.json", self.fetch_message),
            web.get(API + ".json", self.fetch_account),
        ]

    def error_response(self, code: str) -> web.Response:
        if code.startswith("http:"):
            status = int(code[5:])
            code = {401: "20003", 404: "20404", 429: "20429", 500: "20500"}.get(status, "20503")
        else:
            status = HTTP_STATUS.get(code, 400)
        body = {
            "code": int(code) if code.isdigit() else code,
            "message": MESSAGES.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return json_response(body, status)

    def _authorized(self, request: web.Request) -> bool:
        sid = self.credentials["account_sid"]
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic ") or request.match_info["sid"] != sid:
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, sid) & hmac.compare_digest(
            password, self.credentials["auth_token"]
        )

    async def fetch_account(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("20003")
        sid = self.credentials["account_sid"]
        return json_response(
            {"sid": sid, "friendly_name": "Fake account", "status": "active", "type": "Full"}
        )

    async def fetch_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("20003")
        message = self.lookups.get(request.match_info["msid"])
        if message is None:
            return self.error_response("20404")
        return json_response(message)

    def advance(self, event: CallbackEvent) -> None:
        message = self.lookups.get(str(event.data.get("MessageSid")))
        if message is None or "MessageStatus" not in event.data:
            return
        status = event.data["MessageStatus"]
        message["status"] = status
        message["date_updated"] = formatdate(usegmt=True)
        if status == "sent":
            message["date_sent"] = message["date_updated"]
            message["price"] = "-0.00790"
        if event.data.get("ErrorCode"):
            message["error_code"] = int(event.data["ErrorCode"])
            message["error_message"] = "Unknown destination handset"

    async def create_message(self, request: web.Request) -> web.Response:
        received = received_of(request)
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("20003")
        items = received.form_items()
        form = dict(items)
        media = [value for name, value in items if name == "MediaUrl"]
        to, sender = form.get("To", ""), form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        whatsapp = to.startswith("whatsapp:")
        code = None
        if not to:
            code = "21604"
        elif not sender and not service:
            code = "21603"
        elif not body and not media and not form.get("ContentSid"):
            code = "21602"
        elif len(body) > 1600:
            code = "21617"
        elif sender and sender.startswith("whatsapp:") != whatsapp:
            code = "21910"
        elif not E164.match(to.removeprefix("whatsapp:")):
            code = "21211"
        if code:
            self.counters["rejected"] += 1
            return self.error_response(code)
        if injected := self.injected_error():
            return self.error_response(injected)
        number = to.removeprefix("whatsapp:")
        outcome = self.outcome(number)
        if outcome == "invalid":
            self.counters["rejected"] += 1
            return self.error_response("21211")
        if outcome == "blocked":
            self.counters["rejected"] += 1
            return self.error_response("21610")
        sid = self.new_id("SM")
        account = self.credentials["account_sid"]
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": account,
            "messaging_service_sid": service or None,
            "to": to,
            "from": sender or None,
            "body": body,
            "status": "accepted" if service and not sender else "queued",
            "num_segments": "1" if whatsapp else str(analyze(body).segments),
            "num_media": str(len(media)),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": formatdate(usegmt=True),
            "date_sent": None,
            "date_updated": formatdate(usegmt=True),
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        self.record_accepted(**resource)
        self.keep(sid, resource)
        url = form.get("StatusCallback") or self.callback_url
        if url:
            base = {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": account,
                "From": sender or self.default_number,
                "To": to,
                "ApiVersion": "2010-04-01",
            }
            if service:
                base["MessagingServiceSid"] = service
            statuses = ["sent"]
            if outcome == "undeliverable":
                statuses.append("undelivered")
            else:
                statuses.append("delivered")
                if whatsapp and self.read_receipts:
                    statuses.append("read")
            events = []
            for status in statuses:
                data = {**base, "MessageStatus": status, "SmsStatus": status}
                if status == "undelivered":
                    data["ErrorCode"] = "30003"
                events.append(CallbackEvent(url, data))
            self.schedule(events)
        return json_response(resource, 201)

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        whatsapp = bool(extra.get("whatsapp"))
        prefix = "whatsapp:" if whatsapp else ""
        sid = self.new_id("SM")
        data: dict[str, str] = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": text,
            "To": prefix + (to or self.default_number),
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.credentials["account_sid"],
            "From": prefix + sender,
            "ApiVersion": "2010-04-01",
        }
        media = extra.get("media") or []
        data["NumMedia"] = str(len(media))
        for i, (media_url, content_type) in enumerate(media):
            data[f"MediaUrl{i}"] = media_url
            data[f"MediaContentType{i}"] = content_type
        if whatsapp:
            data["ProfileName"] = str(extra.get("profile_name", "Fake User"))
            data["WaId"] = sender.lstrip("+")
        return [CallbackEvent(url, data)]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        calls = []
        for event in events:
            params = [(k, str(v)) for k, v in event.data.items()]
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.credentials["auth_token"], url, params),
                "I-Twilio-Idempotency-Token": self.new_id(nbytes=12),
                "User-Agent": "TwilioProxy/1.1",
            }
            calls.append(OutgoingCall(url, urlencode(params).encode(), headers))
        return calls
