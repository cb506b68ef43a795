"""Calls from the Hub to the services' published APIs, as the signed-in person.

The Hub never reads another service's tables: every page is built from IDaaS and VAS
answers, made with the user's own access token, so permissions and org isolation are the
APIs' own. Problems come back as `ApiError` carrying the API's plain-words `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from nexus.kernel.client import ServiceClient


@dataclass
class ApiError(Exception):
    """A 4xx/5xx answer of a service API, in words a person can act on."""

    status: int
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, service: str, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        detail = str(body.get("detail") or body.get("title") or "")
        errors = [
            {"field": str(e.get("field", "")), "message": str(e.get("message", ""))}
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        if not errors and isinstance(body.get("field"), str):  # one field named by the API
            errors = [{"field": body["field"], "message": str(body.get("detail", ""))}]
        status = response.status_code
        if status == 403:
            missing = body.get("missing")
            detail = "You do not have permission to do this." + (
                f" It needs {', '.join(missing)}." if missing else f" {detail}"
            )
        elif status >= 500:
            detail = f"The {service} service could not answer just now. Try again in a moment."
        elif status == 422 and errors and not detail.strip():
            detail = "Some fields need attention."
        return cls(status, detail.strip() or f"The {service} service said no ({status}).", errors)

    def __str__(self) -> str:
        return self.detail


def client(request: Request, service: str, token: str | None = None) -> ServiceClient:
    """A client for `service` on behalf of the browser behind `request`."""
    runtime = request.app.state.runtime
    headers = {
        "x-request-id": getattr(request.state, "request_id", ""),
        "user-agent": (request.headers.get("user-agent") or "")[:300],
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    if service in runtime.by_name:
        addr = (request.client.host, request.client.port) if request.client else None
        return ServiceClient(service, app=request.app, headers=headers, client_addr=addr)
    return ServiceClient(
        service, base_url=runtime.settings.service_urls.get(service), headers=headers
    )


def clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the empty ones (an empty filter means no filter)."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v not in (None, "")}


async def call(
    request: Request,
    service: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    content: Any = None,
) -> httpx.Response:
    async with client(request, service, token) as api:
        return await api.request(
            method,
            path,
            json=json,
            params=clean(params),
            headers=headers or {},
            content=content,
        )
