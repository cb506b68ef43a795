"""What a VAS process keeps: accounts cache, router, the HTTP client adapters share."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from nexus.kernel.db import Database
from nexus.kernel.runtime import Runtime
from nexus.services.vas.accounts import Accounts
from nexus.services.vas.router import Router
from nexus.services.vas.settings import VasSettings


@dataclass
class Vas:
    runtime: Runtime
    db: Database
    accounts: Accounts
    router: Router
    http: httpx.AsyncClient
    settings: VasSettings

    @property
    def secret(self) -> str:
        return self.runtime.settings.secret()


def vas_of(runtime: Runtime) -> Vas:
    return runtime.state["vas"]  # type: ignore[no-any-return]
