"""Rate limits: a sliding-window counter, in-process by default, in Redis when configured.

`rate_limit("auth.login", limit=10, per_s=60, key=client_ip)` is a route dependency that
answers 429 with `Retry-After` once a key exceeds its limit. With `NEXUS_REDIS_URL` set
the counters are shared by every process (one atomic Lua script per check).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request

from nexus.kernel.errors import RateLimited

_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local current_key = KEYS[1] .. ':' .. math.floor(now / window)
local previous_key = KEYS[1] .. ':' .. (math.floor(now / window) - 1)
local previous = tonumber(redis.call('GET', previous_key) or '0')
local current = tonumber(redis.call('GET', current_key) or '0')
local elapsed = (now % window) / window
local estimate = previous * (1 - elapsed) + current
if estimate >= limit then
  return {0, math.ceil(window - (now % window))}
end
redis.call('INCR', current_key)
redis.call('EXPIRE', current_key, math.ceil(window * 2))
return {1, 0}
"""


class RateLimiter:
    """Sliding-window (two fixed windows, weighted) counters keyed by name and caller."""

    def __init__(self, redis: Any = None, prefix: str = "nexus:rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._script: Any = redis.register_script(_LUA) if redis is not None else None

    async def hit(self, name: str, key: str, limit: int, per_s: float) -> float:
        """Count one hit; returns 0 when allowed, else seconds until it would be."""
        now = time.time()
        full_key = f"{self.prefix}:{name}:{key}"
        if self._script is not None:
            allowed, retry = await self._script(keys=[full_key], args=[now, per_s, limit])
            return 0.0 if int(allowed) else float(retry)
        async with self._lock:
            window = math.floor(now / per_s)
            current = self._local.get(f"{full_key}:{window}", 0)
            previous = self._local.get(f"{full_key}:{window - 1}", 0)
            elapsed = (now % per_s) / per_s
            if previous * (1 - elapsed) + current >= limit:
                return math.ceil(per_s - (now % per_s))
            self._local[f"{full_key}:{window}"] = current + 1
            if len(self._local) > 100_000:
                self._prune(window)
            return 0.0

    async def reset(self, name: str, key: str) -> None:
        full_key = f"{self.prefix}:{name}:{key}"
        if self.redis is not None:
            keys = [k async for k in self.redis.scan_iter(f"{full_key}:*")]
            if keys:
                await self.redis.delete(*keys)
            return
        for k in [k for k in self._local if k.startswith(f"{full_key}:")]:
            del self._local[k]

    def _prune(self, window: int) -> None:
        for k in list(self._local):
            if int(k.rsplit(":", 1)[1]) < window - 1:
                del self._local[k]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_rate_limiter(request: Request) -> RateLimiter:
    runtime = request.app.state.runtime
    limiter = runtime.state.get("rate_limiter")
    if limiter is None:
        prefix = f"{runtime.settings.bus_namespace}:rl"  # one installation's counters only
        limiter = runtime.state["rate_limiter"] = RateLimiter(runtime.redis, prefix=prefix)
    return limiter  # type: ignore[no-any-return]


def rate_limit(
    name: str,
    *,
    limit: int,
    per_s: float,
    key: Callable[[Request], str | Awaitable[str]] = client_ip,
) -> Any:
    """A route dependency enforcing `limit` requests per `per_s` seconds per key."""

    async def dependency(request: Request) -> None:
        value = key(request)
        if not isinstance(value, str):
            value = await value
        await enforce(request, name, value, limit=limit, per_s=per_s)

    return Depends(dependency)


async def enforce(request: Request, name: str, key: str, *, limit: int, per_s: float) -> None:
    """Count one hit for `key`; raise 429 with Retry-After past the limit."""
    retry = await get_rate_limiter(request).hit(name, key, limit, per_s)
    if retry:
        raise RateLimited(
            f"Too many requests; try again in {int(retry)} s.",
            headers={"Retry-After": str(int(retry))},
        )
