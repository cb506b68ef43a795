"""VAS fixtures: the service running with its workers, a client with a token of org A."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory

FINAL = {"delivered", "undelivered", "failed", "rejected", "expired", "canceled"}


@dataclass
class VasEnv:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: TestIssuer
    headers: dict[str, str]

    def headers_for(self, org_id: str, **kw: Any) -> dict[str, str]:
        return self.issuer.headers(org_id=org_id, **kw)

    async def add_provider(
        self, headers: dict[str, str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "type": "sandbox",
            "channel": "sms",
            "name": f"sandbox-{fields.get('channel', 'sms')}",
        }
        body.update(fields)
        response = await self.client.post(
            "/api/v1/providers", json=body, headers=headers or self.headers
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def send(self, headers: dict[str, str] | None = None, **fields: Any) -> httpx.Response:
        return await self.client.post(
            "/api/v1/messages/send", json=fields, headers=headers or self.headers
        )

    async def wait_final(
        self, message_id: str, timeout_s: float = 15.0, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            response = await self.client.get(
                f"/api/v1/messages/{message_id}", headers=headers or self.headers
            )
            body = response.json()
            if body["status"] in FINAL or asyncio.get_running_loop().time() > deadline:
                return body  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


@pytest.fixture
async def vas(make_runtime: RuntimeFactory, settings, issuer: TestIssuer) -> AsyncIterator[VasEnv]:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([vas_service])
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://nexus.test"
    ) as client:
        yield VasEnv(client, runtime, issuer, issuer.headers(org_id="org-a"))
