"""Vonage SMS API, as a loopback fake.

- `POST /sms/json` (form or JSON with `api_key`, `api_secret`, `from`, `to`, `text`,
  `type`, `callback`, `client-ref`, `ttl`) → 200 `{"message-count", messages:[...]}`,
  one entry per segment. Errors are in the body's `status` as on the real API ("1"
  throttled, "2" missing params, "3" invalid params, "4" bad credentials, "7" barred...).
- `GET /account/get-balance` → `{value, autoReload}`; 401 on bad credentials.
- `GET /v2/reports/records` (the synchronous Reports API, HTTP Basic with the API key
  and secret; `account_id`, `product=SMS`, `direction=outbound`, then `id` or
  `date_start`/`date_end` with optional `client_ref`) → `{request_status, records:[…]}`,
  one record per segment, its `status` moved on as receipts are played (lost or not);
  errors as problem JSON `{type, title, detail}`.
- Delivery receipts, one per segment, to `callback` (else `callback_url`) as form POST
  (`dlr_method`: "POST", "GET" or "POST-JSON"); signed with `timestamp`, `nonce`, `sig`
  when the credentials have a `signature_secret` (`signature_method` knob).

Text that is not GSM-7 sent without `type=unicode` is accepted but counted in
`counters["garbled"]` (the real network would garble it).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from nexus.services.vas.encoding import analyze, is_gsm7
from nexus.testing.fakes._base import (
    CallbackEvent,
    FakeProvider,
    OutgoingCall,
    json_response,
    read_params,
)

NUMBER = re.compile(r"^[1-9]\d{6,14}$")
ERROR_TEXT = {
    "1": "Throughput Rate Exceeded - please wait [ 1000 ] and retry",
    "2": "Missing {} param",
    "3": "Invalid {} param",
    "4": "Bad Credentials",
    "5": "Internal Error",
    "6": "Unroutable message - rejected",
    "7": "Number barred",
    "9": "Quota Exceeded - rejected",
    "15": "Illegal Sender Address - rejected",
    "29": "Non-Whitelisted Destination - rejected",
}


def vonage_sig(params: dict[str, str], secret: str, method: str) -> str:
    """Sorted `&k=v` pairs (values' `&`/`=` → `_`); md5hash appends the secret and hashes,
    the other methods are HMACs keyed with the secret. Lower-case hex."""
    text = "".join("&" + k + "=" + re.sub("[&=]", "_", v) for k, v in sorted(params.items()))
    if method == "md5hash":
        return hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), text.encode(), getattr(hashlib, method)).hexdigest()


class VonageFake(FakeProvider):
    name = "vonage"
    default_credentials: ClassVar[dict[str, str]] = {
        "api_key": "fakekey1",
        "api_secret": "FakeSecret0123456",
    }
    default_number = "447700900000"
    transient_code = "1"
    KNOBS = (*FakeProvider.KNOBS, "dlr_method", "signature_method")

    def __init__(
        self, *, dlr_method: str = "POST", signature_method: str = "md5hash", **knobs: Any
    ) -> None:
        super().__init__(**knobs)
        self.dlr_method = dlr_method
        self.signature_method = signature_method

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/sms/json", self.send_sms),
            web.get("/account/get-balance", self.balance),
            web.get("/v2/reports/records", self.report_records),
        ]

    def _authorized(self, params: dict[str, str]) -> bool:
        return hmac.compare_digest(
            params.get("api_key", "").encode(), self.credentials["api_key"].encode()
        ) & hmac.compare_digest(
            params.get("api_secret", "").encode(), self.credentials["api_secret"].encode()
        )

    def error_response(self, code: str) -> web.Response:
        if code.startswith("http:"):
            return json_response(
                {"error-code": code[5:], "error-code-label": "error"}, int(code[5:])
            )
        return self._refused(code)

    def _refused(self, code: str, field: str = "") -> web.Response:
        text = ERROR_TEXT.get(code, "Error").format(field)
        return json_response(
            {"message-count": "1", "messages": [{"status": code, "error-text": text}]}
        )

    async def balance(self, request: web.Request) -> web.Response:
        if not self._authorized(dict(request.query)):
            self.counters["unauthorized"] += 1
            return json_response(
                {"error-code": "401", "error-code-label": "authentication failed"}, 401
            )
        return json_response({"value": 10.28, "autoReload": False})

    def _basic_authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self._authorized({"api_key": key, "api_secret": secret})

    async def report_records(self, request: web.Request) -> web.Response:
        if not self._basic_authorized(request):
            self.counters["unauthorized"] += 1
            return _problem(401, "Unauthorized", "Invalid credentials.")
        if injected := self.injected_error():
            status = int(injected[5:]) if injected.startswith("http:") else 500
            return _problem(status, "Error", "Injected error.")
        query = request.query
        if query.get("account_id") != self.credentials["api_key"]:
            return _problem(403, "Forbidden", "The account is not yours.")
        if query.get("product") != "SMS" or query.get("direction") not in ("outbound", "inbound"):
            return _problem(400, "Invalid parameters", "product and direction are required.")
        ids = set(filter(None, query.get("id", "").split(",")))
        try:
            start = _iso_time(query.get("date_start"))
            end = _iso_time(query.get("date_end"))
        except ValueError:
            return _problem(400, "Invalid parameters", "Dates must be ISO 8601.")
        if not ids and (start is None or end is None):
            return _problem(400, "Invalid parameters", "Give id, or date_start and date_end.")
        client_ref = query.get("client_ref")
        records = [
            record
            for record in self.lookups.values()
            if (not ids or record["message_id"] in ids)
            and (client_ref is None or record.get("client_ref") == client_ref)
            and (start is None or end is None or start <= _received(record) <= end)
        ]
        return json_response(
            {
                "request_id": str(uuid.uuid4()),
                "request_status": "SUCCESS",
                "received_at": _iso_now(),
                "price": 0,
                "currency": "EUR",
                "items_count": len(records),
                "records": records,
            }
        )

    def advance(self, event: CallbackEvent) -> None:
        record = self.lookups.get(str(event.data.get("messageId")))
        if record is None or "status" not in event.data:
            return
        record["status"] = event.data["status"]
        record["error_code"] = event.data.get("err-code", "0")
        record["error_code_description"] = "Delivered" if record["error_code"] == "0" else "Absent"
        record["date_finalized"] = _iso_now()

    async def send_sms(self, request: web.Request) -> web.Response:
        params = await read_params(request)
        if not self._authorized(params):
            self.counters["unauthorized"] += 1
            return self._refused("4")
        for required in ("from", "to", "text"):
            if not params.get(required):
                self.counters["rejected"] += 1
                return self._refused("2", required)
        if injected := self.injected_error():
            return self.error_response(injected)
        to, text = params["to"], params["text"]
        outcome = self.outcome(to) if NUMBER.match(to) else "invalid"
        if outcome == "invalid":
            self.counters["rejected"] += 1
            return self._refused("3", "to")
        if outcome == "blocked":
            self.counters["rejected"] += 1
            return self._refused("7")
        unicode = params.get("type") == "unicode"
        if not unicode and not is_gsm7(text):
            self.counters["garbled"] += 1
        segments = analyze(text).segments
        client_ref = params.get("client-ref")
        parts = []
        for _ in range(segments):
            part = {
                "to": to,
                "message-id": self.new_id(nbytes=8).upper(),
                "status": "0",
                "remaining-balance": "10.28000000",
                "message-price": "0.03330000",
                "network": "23410",
            }
            if client_ref:
                part["client-ref"] = client_ref
            parts.append(part)
        self.record_accepted(to=to, text=text, type=params.get("type", "text"), parts=parts)
        for part in parts:
            self.keep(
                part["message-id"],
                {
                    "account_id": self.credentials["api_key"],
                    "message_id": part["message-id"],
                    "client_ref": client_ref,
                    "direction": "outbound",
                    "from": params["from"],
                    "to": to,
                    "network": "23410",
                    "status": "submitted",
                    "error_code": None,
                    "error_code_description": None,
                    "date_received": _iso_now(),
                    "date_finalized": None,
                    "total_price": part["message-price"],
                    "currency": "EUR",
                },
            )
        url = params.get("callback") or self.callback_url
        if url:
            status, error = ("failed", "2") if outcome == "undeliverable" else ("delivered", "0")
            self.schedule(
                [
                    CallbackEvent(
                        url,
                        {
                            "msisdn": to,
                            "to": params["from"],
                            "network-code": "23410",
                            "messageId": part["message-id"],
                            "price": part["message-price"],
                            "status": status,
                            "scts": dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M"),
                            "err-code": error,
                            **({"client-ref": client_ref} if client_ref else {}),
                            "message-timestamp": dt.datetime.now(dt.UTC).strftime(
                                "%Y-%m-%d %H:%M:%S"
                            ),
                        },
                    )
                    for part in parts
                ]
            )
        return json_response({"message-count": str(len(parts)), "messages": parts})

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        return [
            CallbackEvent(
                url,
                {
                    "msisdn": sender.lstrip("+"),
                    "to": (to or self.default_number).lstrip("+"),
                    "messageId": self.new_id(nbytes=8).upper(),
                    "text": text,
                    "type": "text" if is_gsm7(text) else "unicode",
                    "keyword": text.split()[0].upper() if text.split() else "",
                    "message-timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                },
            )
        ]

    def _sign(self, params: dict[str, str]) -> dict[str, str]:
        secret = self.credentials.get("signature_secret")
        if not secret:
            return params
        signed = {**params, "timestamp": str(int(time.time())), "nonce": str(uuid.uuid4())}
        signed["sig"] = vonage_sig(signed, secret, self.signature_method)
        return signed

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        calls = []
        for event in events:
            params = self._sign({k: str(v) for k, v in event.data.items()})
            if self.dlr_method == "GET":
                parts = urlsplit(url)
                query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
                calls.append(OutgoingCall(urlunsplit(parts._replace(query=query)), method="GET"))
            elif self.dlr_method == "POST-JSON":
                calls.append(
                    OutgoingCall(
                        url, json.dumps(params).encode(), {"Content-Type": "application/json"}
                    )
                )
            else:
                calls.append(
                    OutgoingCall(
                        url,
                        urlencode(params).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"},
                    )
                )
        return calls


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _received(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["date_received"].replace("Z", "+00:00"))


def _problem(status: int, title: str, detail: str) -> web.Response:
    kind = f"https://developer.vonage.com/api-errors#{status}"
    return json_response({"type": kind, "title": title, "detail": detail}, status)
