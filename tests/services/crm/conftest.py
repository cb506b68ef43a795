"""CRM fixtures: CRM and VAS running with their workers, and clients for several callers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from nexus.kernel.events import Event
from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Consumer, HandlerContext, Service
from nexus.services.crm import service as crm_service
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory

OWNER_ONLY = ["resource.owner_id == user.id"]
REP_PERMISSIONS = [
    f"crm:{kind}:{action}"
    for kind in ("contact", "company", "deal", "activity")
    for action in ("read", "write", "delete")
]


def _watcher(seen: list[Event]) -> Service:
    """A service that records every CRM event it consumes (as any other consumer would)."""

    async def record(event: Event, ctx: HandlerContext) -> None:
        seen.append(event)

    return Service(name="crmwatch", consumers=[Consumer("all", ("nexus.crm.>",), record)])


@dataclass
class Crm:
    client: httpx.AsyncClient
    runtime: Runtime
    issuer: TestIssuer
    events: list[Event]

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    def admin(self, org_id: str = "org-a", sub: str = "admin-1") -> dict[str, str]:
        """Everything in the org."""
        return self.issuer.headers(org_id=org_id, sub=sub, permissions=["crm:*", "vas:*"])

    def rep(self, sub: str, org_id: str = "org-a", **extra: Any) -> dict[str, str]:
        """A sales rep: CRM permissions on its own records only (a conditional grant, as
        IDaaS issues for a role bound with `resource.owner_id == user.id`), and sending."""
        grants = [{"p": p, "c": OWNER_ONLY} for p in REP_PERMISSIONS]
        return self.issuer.headers(
            org_id=org_id,
            sub=sub,
            permissions=["vas:message:send", "vas:message:read"],
            cg=grants,
            **extra,
        )

    async def post(self, path: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await self.client.post(f"/api/v1/crm{path}", json=body, headers=headers)
        assert response.status_code in (200, 201, 202), response.text
        return response.json()  # type: ignore[no-any-return]

    async def get(self, path: str, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/crm{path}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def patch(self, path: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await self.client.patch(f"/api/v1/crm{path}", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def crm(make_runtime: RuntimeFactory, settings, issuer: TestIssuer) -> AsyncIterator[Crm]:  # type: ignore[no-untyped-def]
    events: list[Event] = []
    runtime = await make_runtime([vas_service, crm_service, _watcher(events)])
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://nexus.test"
    ) as client:
        yield Crm(client, runtime, issuer, events)
