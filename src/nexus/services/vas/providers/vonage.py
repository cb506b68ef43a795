"""Vonage SMS API (`/sms/json`).

Credentials: `api_key`, `api_secret`; optional `signature_secret` (signed webhooks).
Options: `signature_method` (`md5hash` default, or `md5`, `sha1`, `sha256`, `sha512`
HMAC, as set in the Vonage dashboard), `signature_max_age_s` (300; 0 disables the
timestamp check), `currency` of prices (EUR), `reports_base_url` (the Reports API
host for status lookups: `https://api.nexmo.com`, or `base_url` when that is set).

Vonage splits long text itself and answers with one message id per segment, then sends
one delivery receipt per segment. Our message id goes out as `client-ref`, which every
receipt echoes, so `provider_message_id` is our message id and each segment's receipt
maps to the message (Vonage's own ids are in `raw["message_ids"]`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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
    SentMessage,
    StatusUpdate,
    WebhookItem,
    WebhookRequest,
)

# Send status codes: "0" success; "1" throttled, "5" internal error and "10" too many
# binds are temporary; everything else ("2" missing params, "3" invalid params, "4" bad
# credentials, "6" unroutable, "7" barred number, "9" quota, "15" invalid sender,
# "29" non-whitelisted destination, ...) is permanent.
TEMPORARY = frozenset({"1", "5", "10"})
STATUS: dict[str, DeliveryStatus] = {
    "accepted": "sent",
    "buffered": "sent",
    "unknown": "sent",
    "delivered": "delivered",
    "expired": "undelivered",
    "failed": "undelivered",
    "rejected": "failed",
}
# The Reports API's record statuses, besides the receipts' vocabulary.
REPORT_STATUS: dict[str, DeliveryStatus] = {**STATUS, "submitted": "sent", "deleted": "failed"}
REPORTS_BASE_URL = "https://api.nexmo.com"
LOOKUP_SLACK = dt.timedelta(minutes=5)  # around the send time, for clock differences
HASHES = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
MIN_TTL_MS, MAX_TTL_MS = 20_000, 604_800_000


def signature(params: Mapping[str, str], secret: str, method: str = "md5hash") -> str:
    """Vonage's signature over the sorted `&name=value` pairs (`&` and `=` in values
    replaced with `_`): MD5 of pairs + secret, or an HMAC of the pairs with the secret."""
    payload = "".join(
        f"&{name}={str(value).replace('&', '_').replace('=', '_')}"
        for name, value in sorted(params.items())
        if name != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((payload + secret).encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), payload.encode(), HASHES[method]).hexdigest()


class Adapter(ProviderAdapter):
    type = "vonage"
    channels = frozenset({"sms"})
    default_base_url = "https://rest.nexmo.com"
    required_credentials = ("api_key", "api_secret")
    optional_credentials = ("signature_secret",)
    public_credentials = frozenset({"api_key"})
    status_lookup = True

    @property
    def _auth(self) -> dict[str, str]:
        credentials = self.config.credentials
        return {
            "api_key": str(credentials["api_key"]),
            "api_secret": str(credentials["api_secret"]),
        }

    async def send(self, message: OutboundMessage) -> SendResult:
        sender = message.sender or self.config.sender
        if not sender:
            raise ProviderError("No sender is configured.", retryable=False, code="no_sender")
        form = {
            **self._auth,
            "from": sender.lstrip("+") if sender.lstrip("+").isdigit() else sender,
            "to": message.to.lstrip("+"),
            "text": message.body or "",
            "type": "unicode" if message.encoding == "UCS-2" else "text",
            "client-ref": message.id,
        }
        if self.config.status_callback_url:
            form["callback"] = self.config.status_callback_url
        if message.validity_s:
            form["ttl"] = str(max(MIN_TTL_MS, min(MAX_TTL_MS, message.validity_s * 1000)))
        try:
            response = await self.http.post(f"{self.base_url}/sms/json", data=form)
        except httpx.TransportError as exc:
            raise transport_error("Vonage", exc) from exc
        if response.status_code >= 400:
            raise _http_error("Vonage", response)
        data = response_json(response)
        parts = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        if not parts:
            raise ProviderError(
                "Vonage answered without messages.",
                retryable=True,
                code="no_result",
                status_code=response.status_code,
            )
        for part in parts:
            code = str(part.get("status", ""))
            if code != "0":
                raise ProviderError(
                    f"Vonage: {part.get('error-text') or 'status ' + code}",
                    retryable=code in TEMPORARY,
                    code=code,
                    status_code=response.status_code,
                    retry_after_s=1.0 if code == "1" else None,
                )
        cost = _sum_prices(parts)
        return SendResult(
            provider_message_id=message.id,
            status="sent",
            cost=cost,
            currency=str(self.config.options.get("currency", "EUR")) if cost is not None else None,
            segments=len(parts),
            raw={**data, "message_ids": [p.get("message-id") for p in parts]},
        )

    async def fetch_status(
        self, provider_message_id: str, message: SentMessage
    ) -> StatusUpdate | None:
        """The message's records in the synchronous Reports API (`GET /v2/reports/records`,
        product SMS, by `client_ref`): one record per segment; the message is delivered
        when every segment is, failed or undelivered when any is."""
        base = str(
            self.config.options.get("reports_base_url") or self.config.base_url or REPORTS_BASE_URL
        ).rstrip("/")
        now = dt.datetime.now(dt.UTC)
        params = {
            "account_id": self._auth["api_key"],
            "product": "SMS",
            "direction": "outbound",
            "client_ref": provider_message_id,
            "date_start": _iso(message.sent_at - LOOKUP_SLACK),
            "date_end": _iso(now + LOOKUP_SLACK),
        }
        try:
            response = await self.http.get(
                f"{base}/v2/reports/records",
                params=params,
                auth=(self._auth["api_key"], self._auth["api_secret"]),
            )
        except httpx.TransportError as exc:
            raise transport_error("Vonage", exc) from exc
        if response.status_code >= 400:
            raise _http_error("Vonage reports", response)
        records = [
            r
            for r in response_json(response).get("records") or []
            if isinstance(r, dict) and r.get("client_ref") == provider_message_id
        ]
        return _report_status(provider_message_id, records) if records else None

    # -- webhooks ----------------------------------------------------------------------

    def _signed_params(self, request: WebhookRequest) -> dict[str, str]:
        """The parameters Vonage sent (body, or the query minus our callback URL's own)."""
        if request.body:
            return _body_params(request)
        ours = {k for k, _ in parse_qsl(urlsplit(self.config.status_callback_url or "").query)}
        ours.add("token")
        return {k: v for k, v in request.query.items() if k not in ours}

    def verify_webhook(self, request: WebhookRequest) -> bool:
        secret = str(self.config.credentials.get("signature_secret") or "")
        if not secret:
            return token_matches(request, self.config.webhook_token)
        params = self._signed_params(request)
        given = params.get("sig", "")
        method = str(self.config.options.get("signature_method", "md5hash"))
        if not given or (method != "md5hash" and method not in HASHES):
            return False
        max_age = float(self.config.options.get("signature_max_age_s", 300))
        if max_age:
            try:
                age = abs(time.time() - float(params.get("timestamp", "")))
            except ValueError:
                return False
            if age > max_age:
                return False
        expected = signature(params, secret, method)
        return hmac.compare_digest(expected.lower().encode(), given.lower().encode())

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        params = {**request.query, **_body_params(request)} if request.body else dict(request.query)
        message_id = params.get("messageId") or params.get("message-id")
        if not message_id:
            return []
        if "status" in params:
            status = STATUS.get(params["status"].lower())
            if status is None:
                return []
            error = params.get("err-code")
            return [
                StatusUpdate(
                    provider_message_id=params.get("client-ref") or message_id,
                    status=status,
                    error_code=error if error not in (None, "", "0") else None,
                    error_message=None if error in (None, "", "0") else f"err-code {error}",
                    at=_time(params),
                    cost=_decimal(params.get("price")),
                    currency=str(self.config.options.get("currency", "EUR"))
                    if _decimal(params.get("price")) is not None
                    else None,
                    raw=params,
                )
            ]
        if "text" in params and "msisdn" in params:
            return [
                InboundMessage(
                    provider_message_id=message_id,
                    sender=_e164(params["msisdn"]),
                    to=_e164(params.get("to")) or None,
                    body=params["text"],
                    channel="sms",
                    at=_time(params),
                    raw=params,
                )
            ]
        return []

    async def health(self) -> Health:
        def describe(response: httpx.Response) -> tuple[bool, str]:
            return True, f"balance {response_json(response).get('value')}"

        return await http_probe(
            self.http,
            f"{self.base_url}/account/get-balance",
            params=self._auth,
            timeout_s=float(self.config.options.get("health_timeout_s", 5)),
            describe=describe,
        )


def _body_params(request: WebhookRequest) -> dict[str, str]:
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = request.json()
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
    return request.form()


def _time(params: Mapping[str, str]) -> dt.datetime | None:
    """`message-timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC), else `scts` (`YYMMDDHHMM`)."""
    for key, fmt in (("message-timestamp", "%Y-%m-%d %H:%M:%S"), ("scts", "%y%m%d%H%M")):
        value = params.get(key)
        if value:
            try:
                return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
    return None


def _http_error(what: str, response: httpx.Response) -> ProviderError:
    status = response.status_code
    return ProviderError(
        f"{what} {status}: {response.reason_phrase}",
        retryable=is_transient_status(status),
        code="4" if status == 401 else str(status),
        status_code=status,
        retry_after_s=retry_after(response),
    )


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _report_status(message_id: str, records: list[dict[str, Any]]) -> StatusUpdate:
    statuses = [REPORT_STATUS.get(str(r.get("status", "")).lower(), "sent") for r in records]
    bad = next((i for i, s in enumerate(statuses) if s in ("failed", "undelivered")), None)
    if bad is not None:
        status, worst = statuses[bad], records[bad]
    else:
        status = "delivered" if all(s == "delivered" for s in statuses) else "sent"
        worst = records[-1]
    error = str(worst.get("error_code") or "")
    prices = [_decimal(r.get("total_price") or r.get("price")) for r in records]
    known = [p for p in prices if p is not None]
    return StatusUpdate(
        provider_message_id=message_id,
        status=status,
        error_code=error if bad is not None and error not in ("", "0") else None,
        error_message=str(worst.get("error_code_description") or "") or None
        if bad is not None
        else None,
        at=_parse_iso(worst.get("date_finalized")),
        cost=sum(known, Decimal(0)) if known else None,
        currency=str(worst.get("currency")) if known and worst.get("currency") else None,
        raw={"records": records},
    )


def _parse_iso(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _sum_prices(parts: list[dict[str, Any]]) -> Decimal | None:
    prices = [_decimal(p.get("message-price")) for p in parts]
    known = [p for p in prices if p is not None]
    return sum(known, Decimal(0)) if known else None


def _e164(value: Any) -> str:
    text = str(value or "")
    return f"+{text}" if text.isdigit() else text
