"""Background health probes of the provider accounts this process routes to."""

from __future__ import annotations

import asyncio

import structlog

from nexus.kernel.runtime import Runtime
from nexus.services.vas.state import vas_of

log = structlog.get_logger("nexus.vas.health")


async def probe_once(runtime: Runtime) -> int:
    """Probe every account in the routing cache; the router's health follows the answers."""
    vas = vas_of(runtime)
    routes = {r.candidate.id: r for r in vas.accounts.cached_routes()}

    async def probe(provider_id: str) -> None:
        try:
            health = await asyncio.wait_for(routes[provider_id].adapter.health(), timeout=5)
            ok = health.ok
        except Exception:  # a probe that fails or hangs counts as unhealthy
            ok = False
        if not ok and vas.router.stats_of(provider_id).healthy:
            log.warning("provider unhealthy", provider_id=provider_id)
        vas.router.set_health(provider_id, ok)

    await asyncio.gather(*(probe(pid) for pid in routes))
    return len(routes)


async def health_loop(runtime: Runtime) -> None:
    interval = vas_of(runtime).settings.health_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await probe_once(runtime)
        except Exception as exc:
            log.warning("health probes failed", error=str(exc))
