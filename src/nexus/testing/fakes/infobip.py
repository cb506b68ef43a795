"""Infobip SMS, as a loopback fake.

- `POST /sms/2/text/advanced` (`Authorization: App <apiKey>`, JSON; several messages and
  destinations per request) → `{bulkId, messages:[{to, messageId, smsCount, status}]}`;
  a refused destination has a REJECTED status group in a 200 answer, as on the real API.
- `GET /sms/1/logs?messageId=…` (also `bulkId`, `limit`): `{results:[…]}`, logs shaped
  like delivery reports plus `text`, their status moved on as reports are played (lost or
  not).
- `GET /account/1/balance`.
- Request errors: `{requestError:{serviceException:{messageId, text}}}` (401
  UNAUTHORIZED, 400 BAD_REQUEST, 429 TOO_MANY_REQUESTS, 500 GENERAL_ERROR).
- Delivery reports: JSON `{results:[...]}` POSTed to each message's `notifyUrl` (else
  `callback_url`), gathered per URL up to 100 results per request (`callback_batch`).
  No signature (Infobip has none); the URL carries the account's token.

`error_code` values: the request-level codes above, `http:NNN`, or a per-destination
REJECTED status name such as `REJECTED_NOT_ENOUGH_CREDITS`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web

from nexus.services.vas.encoding import analyze
from nexus.testing.fakes._base import (
    CallbackEvent,
    FakeProvider,
    OutgoingCall,
    json_response,
    received_of,
)

NUMBER = re.compile(r"^\+?[1-9]\d{6,14}$")
REQUEST_ERRORS = {
    "UNAUTHORIZED": (401, "Invalid login details"),
    "BAD_REQUEST": (400, "Bad request"),
    "TOO_MANY_REQUESTS": (429, "Too many requests"),
    "GENERAL_ERROR": (500, "Something went wrong. Please contact support."),
    "SERVICE_UNAVAILABLE": (503, "Service temporarily unavailable"),
}
PENDING = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 26,
    "name": "PENDING_ACCEPTED",
    "description": "Message sent to next instance",
}
DELIVERED = {
    "groupId": 3,
    "groupName": "DELIVERED",
    "id": 5,
    "name": "DELIVERED_TO_HANDSET",
    "description": "Message delivered to handset",
}
UNDELIVERED = {
    "groupId": 2,
    "groupName": "UNDELIVERABLE",
    "id": 9,
    "name": "UNDELIVERABLE_NOT_DELIVERED",
    "description": "Message sent not delivered",
}
NO_ERROR = {
    "groupId": 0,
    "groupName": "OK",
    "id": 0,
    "name": "NO_ERROR",
    "description": "No Error",
    "permanent": False,
}
ABSENT = {
    "groupId": 1,
    "groupName": "HANDSET_ERRORS",
    "id": 27,
    "name": "EC_ABSENT_SUBSCRIBER",
    "description": "Absent Subscriber",
    "permanent": False,
}


def rejected(name: str, description: str, id_: int = 51) -> dict[str, Any]:
    return {
        "groupId": 5,
        "groupName": "REJECTED",
        "id": id_,
        "name": name,
        "description": description,
    }


def infobip_time(when: dt.datetime | None = None) -> str:
    when = when or dt.datetime.now(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


class InfobipFake(FakeProvider):
    name = "infobip"
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "fake-infobip-api-key-0123456789"}
    default_number = "+447491163443"
    transient_code = "GENERAL_ERROR"
    default_callback_batch = 100

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/sms/2/text/advanced", self.send_advanced),
            web.get("/sms/1/logs", self.logs),
            web.get("/account/1/balance", self.balance),
        ]

    def error_response(self, code: str) -> web.Response:
        if code.startswith("http:"):
            status = int(code[5:])
            code = {
                401: "UNAUTHORIZED",
                400: "BAD_REQUEST",
                429: "TOO_MANY_REQUESTS",
                500: "GENERAL_ERROR",
            }.get(status, "SERVICE_UNAVAILABLE")
        status, text = REQUEST_ERRORS.get(code, (400, "Bad request"))
        return json_response(
            {"requestError": {"serviceException": {"messageId": code, "text": text}}}, status
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        return scheme == "App" and hmac.compare_digest(
            key.encode(), self.credentials["api_key"].encode()
        )

    async def balance(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("UNAUTHORIZED")
        return json_response({"balance": 47.79, "currency": "EUR"})

    async def logs(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("UNAUTHORIZED")
        wanted = request.query.get("messageId")
        bulk = request.query.get("bulkId")
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "50"))))
        except ValueError:
            return self.error_response("BAD_REQUEST")
        found = [
            log
            for log in reversed(self.lookups.values())
            if (wanted is None or log["messageId"] == wanted)
            and (bulk is None or log["bulkId"] == bulk)
        ]
        return json_response({"results": found[:limit]})

    def advance(self, event: CallbackEvent) -> None:
        log = self.lookups.get(str(event.data.get("messageId")))
        if log is not None and "outcome" in event.data:
            log.update(self._result(event.data))

    async def send_advanced(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return self.error_response("UNAUTHORIZED")
        try:
            body = received_of(request).json()
        except ValueError:
            body = None
        messages = body.get("messages") if isinstance(body, dict) else None
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict)
                and isinstance(m.get("destinations"), list)
                and m["destinations"]
                for m in messages
            )
        ):
            self.counters["rejected"] += 1
            return self.error_response("BAD_REQUEST")
        injected = self.injected_error()
        if injected and (injected in REQUEST_ERRORS or injected.startswith("http:")):
            return self.error_response(injected)
        bulk_id = str(body.get("bulkId") or self.new_id(nbytes=10))
        answers: list[dict[str, Any]] = []
        events: list[CallbackEvent] = []
        for message in messages:
            text = message.get("text")
            url = message.get("notifyUrl") or self.callback_url
            for destination in message["destinations"]:
                to = str(destination.get("to", "")) if isinstance(destination, dict) else ""
                message_id = (
                    str(destination.get("messageId") or self.new_id(nbytes=12))
                    if isinstance(destination, dict)
                    else self.new_id(nbytes=12)
                )
                sms_count = analyze(text).segments if isinstance(text, str) else 1
                answer: dict[str, Any] = {"to": to, "messageId": message_id, "smsCount": sms_count}
                status: dict[str, Any]
                outcome = self.outcome(to) if NUMBER.match(to) else "invalid"
                if not to:
                    status = rejected("MISSING_TO", "Missing destination.")
                elif not isinstance(text, str):
                    status = rejected("REJECTED_INVALID_TEXT", "Text is missing.", 53)
                elif injected:
                    status = rejected(injected, injected.replace("_", " ").capitalize(), 12)
                elif outcome == "invalid":
                    status = rejected("REJECTED_DESTINATION", "Invalid destination address.", 52)
                elif outcome == "blocked":
                    status = rejected("REJECTED_DESTINATION_BLOCKED", "Destination is blocked.", 10)
                else:
                    status = PENDING
                    self.record_accepted(bulkId=bulk_id, **answer, text=text)
                    self.keep(
                        message_id,
                        {
                            "bulkId": bulk_id,
                            "messageId": message_id,
                            "to": to.lstrip("+"),
                            "from": message.get("from"),
                            "text": text,
                            "sentAt": infobip_time(),
                            "doneAt": None,
                            "smsCount": sms_count,
                            "mccMnc": "22801",
                            "price": {"pricePerMessage": 0, "currency": "EUR"},
                            "status": PENDING,
                            "error": NO_ERROR,
                        },
                    )
                    if url:
                        events.append(
                            CallbackEvent(
                                url,
                                {
                                    "bulkId": bulk_id,
                                    "messageId": message_id,
                                    "to": to.lstrip("+"),
                                    "from": message.get("from"),
                                    "smsCount": sms_count,
                                    "callbackData": message.get("callbackData"),
                                    "outcome": outcome,
                                },
                            )
                        )
                if status["groupId"] == 5:
                    self.counters["rejected"] += 1
                answer["status"] = status
                answers.append(answer)
        # Reports of one request go out together (each its own play), batched per URL.
        for event in events:
            self.schedule([event])
        return json_response({"bulkId": bulk_id, "messages": answers})

    def _result(self, data: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        delivered = data["outcome"] != "undeliverable"
        return {
            "bulkId": data["bulkId"],
            "messageId": data["messageId"],
            "to": data["to"],
            "from": data.get("from"),
            "sentAt": infobip_time(now - dt.timedelta(seconds=1)),
            "doneAt": infobip_time(now),
            "smsCount": data["smsCount"],
            "mccMnc": "22801",
            "callbackData": data.get("callbackData"),
            "price": {"pricePerMessage": 0.01, "currency": "EUR"},
            "status": DELIVERED if delivered else UNDELIVERED,
            "error": NO_ERROR if delivered else ABSENT,
        }

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        return [
            CallbackEvent(
                url,
                {
                    "inbound": {
                        "messageId": self.new_id(nbytes=12),
                        "from": sender.lstrip("+"),
                        "to": (to or self.default_number).lstrip("+"),
                        "text": text,
                        "cleanText": text,
                        "keyword": text.split()[0].upper() if text.split() else "",
                        "receivedAt": infobip_time(),
                        "smsCount": 1,
                        "price": {"pricePerMessage": 0, "currency": "EUR"},
                        "callbackData": None,
                    }
                },
            )
        ]

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        reports = [self._result(e.data) for e in events if "inbound" not in e.data]
        inbound = [e.data["inbound"] for e in events if "inbound" in e.data]
        headers = {"Content-Type": "application/json"}
        calls = []
        if reports:
            calls.append(OutgoingCall(url, json.dumps({"results": reports}).encode(), headers))
        if inbound:
            body = {"results": inbound, "messageCount": len(inbound), "pendingMessageCount": 0}
            calls.append(OutgoingCall(url, json.dumps(body).encode(), headers))
        return calls
