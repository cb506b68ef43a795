"""Delivery reports never move a message backwards; customers' webhooks are signed,
retried and logged."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from aiohttp import web

from nexus.services.vas import webhooks_out
from nexus.services.vas.providers.base import StatusUpdate
from nexus.services.vas.reports import enqueue_status
from tests.services.vas.conftest import VasEnv


async def _sent_message(vas: VasEnv) -> dict:  # type: ignore[type-arg]
    # the sandbox's own report ('undelivered') comes a minute later: the test reports first
    await vas.add_provider(options={"delivery_delay_ms": 60_000, "undeliverable_rate": 1.0})
    response = await vas.send(channel="sms", to="+14155550123", body="hello")
    message_id = response.json()["id"]
    for _ in range(200):
        message = (
            await vas.client.get(f"/api/v1/messages/{message_id}", headers=vas.headers)
        ).json()
        if message["status"] == "sent":
            return message  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError("not sent")


async def _report(vas: VasEnv, message: dict, status: str, **kw: object) -> None:  # type: ignore[type-arg]
    state = vas.runtime.state["vas"]
    async with state.db.transaction() as session:
        await enqueue_status(
            session, "org-a", "sandbox", StatusUpdate(message["provider_message_id"], status, **kw)
        )  # type: ignore[arg-type]


async def test_out_of_order_reports_never_move_a_message_backwards(vas: VasEnv) -> None:
    message = await _sent_message(vas)
    await _report(vas, message, "delivered", cost=Decimal("0.0075"), currency="USD")
    final = await vas.wait_final(message["id"])
    assert final["status"] == "delivered"
    await _report(vas, message, "sending")  # late, out of order
    await _report(vas, message, "failed", error_code="30008")  # contradicts a final state
    for _ in range(100):
        final = (
            await vas.client.get(f"/api/v1/messages/{message['id']}", headers=vas.headers)
        ).json()
        if sum(1 for s in final["history"] if s["kind"] == "ignored") == 2:
            break
        await asyncio.sleep(0.05)
    assert final["status"] == "delivered"
    assert final["cost"] is not None
    ignored = [s["status"] for s in final["history"] if s["kind"] == "ignored"]
    assert sorted(ignored) == ["failed", "sending"]


async def test_webhooks_are_signed_retried_and_logged(vas: VasEnv) -> None:
    received: list[tuple[dict, bytes]] = []  # type: ignore[type-arg]
    calls = {"n": 0}

    async def endpoint(request: web.Request) -> web.Response:
        calls["n"] += 1
        body = await request.read()
        if calls["n"] == 1:
            return web.Response(status=500, text="try again")
        received.append(({k.lower(): v for k, v in request.headers.items()}, body))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        created = await vas.client.post(
            "/api/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{port}/hook",
                "events": ["nexus.vas.message.delivered"],
            },
            headers=vas.headers,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        await vas.add_provider()
        sent = await vas.send(channel="sms", to="+14155550123", body="hook me")
        for _ in range(300):
            if received:
                break
            await asyncio.sleep(0.05)
        assert received, "no delivery"
        headers, body = received[0]
        assert webhooks_out.verify(secret, headers["x-nexus-signature"], body)
        assert not webhooks_out.verify("whsec_wrong", headers["x-nexus-signature"], body)
        event = json.loads(body)
        assert event["type"] == "nexus.vas.message.delivered"
        assert event["data"]["message_id"] == sent.json()["id"]
        for _ in range(100):  # the log row is written just after the endpoint answered
            log = await vas.client.get(
                f"/api/v1/webhooks/{created.json()['id']}/deliveries", headers=vas.headers
            )
            attempts = log.json()["items"]
            if len(attempts) == 2:
                break
            await asyncio.sleep(0.05)
        assert [a["succeeded"] for a in reversed(attempts)] == [False, True]
        assert attempts[-1]["status_code"] == 500
    finally:
        await runner.cleanup()


async def test_webhook_config_is_per_org(vas: VasEnv) -> None:
    created = await vas.client.post(
        "/api/v1/webhooks", json={"url": "https://example.com/h"}, headers=vas.headers
    )
    other = vas.headers_for("org-b")
    assert (await vas.client.get("/api/v1/webhooks", headers=other)).json() == []
    deliveries = await vas.client.get(
        f"/api/v1/webhooks/{created.json()['id']}/deliveries", headers=other
    )
    assert deliveries.status_code == 404
