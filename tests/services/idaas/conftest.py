"""IDaaS fixtures: a running app with two orgs, their owners, and helpers to log in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.testing.sample_services import notes
from tests.conftest import RuntimeFactory

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Tenant:
    org_id: str
    slug: str
    owner_id: str
    email: str
    password: str = PASSWORD
    token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class IdaasEnv:
    client: httpx.AsyncClient
    runtime: Runtime
    a: Tenant
    b: Tenant
    extra: dict[str, object] = field(default_factory=dict)

    async def login(self, email: str, password: str = PASSWORD, **extra: object) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password, **extra}
        )

    async def tokens(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.login(email, password)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def _tenant(runtime: Runtime, name: str) -> Tenant:
    made = await create_org_with_owner(
        runtime.db("idaas"),
        org_name=name,
        email=f"owner@{name.lower()}.example.com",
        password=PASSWORD,
        name="Owner",
    )
    return Tenant(
        org_id=made.org.id, slug=made.org.slug, owner_id=made.owner.id, email=made.owner.email
    )


@pytest.fixture
async def idaas(make_runtime: RuntimeFactory, settings) -> AsyncIterator[IdaasEnv]:  # type: ignore[no-untyped-def]
    """IDaaS (and the sample notes service) in one app; orgs A and B with logged-in owners."""
    settings.jwt_issuer = "http://nexus.test"
    runtime = await make_runtime([idaas_service, notes])
    # make_runtime installs a throwaway test issuer; IDaaS's own keys are what we test here
    await idaas_service.on_startup[0](runtime)
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus.test") as client:
        env = IdaasEnv(
            client=client,
            runtime=runtime,
            a=await _tenant(runtime, "Alpha"),
            b=await _tenant(runtime, "Bravo"),
        )
        for tenant in (env.a, env.b):
            tokens = await env.tokens(tenant.email)
            tenant.token, tenant.refresh_token = tokens["access_token"], tokens["refresh_token"]
        yield env
