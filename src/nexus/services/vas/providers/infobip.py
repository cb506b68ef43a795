"""Infobip SMS (`/sms/2/text/advanced`).

Credentials: `api_key`. `base_url` is the account's personal base URL
(`https://<id>.api.infobip.com`). Our message id is sent as the destination's
`messageId` and as `callbackData`, so delivery reports match whatever happens.
Delivery reports and inbound SMS carry no signature: the account's unguessable
`webhook_token` must be in the callback URL (query `token` or a path segment).
`send_many` sends several messages in one request (Infobip's batching).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from nexus.services.vas.providers import (
    as_dict,
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
    SentMessage,
    StatusUpdate,
    WebhookItem,
    WebhookRequest,
)

# Status groups: 0 ACCEPTED, 1 PENDING, 2 UNDELIVERABLE, 3 DELIVERED, 4 EXPIRED, 5 REJECTED.
GROUP_STATUS: dict[int, DeliveryStatus] = {
    0: "sent",
    1: "sent",
    2: "undelivered",
    3: "delivered",
    4: "undelivered",
    5: "failed",
}
SEND_OK_GROUPS = frozenset({0, 1, 3})
MAX_VALIDITY_MIN = 2880  # 48 hours
MAX_CALLBACK_DATA = 200
MAX_RESULTS = 1000  # a report carries at most 100; refuse to walk absurd payloads


class Adapter(ProviderAdapter):
    type = "infobip"
    channels = frozenset({"sms"})
    default_base_url = "https://api.infobip.com"
    required_credentials = ("api_key",)
    status_lookup = True

    @property
    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"App {self.config.credentials['api_key']}",
            "Accept": "application/json",
        }

    def _message(self, message: OutboundMessage) -> dict[str, Any]:
        sender = message.sender or self.config.sender
        item: dict[str, Any] = {
            "destinations": [{"to": message.to.lstrip("+"), "messageId": message.id}],
            "text": message.body or "",
            "callbackData": message.id[:MAX_CALLBACK_DATA],
        }
        if sender:
            item["from"] = sender.lstrip("+") if sender.lstrip("+").isdigit() else sender
        if self.config.status_callback_url:
            item["notifyUrl"] = self.config.status_callback_url
            item["notifyContentType"] = "application/json"
        if message.validity_s:
            item["validityPeriod"] = max(
                1, min(MAX_VALIDITY_MIN, math.ceil(message.validity_s / 60))
            )
        for key, field in (
            ("transliteration", "transliteration"),
            ("language_code", "languageCode"),
        ):
            if message.metadata.get(key):
                item[field] = (
                    {"languageCode": message.metadata[key]}
                    if field == "languageCode"
                    else message.metadata[key]
                )
        return item

    async def send(self, message: OutboundMessage) -> SendResult:
        [outcome] = await self.send_many([message])
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    async def send_many(
        self, messages: Sequence[OutboundMessage]
    ) -> list[SendResult | ProviderError]:
        """Send several messages in one request; one outcome per message, in order.
        A request-level failure (auth, rate limit, outage) raises for all."""
        body = {"messages": [self._message(m) for m in messages]}
        try:
            response = await self.http.post(
                f"{self.base_url}/sms/2/text/advanced", json=body, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise transport_error("Infobip", exc) from exc
        if response.status_code >= 400:
            raise self._error(response)
        data = response_json(response)
        by_id = {
            str(r.get("messageId")): r for r in data.get("messages") or [] if isinstance(r, dict)
        }
        results = data.get("messages") or []
        outcomes: list[SendResult | ProviderError] = []
        for index, message in enumerate(messages):
            item = by_id.get(message.id)
            if item is None and index < len(results) and isinstance(results[index], dict):
                item = results[index]
            if item is None:
                outcomes.append(
                    ProviderError(
                        "Infobip returned no result for the message.",
                        retryable=True,
                        code="no_result",
                        status_code=response.status_code,
                    )
                )
                continue
            status = item.get("status") or {}
            group = _int(status.get("groupId"))
            if group not in SEND_OK_GROUPS:
                outcomes.append(
                    ProviderError(
                        f"Infobip: {status.get('description') or status.get('name') or 'rejected'}",
                        retryable=False,
                        code=str(status.get("name") or group),
                        status_code=response.status_code,
                    )
                )
                continue
            count = item.get("smsCount")
            outcomes.append(
                SendResult(
                    provider_message_id=str(item.get("messageId") or message.id),
                    status="sent",
                    segments=int(count) if isinstance(count, int) else None,
                    raw={"bulkId": data.get("bulkId"), **item},
                )
            )
        return outcomes

    def _error(self, response: httpx.Response) -> ProviderError:
        data = response_json(response)
        service = (data.get("requestError") or {}).get("serviceException") or {}
        code = str(service.get("messageId") or data.get("errorCode") or response.status_code)
        text = str(service.get("text") or data.get("description") or response.reason_phrase)
        status = response.status_code
        return ProviderError(
            f"Infobip {status}: {text}",
            retryable=is_transient_status(status),
            code=code,
            status_code=status,
            retry_after_s=retry_after(response),
        )

    async def fetch_status(
        self, provider_message_id: str, message: SentMessage
    ) -> StatusUpdate | None:
        """The message's log (`GET /sms/1/logs?messageId=`), which reads like a delivery
        report. Infobip keeps logs for 48 hours: an older message is unknown."""
        try:
            response = await self.http.get(
                f"{self.base_url}/sms/1/logs",
                params={"messageId": provider_message_id},
                headers=self._headers,
            )
        except httpx.TransportError as exc:
            raise transport_error("Infobip", exc) from exc
        if response.status_code >= 400:
            raise self._error(response)
        for result in response_json(response).get("results") or []:
            if isinstance(result, dict) and str(result.get("messageId")) == provider_message_id:
                return self._status(result)
        return None

    # -- webhooks ----------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return token_matches(request, self.config.webhook_token)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        try:
            data = request.json()
        except ValueError:
            return []
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            return []
        items: list[WebhookItem] = []
        for result in results[:MAX_RESULTS]:
            if not isinstance(result, dict) or not result.get("messageId"):
                continue
            if isinstance(result.get("status"), dict):
                update = self._status(result)
                if update is not None:
                    items.append(update)
            elif "receivedAt" in result or "text" in result or "cleanText" in result:
                items.append(
                    InboundMessage(
                        provider_message_id=str(result["messageId"]),
                        sender=_e164(result.get("from")),
                        to=_e164(result.get("to")) or None,
                        body=result.get("text")
                        if result.get("text") is not None
                        else result.get("cleanText"),
                        channel="sms",
                        at=parse_time(result.get("receivedAt")),
                        raw=result,
                    )
                )
        return items

    def _status(self, result: dict[str, Any]) -> StatusUpdate | None:
        status = as_dict(result.get("status"))
        mapped = GROUP_STATUS.get(_int(status.get("groupId")) or -1)
        if mapped is None:
            return None
        error = as_dict(result.get("error"))
        has_error = bool(error) and _int(error.get("id")) not in (0, None)
        price = as_dict(result.get("price"))
        cost = (
            _money(price.get("pricePerMessage"))
            if price.get("pricePerMessage") is not None
            else None
        )
        if cost is not None:
            cost *= _int(result.get("smsCount")) or 1
        return StatusUpdate(
            provider_message_id=str(result["messageId"]),
            status=mapped,
            error_code=str(error.get("name") or error.get("id"))
            if has_error
            else (str(status.get("name")) if mapped in ("failed", "undelivered") else None),
            error_message=str(error.get("description") or status.get("description") or "")
            if has_error or mapped in ("failed", "undelivered")
            else None,
            at=parse_time(result.get("doneAt") or result.get("sentAt")),
            cost=cost,
            currency=price.get("currency") if cost is not None else None,
            raw=result,
        )

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            data = response_json(response)
            return True, f"balance {data.get('balance')} {data.get('currency')}"

        return await http_probe(
            self.http,
            f"{self.base_url}/account/1/balance",
            headers=self._headers,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def parse_time(value: Any) -> dt.datetime | None:
    """Infobip times: `2019-11-09T16:00:00.000+0000`."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _e164(value: Any) -> str:
    text = str(value or "")
    return f"+{text}" if text.isdigit() else text


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
