"""Africa's Talking SMS (`/version1/messaging`).

Credentials: `username`, `api_key` (username `sandbox` uses the sandbox host unless a
base URL is set). Options: `enqueue` (bulk queueing). The API has no per-message
callback URL and no validity period: delivery reports go to the URL set in the
dashboard, which must carry the account's `webhook_token` (AT does not sign them).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from nexus.services.vas.providers import (
    http_probe,
    is_transient_status,
    response_json,
    retry_after,
    token_matches,
    transport_error,
)
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

SANDBOX_URL = "https://api.sandbox.africastalking.com"
# Recipient statusCode: 100 Processed, 101 Sent, 102 Queued succeed; 401-407 are
# permanent refusals; 500-502 are the gateway's temporary errors.
SENT_CODES = frozenset({100, 101, 102})
TEMPORARY_CODES = frozenset({500, 501, 502})
STATUS: dict[str, DeliveryStatus] = {
    "Sent": "sent",
    "Submitted": "sent",
    "Buffered": "sent",
    "Success": "delivered",
    "Rejected": "failed",
    "Failed": "undelivered",
    "AbsentSubscriber": "undelivered",
    "Expired": "undelivered",
}


class Adapter(ProviderAdapter):
    type = "africastalking"
    channels = frozenset({"sms"})
    default_base_url = "https://api.africastalking.com"
    required_credentials = ("username", "api_key")
    public_credentials = frozenset({"username"})

    @property
    def base_url(self) -> str:
        if not self.config.base_url and self.config.credentials.get("username") == "sandbox":
            return SANDBOX_URL
        return super().base_url

    @property
    def _headers(self) -> dict[str, str]:
        return {"apiKey": str(self.config.credentials["api_key"]), "Accept": "application/json"}

    async def send(self, message: OutboundMessage) -> SendResult:
        form = {
            "username": str(self.config.credentials["username"]),
            "to": message.to,
            "message": message.body or "",
        }
        sender = message.sender or self.config.sender
        if sender:
            form["from"] = sender
        if self.config.options.get("enqueue"):
            form["enqueue"] = "1"
        try:
            response = await self.http.post(
                f"{self.base_url}/version1/messaging", data=form, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise transport_error("Africa's Talking", exc) from exc
        if response.status_code >= 400:
            status = response.status_code
            detail = response.text.strip()[:200] or response.reason_phrase
            raise ProviderError(
                f"Africa's Talking {status}: {detail}",
                retryable=is_transient_status(status),
                code="unauthorized" if status == 401 else str(status),
                status_code=status,
                retry_after_s=retry_after(response),
            )
        data = response_json(response).get("SMSMessageData") or {}
        recipients = [r for r in data.get("Recipients") or [] if isinstance(r, dict)]
        if not recipients:
            # The whole request was refused (e.g. "InvalidSenderId"), recipients left empty.
            reason = str(data.get("Message") or "no recipients in the answer")
            raise ProviderError(
                f"Africa's Talking: {reason}",
                retryable=False,
                code=reason.split()[0] if reason else None,
                status_code=response.status_code,
            )
        recipient = recipients[0]
        code = _int(recipient.get("statusCode"))
        if code not in SENT_CODES:
            name = str(recipient.get("status") or code)
            raise ProviderError(
                f"Africa's Talking: {name}",
                retryable=code in TEMPORARY_CODES,
                code=str(code) if code is not None else name,
                status_code=response.status_code,
            )
        cost, currency = parse_cost(recipient.get("cost"))
        return SendResult(
            provider_message_id=str(recipient.get("messageId")),
            status="sent",
            cost=cost,
            currency=currency,
            segments=message.segments,
            raw=recipient,
        )

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return token_matches(request, self.config.webhook_token)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        params = _params(request)
        message_id = params.get("id")
        if not message_id:
            return []
        if "status" in params:
            status = STATUS.get(params["status"])
            if status is None:
                return []
            reason = params.get("failureReason") or None
            if reason is None and status in ("failed", "undelivered"):
                reason = params["status"]
            return [
                StatusUpdate(
                    provider_message_id=message_id,
                    status=status,
                    error_code=reason,
                    error_message=reason,
                    raw=params,
                )
            ]
        if "from" in params and "text" in params:
            return [
                InboundMessage(
                    provider_message_id=message_id,
                    sender=params["from"],
                    to=params.get("to") or None,
                    body=params["text"],
                    channel="sms",
                    at=_time(params.get("date")),
                    raw=params,
                )
            ]
        return []

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            balance = (response_json(response).get("UserData") or {}).get("balance")
            return True, f"balance {balance}"

        return await http_probe(
            self.http,
            f"{self.base_url}/version1/user",
            params={"username": str(self.config.credentials["username"])},
            headers=self._headers,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def parse_cost(value: Any) -> tuple[Decimal | None, str | None]:
    """`"KES 0.8000"` → (Decimal("0.8000"), "KES")."""
    currency, _, amount = str(value or "").strip().partition(" ")
    try:
        return Decimal(amount), currency or None
    except InvalidOperation:
        return None, None


def _params(request: WebhookRequest) -> dict[str, str]:
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = request.json()
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return request.form() if request.body else dict(request.query)


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
