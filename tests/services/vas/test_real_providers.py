"""VAS with real provider adapters against loopback fakes of Twilio and Infobip: the fakes
post their real (signed) delivery reports and inbound messages back to a Nexus server
listening on a loopback port."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from nexus.kernel.http import create_app
from nexus.services.vas import service as vas_service
from nexus.testing.fakes import fake_provider
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory
from tests.kernel.test_cli import free_port
from tests.services.vas.conftest import VasEnv

SENDER = "+15005550006"


@pytest.fixture
async def live(make_runtime: RuntimeFactory, settings, issuer: TestIssuer) -> AsyncIterator[VasEnv]:  # type: ignore[no-untyped-def]
    """VAS served on a real loopback port, so providers' callbacks can reach it."""
    runtime = await make_runtime([vas_service])
    port = free_port()
    runtime.state["vas"].accounts.public_url = f"http://127.0.0.1:{port}"
    app = create_app(settings, runtime=runtime)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield VasEnv(client, runtime, issuer, issuer.headers(org_id="org-live"))
    server.should_exit = True
    await task


async def _provider(env: VasEnv, fake: Any, type_: str, name: str, priority: int) -> dict[str, Any]:
    return await env.add_provider(
        type=type_,
        channel="sms",
        name=name,
        priority=priority,
        base_url=fake.base_url,
        credentials=fake.credentials,
        sender=SENDER,
    )


async def _send(env: VasEnv, n: int, start: int = 0) -> list[dict[str, Any]]:
    ids = []
    for i in range(start, start + n):
        response = await env.send(channel="sms", to=f"+1415555{3000 + i:04d}", body=f"hello {i}")
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return [await env.wait_final(i, timeout_s=20) for i in ids]


async def test_failover_between_real_adapters_and_recovery(live: VasEnv) -> None:
    state = live.runtime.state["vas"]
    state.router.window_s = 1.0
    state.router.circuit.cooldown_s = 0.5
    async with fake_provider("twilio") as twilio, fake_provider("infobip") as infobip:
        first = await _provider(live, twilio, "twilio", "twilio", 1)
        second = await _provider(live, infobip, "infobip", "infobip", 2)
        await twilio.set_outage("error")  # the first provider answers 500s
        messages = await _send(live, 10)
        assert Counter(m["status"] for m in messages) == {"delivered": 10}
        assert {m["provider_id"] for m in messages} == {second["id"]}
        assert infobip.counters["accepted"] == 10

        await twilio.set_outage(None)  # it recovers: traffic returns to it
        await asyncio.sleep(1.1)
        probe = await _send(live, 1, start=100)
        assert probe[0]["provider_id"] == first["id"], probe[0]["history"]
        later = await _send(live, 5, start=200)
        assert {m["provider_id"] for m in later} == {first["id"]}
        assert all(m["status"] == "delivered" for m in later)
        # nothing sent twice: each fake accepted each message once
        assert infobip.counters["accepted"] == 10
        assert twilio.counters["accepted"] == 6


async def test_hanging_provider_fails_over(live: VasEnv) -> None:
    live.runtime.state["vas"].settings.send_timeout_s = 0.3
    async with fake_provider("twilio", max_hang_s=3) as twilio, fake_provider("infobip") as infobip:
        await _provider(live, twilio, "twilio", "twilio", 1)
        second = await _provider(live, infobip, "infobip", "infobip", 2)
        await twilio.set_outage("hang")
        messages = await _send(live, 3)
        assert {m["provider_id"] for m in messages} == {second["id"]}
        assert all(m["status"] == "delivered" for m in messages)


async def test_callback_with_a_bad_signature_is_refused(live: VasEnv) -> None:
    async with fake_provider("twilio") as twilio:
        account = await _provider(live, twilio, "twilio", "twilio", 1)
        url = account["webhook_url"]
        form = {
            "MessageSid": "SM" + "0" * 32,
            "MessageStatus": "delivered",
            "AccountSid": twilio.credentials["account_sid"],
        }
        forged = await live.client.post(url, data=form, headers={"X-Twilio-Signature": "bm9wZQ=="})
        assert forged.status_code == 401
        unsigned = await live.client.post(url, data=form)
        assert unsigned.status_code == 401


async def test_inbound_stop_opts_out_and_start_opts_back_in(live: VasEnv) -> None:
    async with fake_provider("twilio") as twilio:
        account = await _provider(live, twilio, "twilio", "twilio", 1)
        customer = "+14155550199"
        await twilio.inbound(customer, "STOP", to=SENDER, url=account["webhook_url"])
        rejected = await live.send(channel="sms", to=customer, body="promo")
        assert rejected.json()["status"] == "rejected"
        assert rejected.json()["error_code"] == "opted_out"
        inbound = await live.client.get(
            "/api/v1/messages", params={"direction": "inbound"}, headers=live.headers
        )
        assert inbound.json()["items"][0]["body"] == "STOP"
        await twilio.inbound(customer, "START", to=SENDER, url=account["webhook_url"])
        allowed = await live.send(channel="sms", to=customer, body="welcome back")
        assert allowed.json()["status"] == "queued"
