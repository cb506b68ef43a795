"""Choosing a provider for each message: scores, circuit breakers, rate limits.

Score = 0.7 * recent success rate + 0.3 * health, minus a latency penalty (up to 0.1 at
1 s). Providers whose scores are within 0.05 of the best count as equal; among equals
the cheaper one wins, then the operator's priority. A provider whose circuit is open
is skipped until its cool-down ends; then one probe message is let through (half-open)
and its outcome closes or re-opens the circuit. Per-provider rate limits hold across
processes when Redis is configured. Every decision is explained for the history.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class ProviderStats:
    """What one process has seen of one provider recently (the last `window_s` seconds,
    at most 50 outcomes): old failures fade, so a provider that recovered gets traffic
    again even when nothing was sent to it meanwhile."""

    window: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=50))
    window_s: float = 30.0
    latency_ms: float | None = None  # EWMA
    healthy: bool = True
    state: str = CLOSED
    failures_in_row: int = 0
    opened_at: float = 0.0
    probe_in_flight: bool = False
    last_used: float = 0.0

    def recent(self) -> list[bool]:
        cutoff = time.monotonic() - self.window_s
        return [ok for at, ok in self.window if at >= cutoff]

    def success_rate(self) -> float:
        recent = self.recent()
        return sum(recent) / len(recent) if recent else 1.0


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str
    type: str
    priority: int
    cost_per_unit: Decimal
    countries: tuple[str, ...] = ()
    rate_limit_per_s: float | None = None


@dataclass
class Choice:
    order: list[Candidate]
    explanation: list[dict[str, Any]]


@dataclass
class CircuitConfig:
    failure_streak: int = 5  # consecutive retryable failures that open the circuit
    failure_rate: float = 0.5  # or this failure rate over at least `min_samples`
    min_samples: int = 20
    cooldown_s: float = 10.0


class Router:
    def __init__(
        self, *, redis: Any = None, circuit: CircuitConfig | None = None, window_s: float = 30.0
    ) -> None:
        self.stats: dict[str, ProviderStats] = {}
        self.window_s = window_s
        self.circuit = circuit or CircuitConfig()
        self.redis = redis
        self._local_buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, updated)
        self._lock = asyncio.Lock()

    def stats_of(self, provider_id: str) -> ProviderStats:
        stats = self.stats.get(provider_id)
        if stats is None:
            stats = self.stats[provider_id] = ProviderStats(window_s=self.window_s)
        return stats

    # -- choosing ---------------------------------------------------------------------
    def score(self, candidate: Candidate) -> float:
        s = self.stats_of(candidate.id)
        latency_penalty = min((s.latency_ms or 0) / 10_000, 0.1)
        return 0.7 * s.success_rate() + 0.3 * (1.0 if s.healthy else 0.0) - latency_penalty

    def _available(self, candidate: Candidate, now: float) -> tuple[bool, str]:
        s = self.stats_of(candidate.id)
        if s.state == OPEN:
            if now - s.opened_at < self.circuit.cooldown_s:
                return False, "circuit open"
            s.state = HALF_OPEN
            s.probe_in_flight = False
        if s.state == HALF_OPEN:
            if s.probe_in_flight:
                return False, "circuit half-open, probe in flight"
            return True, "circuit half-open: probe"
        return True, "circuit closed"

    def choose(self, candidates: list[Candidate], country: str | None = None) -> Choice:
        now = time.monotonic()
        rows: list[tuple[Candidate, float]] = []
        explanation: list[dict[str, Any]] = []
        for candidate in candidates:
            entry: dict[str, Any] = {"provider_id": candidate.id, "name": candidate.name}
            if country and candidate.countries and country not in candidate.countries:
                entry.update(eligible=False, reason=f"does not serve {country}")
                explanation.append(entry)
                continue
            ok, why = self._available(candidate, now)
            score = round(self.score(candidate), 4)
            entry.update(
                eligible=ok,
                reason=why,
                score=score,
                success_rate=round(self.stats_of(candidate.id).success_rate(), 3),
                priority=candidate.priority,
                cost=str(candidate.cost_per_unit),
            )
            explanation.append(entry)
            if ok:
                rows.append((candidate, score))
        rows.sort(key=lambda r: -r[1])
        ordered: list[Candidate] = []
        while rows:  # group scores within 0.05 of the best, then priority, then cost
            best = rows[0][1]
            group = [r for r in rows if best - r[1] <= 0.05]
            rows = [r for r in rows if best - r[1] > 0.05]
            group.sort(key=lambda r: (r[0].cost_per_unit, r[0].priority))
            ordered += [c for c, _ in group]
        rank = {c.id: i + 1 for i, c in enumerate(ordered)}
        for entry in explanation:
            entry["rank"] = rank.get(entry["provider_id"])
        return Choice(ordered, explanation)

    # -- outcomes ---------------------------------------------------------------------
    def started(self, provider_id: str) -> None:
        s = self.stats_of(provider_id)
        s.last_used = time.monotonic()
        if s.state == HALF_OPEN:
            s.probe_in_flight = True

    def succeeded(self, provider_id: str, latency_ms: float) -> None:
        s = self.stats_of(provider_id)
        s.window.append((time.monotonic(), True))
        s.latency_ms = latency_ms if s.latency_ms is None else 0.8 * s.latency_ms + 0.2 * latency_ms
        s.failures_in_row = 0
        s.state, s.probe_in_flight = CLOSED, False

    def failed(self, provider_id: str, latency_ms: float | None = None) -> None:
        """A retryable failure (error, timeout): counts toward opening the circuit."""
        s = self.stats_of(provider_id)
        s.window.append((time.monotonic(), False))
        if latency_ms is not None:
            s.latency_ms = (
                latency_ms if s.latency_ms is None else 0.8 * s.latency_ms + 0.2 * latency_ms
            )
        s.failures_in_row += 1
        too_many = s.failures_in_row >= self.circuit.failure_streak or (
            len(s.recent()) >= self.circuit.min_samples
            and 1 - s.success_rate() >= self.circuit.failure_rate
        )
        if s.state == HALF_OPEN or too_many:
            s.state, s.opened_at, s.probe_in_flight = OPEN, time.monotonic(), False

    def set_health(self, provider_id: str, healthy: bool) -> None:
        self.stats_of(provider_id).healthy = healthy

    def circuit_state(self, provider_id: str) -> str:
        s = self.stats_of(provider_id)
        if s.state == OPEN and time.monotonic() - s.opened_at >= self.circuit.cooldown_s:
            return HALF_OPEN
        return s.state

    # -- rate limits ------------------------------------------------------------------
    async def acquire(self, candidate: Candidate, units: int = 1) -> float:
        """Take `units` (segments) from the provider's budget; 0 when allowed, else the
        seconds until it would be. Without a limit, always 0."""
        rate = candidate.rate_limit_per_s
        if not rate:
            return 0.0
        if self.redis is not None:
            return await self._acquire_redis(candidate.id, rate, units)
        async with self._lock:
            now = time.monotonic()
            tokens, updated = self._local_buckets.get(candidate.id, (rate, now))
            tokens = min(rate, tokens + (now - updated) * rate)
            if tokens >= units:
                self._local_buckets[candidate.id] = (tokens - units, now)
                return 0.0
            self._local_buckets[candidate.id] = (tokens, now)
            return (units - tokens) / rate

    async def _acquire_redis(self, provider_id: str, rate: float, units: int) -> float:
        script = self.redis.register_script(_BUCKET_LUA)
        wait = await script(keys=[f"nexus:vas:rl:{provider_id}"], args=[rate, units, time.time()])
        return float(wait)


_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local units = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or rate
local updated = tonumber(state[2]) or now
tokens = math.min(rate, tokens + (now - updated) * rate)
local wait = 0
if tokens >= units then
  tokens = tokens - units
else
  wait = (units - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'updated', now)
redis.call('EXPIRE', KEYS[1], 60)
return tostring(wait)
"""
