"""A sandbox account simulates replies: they take the same path as a real provider's
inbound webhook (normalized, stored once, STOP/START, `nexus.vas.message.received`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from nexus.kernel.events import Event
from nexus.kernel.http import create_app
from nexus.kernel.service import Consumer, HandlerContext, Service
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory, eventually
from tests.services.vas.conftest import VasEnv

PHONE = "+14155550123"


class Watched(VasEnv):
    received: list[Event]

    async def simulate(
        self, provider_id: str, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/providers/{provider_id}/sandbox/inbound",
            json=body,
            headers=headers or self.headers,
        )

    async def messages(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/v1/messages",
            params={"direction": "inbound"},
            headers=headers or self.headers,
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]


@pytest.fixture
async def env(
    make_runtime: RuntimeFactory,
    settings,  # type: ignore[no-untyped-def]
    issuer: TestIssuer,
) -> AsyncIterator[Watched]:
    received: list[Event] = []

    async def record(event: Event, ctx: HandlerContext) -> None:
        received.append(event)

    watcher = Service(
        name="vaswatch",
        consumers=[Consumer("received", ("nexus.vas.message.received",), record)],
    )
    runtime = await make_runtime([vas_service, watcher])
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://nexus.test"
    ) as client:
        watched = Watched(client, runtime, issuer, issuer.headers(org_id="org-a"))
        watched.received = received
        yield watched


async def test_a_simulated_reply_is_stored_and_published_like_a_real_one(env: Watched) -> None:
    account = await env.add_provider(sender="+14155559999")
    response = await env.simulate(account["id"], **{"from": "+1 (415) 555-0123", "body": "Yes!"})
    assert response.status_code == 201, response.text
    message = response.json()
    assert (message["direction"], message["status"], message["channel"]) == (
        "inbound",
        "received",
        "sms",
    )
    assert (message["from"], message["to"], message["body"]) == (PHONE, "+14155559999", "Yes!")
    assert message["provider_id"] == account["id"]
    assert message["provider_message_id"].startswith("sbx_in_")
    assert [m["id"] for m in await env.messages()] == [message["id"]]

    async def published() -> bool:
        return bool(env.received)

    await eventually(published)
    [event] = env.received
    assert event.org_id == "org-a"
    assert event.data["from"] == PHONE
    assert event.data["body"] == "Yes!"
    assert event.data["keyword"] is None


async def test_stop_and_start_from_the_sandbox_change_consent(env: Watched) -> None:
    account = await env.add_provider()
    stop = await env.simulate(account["id"], **{"from": PHONE, "body": " stop "})
    assert stop.status_code == 201, stop.text
    consents = await env.client.get(
        "/api/v1/consents", params={"channel": "sms", "address": PHONE}, headers=env.headers
    )
    assert [(c["opted_out"], c["keyword"]) for c in consents.json()] == [(True, "STOP")]
    refused = await env.send(channel="sms", to=PHONE, body="still there?")
    assert (refused.json()["status"], refused.json()["error_code"]) == ("rejected", "opted_out")

    start = await env.simulate(account["id"], **{"from": PHONE, "body": "START", "to": PHONE})
    assert start.status_code == 201, start.text
    consents = await env.client.get(
        "/api/v1/consents", params={"channel": "sms", "address": PHONE}, headers=env.headers
    )
    assert [(c["opted_out"], c["keyword"]) for c in consents.json()] == [(False, "START")]

    async def both_published() -> bool:
        return [e.data["keyword"] for e in env.received] == ["STOP", "START"]

    await eventually(both_published)


async def test_only_sandbox_accounts_of_the_callers_org_simulate(env: Watched) -> None:
    sandbox = await env.add_provider()
    twilio = await env.add_provider(
        type="twilio",
        name="twilio",
        credentials={"account_sid": "AC" + "1" * 32, "auth_token": "tok"},
    )
    reply = {"from": PHONE, "body": "hi"}

    not_sandbox = await env.simulate(twilio["id"], **reply)
    assert not_sandbox.status_code == 409, not_sandbox.text
    assert not_sandbox.headers["content-type"].startswith("application/problem+json")
    assert "sandbox" in not_sandbox.json()["detail"]

    other_org = await env.simulate(sandbox["id"], env.headers_for("org-b"), **reply)
    assert other_org.status_code == 404, other_org.text
    unknown = await env.simulate("nope", **reply)
    assert unknown.status_code == 404, unknown.text

    reader = env.headers_for("org-a", permissions=["vas:provider:read", "vas:message:read"])
    forbidden = await env.simulate(sandbox["id"], reader, **reply)
    assert forbidden.status_code == 403, forbidden.text

    assert await env.messages() == []
    assert env.received == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "not a number", "body": "hi"}, "from"),
        ({"from": PHONE, "body": "hi", "to": "12"}, "to"),
        ({"from": PHONE, "body": ""}, "body"),
        ({"body": "hi"}, "from"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    env: Watched, body: dict[str, str], field: str
) -> None:
    account = await env.add_provider()
    response = await env.simulate(account["id"], **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    assert await env.messages() == []


async def test_other_channels_normalize_their_own_addresses(env: Watched) -> None:
    account = await env.add_provider(channel="email", sender="sales@acme.example")
    response = await env.simulate(
        account["id"], **{"from": "Hank@Globex.Example", "body": "Send it over"}
    )
    assert response.status_code == 201, response.text
    assert (response.json()["from"], response.json()["to"]) == (
        "Hank@globex.example",
        "sales@acme.example",
    )
