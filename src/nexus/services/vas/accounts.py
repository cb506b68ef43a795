"""Provider accounts as the dispatcher sees them: opened credentials, adapters, cached."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from nexus.kernel.crypto import seal, unseal
from nexus.kernel.db import Database
from nexus.services.vas.models import ProviderAccount
from nexus.services.vas.providers import adapter_class
from nexus.services.vas.providers.base import ProviderAdapter, ProviderConfig
from nexus.services.vas.router import Candidate

PURPOSE = "vas.provider-credentials"


def seal_credentials(secret: str, credentials: dict[str, object]) -> str:
    return seal(secret, PURPOSE, json.dumps(credentials))


def open_credentials(secret: str, sealed: str) -> dict[str, object]:
    return json.loads(unseal(secret, PURPOSE, sealed))  # type: ignore[no-any-return]


@dataclass
class Route:
    candidate: Candidate
    adapter: ProviderAdapter
    account: ProviderAccount


class Accounts:
    """Enabled provider accounts per (org, channel), cached for a few seconds."""

    def __init__(
        self,
        db: Database,
        secret: str,
        http: httpx.AsyncClient,
        public_url: str,
        ttl_s: float = 5.0,
    ) -> None:
        self.db, self.secret, self.http, self.public_url, self.ttl_s = (
            db,
            secret,
            http,
            public_url,
            ttl_s,
        )
        self._cache: dict[tuple[str, str], tuple[float, list[Route]]] = {}
        self._by_id: dict[str, tuple[float, ProviderAccount | None]] = {}
        self._adapters: dict[tuple[str, object], ProviderAdapter] = {}

    def forget(self, org_id: str | None = None) -> None:
        if org_id is None:
            self._cache.clear()
            self._by_id.clear()
        else:
            for key in [k for k in self._cache if k[0] == org_id]:
                del self._cache[key]
            for account_id, (_, account) in list(self._by_id.items()):
                if account is None or account.org_id == org_id:
                    del self._by_id[account_id]

    def callback_url(self, account: ProviderAccount) -> str:
        channel = (
            account.channel
            if account.channel in {"sms", "whatsapp", "telegram", "messenger"}
            else "sms"
        )
        base = f"{self.public_url.rstrip('/')}/api/v1/{channel}/webhook"
        if channel == "sms":
            base += f"/{account.type}"
        return f"{base}?account={account.id}&token={account.webhook_token}"

    def adapter(self, account: ProviderAccount) -> ProviderAdapter:
        key = (account.id, account.updated_at)
        adapter = self._adapters.get(key)
        if adapter is None:
            config = ProviderConfig(
                id=account.id,
                org_id=account.org_id,
                type=account.type,
                channel=account.channel,
                name=account.name,
                credentials=open_credentials(self.secret, account.credentials_sealed),
                base_url=account.base_url,
                sender=account.sender,
                webhook_token=account.webhook_token,
                options=account.options or {},
                status_callback_url=self.callback_url(account),
            )
            adapter = adapter_class(account.type)(config, self.http)
            self._adapters[key] = adapter
        return adapter

    async def routes(self, org_id: str, channel: str) -> list[Route]:
        key = (org_id, channel)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.db.read() as session:
            accounts = (
                await session.scalars(
                    select(ProviderAccount)
                    .where(
                        ProviderAccount.org_id == org_id,
                        ProviderAccount.channel == channel,
                        ProviderAccount.enabled.is_(True),
                    )
                    .order_by(ProviderAccount.priority, ProviderAccount.id)
                )
            ).all()
        routes = [
            Route(
                Candidate(
                    id=a.id,
                    name=a.name,
                    type=a.type,
                    priority=a.priority,
                    cost_per_unit=a.cost_per_unit,
                    countries=tuple(a.countries or ()),
                    rate_limit_per_s=float(a.rate_limit_per_s) if a.rate_limit_per_s else None,
                ),
                self.adapter(a),
                a,
            )
            for a in accounts
        ]
        self._cache[key] = (time.monotonic() + self.ttl_s, routes)
        return routes

    def cached_routes(self) -> list[Route]:
        """The routes this process used recently (the accounts worth probing)."""
        return [route for _, routes in self._cache.values() for route in routes]

    async def by_id(self, provider_id: str) -> ProviderAccount | None:
        """The account (enabled or not), cached like the routes: every delivery report
        names its account."""
        hit = self._by_id.get(provider_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.db.read() as session:
            account = await session.get(ProviderAccount, provider_id)
        if len(self._by_id) > 10_000:  # ids come from the outside: keep the cache bounded
            self._by_id.clear()
        self._by_id[provider_id] = (time.monotonic() + self.ttl_s, account)
        return account


async def add_sandbox_providers(session: object, secret: str, org_id: str) -> int:
    """A sandbox provider on every channel for an org that has none (its first messages
    work out of the box; operators add real providers next to them or instead)."""
    import secrets as _secrets

    from nexus.services.vas.addresses import CHANNELS

    existing = set(
        (
            await session.scalars(  # type: ignore[attr-defined]
                select(ProviderAccount.channel).where(ProviderAccount.org_id == org_id)
            )
        ).all()
    )
    added = 0
    for channel in CHANNELS:
        if channel in existing:
            continue
        session.add(
            ProviderAccount(  # type: ignore[attr-defined]
                org_id=org_id,
                type="sandbox",
                channel=channel,
                name=f"Sandbox ({channel})",
                credentials_sealed=seal_credentials(secret, {}),
                priority=1000,
                webhook_token=_secrets.token_urlsafe(24),
                options={"delivery_delay_ms": 300},
            )
        )
        added += 1
    return added
