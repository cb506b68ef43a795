"""What the two Meta fakes (WhatsApp Cloud, Messenger) share: Graph API error bodies,
signed webhook deliveries (`X-Hub-Signature-256`) and the subscription handshake."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from nexus.testing.fakes._base import FakeProvider, OutgoingCall, is_loopback_url, json_response

VERSION = re.compile(r"^v\d+\.\d+$")
TRANSIENT = frozenset({1, 2, 131000, 131016, 133004})
HTTP_STATUS = {190: 401, 1: 500, 2: 503, 131000: 500, 131016: 503, 133004: 503}


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    error_type: str = "OAuthException",
    status: int | None = None,
    title: str | None = None,
) -> web.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": error_type,
        "code": code,
        "is_transient": code in TRANSIENT,
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if title:
        error["error_user_title"] = title
    return json_response({"error": error}, status or HTTP_STATUS.get(code, 400))


def bearer_or_query_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:]
    return request.query.get("access_token", "")


class MetaFake(FakeProvider):
    """Base of the Graph API fakes: token check, signed webhooks, handshake."""

    auth_credential = "access_token"
    ERRORS: ClassVar[dict[str, tuple[int, str]]] = {
        "190": (190, "Invalid OAuth access token - Cannot parse access token"),
        "1": (1, "An unknown error occurred"),
        "2": (2, "An unexpected error has occurred. Please retry your request later."),
        "4": (4, "(#4) Application request limit reached"),
        "100": (100, "(#100) Invalid parameter"),
        "613": (613, "(#613) Calls to this api have exceeded the rate limit."),
    }

    def authorized(self, request: web.Request) -> bool:
        return hmac.compare_digest(
            bearer_or_query_token(request).encode(), self.credentials[self.auth_credential].encode()
        )

    def unauthorized(self) -> web.Response:
        self.counters["unauthorized"] += 1
        return graph_error(190, self.ERRORS["190"][1])

    def error_response(self, code: str) -> web.Response:
        if code.startswith("http:"):
            status = int(code[5:])
            number = {401: 190, 429: 4, 500: 1}.get(status, 2)
            return graph_error(number, self.ERRORS[str(number)][1], status=status)
        number, message = self.ERRORS.get(code, (int(code) if code.isdigit() else 1, "Error"))
        return graph_error(number, message)

    def signed(self, url: str, payload: dict[str, Any]) -> OutgoingCall:
        body = json.dumps(payload, separators=(",", ":")).encode()
        digest = hmac.new(self.credentials["app_secret"].encode(), body, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + digest.hexdigest(),
            "User-Agent": "facebookexternalua",
        }
        return OutgoingCall(url, body, headers)

    async def subscribe(self, url: str, verify_token: str | None = None) -> tuple[int, str, str]:
        """Meta's verification GET: (status, body, the challenge sent)."""
        if not is_loopback_url(url):
            raise ValueError("fakes call loopback URLs only")
        challenge = str(secrets.randbelow(10**9))
        query = urlencode(
            {
                "hub.mode": "subscribe",
                "hub.challenge": challenge,
                "hub.verify_token": verify_token or self.credentials["verify_token"],
            }
        )
        parts = urlsplit(url)
        target = urlunsplit(
            parts._replace(query=f"{parts.query}&{query}" if parts.query else query)
        )
        async with aiohttp.ClientSession() as session, session.get(target) as response:
            return response.status, await response.text(), challenge
