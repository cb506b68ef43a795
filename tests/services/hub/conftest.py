"""Hub fixtures: IDaaS, VAS and the Hub in one runtime, a demo org, a browser-like client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.services.hub import service as hub_service
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.vas import service as vas_service
from tests.conftest import RuntimeFactory

PASSWORD = "correct-horse-battery-staple"
OWNER = "owner@demo.example.com"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@dataclass
class HubEnv:
    client: httpx.AsyncClient
    runtime: Runtime
    app: object

    def browser(self) -> httpx.AsyncClient:
        """Another browser (its own cookies) on the same app."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://hub.test"
        )

    async def login(
        self, client: httpx.AsyncClient | None = None, email: str = OWNER, password: str = PASSWORD
    ) -> httpx.Response:
        client = client or self.client
        page = await client.get("/login")
        return await client.post(
            "/login",
            data={"email": email, "password": password, "csrf": csrf_of(page.text), "next": "/"},
        )

    async def csrf(self, path: str = "/", client: httpx.AsyncClient | None = None) -> str:
        page = await (client or self.client).get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page.text)


async def make_hub(make_runtime: RuntimeFactory, settings) -> tuple[Runtime, object]:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([idaas_service, vas_service, hub_service])
    await idaas_service.on_startup[0](runtime)  # IDaaS's own keys, not the test issuer
    await create_org_with_owner(
        runtime.db("idaas"), org_name="Demo", email=OWNER, password=PASSWORD, name="Olivia Owner"
    )
    return runtime, create_app(settings, runtime=runtime)


@pytest.fixture
async def hub(make_runtime: RuntimeFactory, settings) -> AsyncIterator[HubEnv]:  # type: ignore[no-untyped-def]
    runtime, app = await make_hub(make_runtime, settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
    ) as client:
        yield HubEnv(client, runtime, app)
