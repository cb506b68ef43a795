"""What a VAS process keeps: accounts cache, router, the HTTP client adapters share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from nexus.kernel.db import Database
from nexus.kernel.runtime import Runtime
from nexus.services.vas.accept import Acceptor
from nexus.services.vas.accounts import Accounts
from nexus.services.vas.message_batches import MessageBatches
from nexus.services.vas.models import OrgSettings
from nexus.services.vas.reports import Reports
from nexus.services.vas.router import Router
from nexus.services.vas.settings import VasSettings


@dataclass(frozen=True)
class OrgView:
    default_region: str | None
    stop_keywords: frozenset[str]
    start_keywords: frozenset[str]


@dataclass
class Vas:
    runtime: Runtime
    db: Database
    accounts: Accounts
    router: Router
    http: httpx.AsyncClient
    settings: VasSettings
    acceptor: Acceptor
    batches: MessageBatches
    reports: Reports
    _org_settings: dict[str, tuple[float, OrgView]] = field(default_factory=dict)

    async def org(self, org_id: str) -> OrgView:
        """The org's messaging settings merged with the installation's (cached 10 s)."""
        hit = self._org_settings.get(org_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.db.read() as session:
            row = await session.get(OrgSettings, org_id)
        view = OrgView(
            default_region=(row.default_region if row else None) or self.settings.default_region,
            stop_keywords=frozenset(
                k.upper()
                for k in [*self.settings.stop_keywords, *(row.stop_keywords if row else [])]
            ),
            start_keywords=frozenset(
                k.upper()
                for k in [*self.settings.start_keywords, *(row.start_keywords if row else [])]
            ),
        )
        self._org_settings[org_id] = (time.monotonic() + 10, view)
        return view

    def forget_org(self, org_id: str) -> None:
        self._org_settings.pop(org_id, None)

    @property
    def secret(self) -> str:
        return self.runtime.settings.secret()


def vas_of(runtime: Runtime) -> Vas:
    return runtime.state["vas"]  # type: ignore[no-any-return]
