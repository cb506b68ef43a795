"""Failover between providers, circuit breakers, and recovery."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.services.vas.conftest import VasEnv


async def _send_many(vas: VasEnv, count: int) -> list[dict]:  # type: ignore[type-arg]
    ids = []
    for i in range(count):
        response = await vas.send(channel="sms", to=f"+1415555{1000 + i:04d}", body=f"m{i}")
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return [await vas.wait_final(i) for i in ids]


async def test_failing_provider_fails_over_then_recovers(vas: VasEnv) -> None:
    state = vas.runtime.state["vas"]
    state.router.circuit.cooldown_s = 0.5
    state.router.window_s = 0.5
    first = await vas.add_provider(name="first", priority=1, options={"fail_rate": 1.0})
    second = await vas.add_provider(name="second", priority=2)

    messages = await _send_many(vas, 20)
    assert Counter(m["status"] for m in messages) == {"delivered": 20}
    assert {m["provider_id"] for m in messages} == {second["id"]}
    # failures show in the history as attempts on `first`; after one, `first` scores low
    # (70 % of the score is the recent success rate) and `second` is tried first
    attempts = [
        a
        for m in messages
        for step in m["history"]
        if step["kind"] == "routing"
        for a in step["data"]["attempts"]
    ]
    assert any(a["provider_id"] == first["id"] and a["retryable"] for a in attempts)

    fixed = await vas.client.patch(
        f"/api/v1/providers/{first['id']}", json={"options": {}}, headers=vas.headers
    )
    assert fixed.status_code == 200
    await asyncio.sleep(0.6)  # the failures fade out of the window: `first` ranks first again
    probe = await _send_many(vas, 1)  # half-open: one probe goes to `first`
    assert probe[0]["provider_id"] == first["id"]
    later = await _send_many(vas, 5)  # its success closed the circuit: traffic is back
    assert {m["provider_id"] for m in later} == {first["id"]}
    assert state.router.circuit_state(first["id"]) == "closed"


async def test_hanging_provider_times_out_and_fails_over(vas: VasEnv) -> None:
    vas.runtime.state["vas"].settings.send_timeout_s = 0.2
    await vas.add_provider(name="hangs", priority=1, options={"latency_ms": 5000})
    second = await vas.add_provider(name="works", priority=2)
    messages = await _send_many(vas, 3)
    assert all(m["status"] == "delivered" for m in messages)
    assert {m["provider_id"] for m in messages} == {second["id"]}
    timeouts = [
        a
        for m in messages
        for s in m["history"]
        if s["kind"] == "routing"
        for a in s["data"]["attempts"]
        if a.get("code") == "timeout"
    ]
    assert timeouts


async def test_permanent_error_fails_without_failover(vas: VasEnv) -> None:
    await vas.add_provider(name="first", priority=1)
    await vas.add_provider(name="second", priority=2)
    response = await vas.send(channel="sms", to="+14155550000", body="invalid on the provider")
    message = await vas.wait_final(response.json()["id"])
    assert message["status"] == "failed"
    assert message["error_code"] == "invalid_to"
    attempts = [
        a for s in message["history"] if s["kind"] == "routing" for a in s["data"]["attempts"]
    ]
    assert len(attempts) == 1


async def test_every_provider_down_retries_then_fails(vas: VasEnv) -> None:
    state = vas.runtime.state["vas"]
    state.settings.max_attempts = 2
    await vas.add_provider(name="down", options={"fail_rate": 1.0})
    response = await vas.send(channel="sms", to="+14155550123", body="nobody home")
    message = await vas.wait_final(response.json()["id"], timeout_s=20)
    assert message["status"] == "failed"
    assert message["error_code"] in {"providers_failed", "no_provider"}


def test_circuit_opens_after_a_failure_streak_and_closes_after_a_good_probe() -> None:
    import time

    from nexus.services.vas.router import CircuitConfig, Router

    router = Router(circuit=CircuitConfig(failure_streak=3, cooldown_s=0.05))
    for _ in range(3):
        router.failed("p1")
    assert router.circuit_state("p1") == "open"
    from nexus.services.vas.router import Candidate

    candidate = Candidate(id="p1", name="p1", type="sandbox", priority=1, cost_per_unit=0)  # type: ignore[arg-type]
    assert router.choose([candidate]).order == []  # skipped while open
    time.sleep(0.06)
    assert router.choose([candidate]).order == [candidate]  # half-open: one probe
    router.started("p1")
    assert router.choose([candidate]).order == []  # no second probe in flight
    router.succeeded("p1", 10.0)
    assert router.circuit_state("p1") == "closed"
