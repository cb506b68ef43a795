"""Provider adapters, one module each, found by their `type`; and the small HTTP helpers
the adapters share (transport errors, JSON bodies, Retry-After, token checks, probes)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from nexus.services.vas.providers.base import Health, ProviderAdapter, ProviderError, WebhookRequest

# type -> module; each module defines `Adapter`.
ADAPTERS: dict[str, str] = {
    "sandbox": "nexus.services.vas.providers.sandbox",
    "twilio": "nexus.services.vas.providers.twilio",
    "infobip": "nexus.services.vas.providers.infobip",
    "africastalking": "nexus.services.vas.providers.africastalking",
    "vonage": "nexus.services.vas.providers.vonage",
    "whatsapp_cloud": "nexus.services.vas.providers.whatsapp_cloud",
    "telegram": "nexus.services.vas.providers.telegram",
    "messenger": "nexus.services.vas.providers.messenger",
    "smtp": "nexus.services.vas.providers.smtp",
}


def adapter_class(provider_type: str) -> type[ProviderAdapter]:
    if provider_type not in ADAPTERS:
        raise LookupError(f"unknown provider type {provider_type!r}")
    return import_module(ADAPTERS[provider_type]).Adapter  # type: ignore[no-any-return]


# -- helpers shared by the HTTP adapters ------------------------------------------------


def transport_error(provider: str, exc: httpx.TransportError) -> ProviderError:
    """A connection-level failure, always retryable. `connect_error` / `connect_timeout`:
    the request never left, safe to send elsewhere; `timeout` / `connection`: the outcome
    is unknown (the provider may have taken the message)."""
    if isinstance(exc, httpx.ConnectTimeout):
        code, what = "connect_timeout", "did not accept the connection in time"
    elif isinstance(exc, httpx.ConnectError):
        code, what = "connect_error", "is unreachable"
    elif isinstance(exc, httpx.TimeoutException):
        code, what = "timeout", "did not answer in time"
    else:
        code, what = "connection", f"connection failed ({type(exc).__name__})"
    return ProviderError(f"{provider} {what}.", retryable=True, code=code)


def is_transient_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else {} (provider payloads are untrusted)."""
    return value if isinstance(value, dict) else {}


def response_json(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} (bodies of errors are not always JSON)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def token_matches(request: WebhookRequest, token: str) -> bool:
    """The account's unguessable webhook token is the query's `token` or a path segment
    (for providers that do not sign their callbacks)."""
    if not token:
        return False
    expected = token.encode()
    given = request.query.get("token")
    if given is not None and hmac.compare_digest(given.encode(), expected):
        return True
    found = False
    for segment in urlsplit(request.url).path.split("/"):
        found |= hmac.compare_digest(unquote(segment).encode(), expected)
    return found


async def http_probe(
    http: httpx.AsyncClient,
    url: str,
    *,
    timeout_s: float = 5.0,
    describe: Callable[[httpx.Response], tuple[bool, str]] | None = None,
    **kwargs: Any,
) -> Health:
    """GET `url`; healthy on 200 (or as `describe` says). Never raises; never puts the URL
    (which may carry a token) in the detail."""
    started = time.perf_counter()
    try:
        response = await http.get(url, timeout=timeout_s, **kwargs)
    except Exception as exc:  # a probe reports, it never raises (bad URL, TLS, timeout...)
        return Health(False, elapsed_ms(started), f"unreachable: {type(exc).__name__}")
    latency = elapsed_ms(started)
    if response.status_code != 200:
        return Health(False, latency, f"HTTP {response.status_code}")
    if describe is None:
        return Health(True, latency, "ok")
    try:
        ok, detail = describe(response)
    except Exception as exc:
        return Health(False, latency, f"unexpected answer ({type(exc).__name__})")
    return Health(ok, latency, detail)
