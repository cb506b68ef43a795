"""Calling another service through its published HTTP API.

When the target service runs in this process the call goes through an in-process ASGI
transport (no socket); otherwise to the URL configured as `NEXUS_<SERVICE>_URL`. The
caller's credentials are forwarded, so the callee checks permissions as usual.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

from nexus.kernel.errors import Unavailable

API_PREFIX = "/api/v1"


class ServiceClient:
    """An httpx client for one service's API, in-process or remote."""

    def __init__(
        self,
        service: str,
        *,
        app: Any = None,
        base_url: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 10.0,
        client_addr: tuple[str, int] | None = None,
    ) -> None:
        """`client_addr` is the address the in-process callee sees as the client (a front
        end passes its own caller's, so per-address throttles and audit records see the
        browser, not the loopback)."""
        if app is None and base_url is None:
            raise Unavailable(
                f"The {service} service does not run in this process and "
                f"NEXUS_{service.upper()}_URL is not set."
            )
        self.service = service
        self.local = app is not None
        transport = None
        if app is not None:
            transport = httpx.ASGITransport(app=app, client=client_addr or ("127.0.0.1", 123))
        self._client = httpx.AsyncClient(
            transport=transport,
            base_url=(base_url or "http://in-process").rstrip("/") + API_PREFIX,
            headers=headers or {},
            timeout=timeout_s,
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(f"The {self.service} service did not answer: {exc}") from None

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def service_client(request: Request, service: str, *, forward_auth: bool = True) -> ServiceClient:
    """A client for `service`, as seen from the app handling `request`."""
    runtime = request.app.state.runtime
    headers: dict[str, str] = {"x-request-id": getattr(request.state, "request_id", "")}
    if forward_auth:
        for name in ("authorization", "x-api-key"):
            if name in request.headers:
                headers[name] = request.headers[name]
    if service in runtime.by_name:
        return ServiceClient(service, app=request.app, headers=headers)
    return ServiceClient(
        service, base_url=runtime.settings.service_urls.get(service), headers=headers
    )
