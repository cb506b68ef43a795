"""The Twilio-compatible API served by a real uvicorn on a loopback port, an org with a
sandbox SMS and WhatsApp provider, and Twilio-style credentials for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory


@dataclass
class TwilioEnv:
    runtime: Runtime
    api: httpx.AsyncClient  # Nexus's own API, in-process
    base_url: str  # where the Twilio SDKs are pointed
    issuer: TestIssuer
    account_sid: str
    auth_token: str

    def headers(self, org_id: str = "org-a", **kw: Any) -> dict[str, str]:
        return self.issuer.headers(org_id=org_id, **kw)

    async def create_account(self, org_id: str = "org-a") -> tuple[str, str]:
        r = await self.api.post(
            "/api/v1/vas/twilio-credentials",
            json={"friendly_name": "main"},
            headers=self.headers(org_id),
        )
        assert r.status_code == 201, r.text
        return r.json()["sid"], r.json()["auth_token"]

    async def add_provider(self, org_id: str = "org-a", **fields: Any) -> dict[str, Any]:
        body = {"type": "sandbox", "channel": "sms", "name": "sandbox sms", **fields}
        r = await self.api.post("/api/v1/providers", json=body, headers=self.headers(org_id))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def nexus_message(self, sid: str, org_id: str = "org-a") -> dict[str, Any]:
        import uuid

        r = await self.api.get(
            f"/api/v1/messages/{uuid.UUID(sid[2:])}", headers=self.headers(org_id)
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port, in this event loop."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def twilio(
    make_runtime: RuntimeFactory,
    settings,  # type: ignore[no-untyped-def]
    issuer: TestIssuer,
) -> AsyncIterator[TwilioEnv]:
    runtime = await make_runtime([vas_service])
    app = create_app(settings, runtime=runtime)
    async with (
        serve(app) as base_url,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://nexus.test"
        ) as api,
    ):
        env = TwilioEnv(runtime, api, base_url, issuer, "", "")
        await env.add_provider()
        await env.add_provider(channel="whatsapp", name="sandbox whatsapp")
        env.account_sid, env.auth_token = await env.create_account()
        yield env
