"""Group commit of the send endpoints: concurrent requests share transactions, yet each
gets exactly its own messages, replays and rejections."""

from __future__ import annotations

import asyncio

from nexus.services.vas.state import vas_of
from tests.services.vas.conftest import VasEnv


async def test_concurrent_sends_share_transactions_and_each_gets_its_message(
    vas: VasEnv,
) -> None:
    await vas.add_provider()
    acceptor = vas_of(vas.runtime).acceptor
    before = acceptor.batches
    numbers = [f"+1415555{i:04d}" for i in range(40)]
    responses = await asyncio.gather(
        *(vas.send(channel="sms", to=to, body=f"hello {to}") for to in numbers)
    )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    assert [r.json()["to"] for r in responses] == numbers
    assert len({r.json()["id"] for r in responses}) == 40
    assert acceptor.batches - before < 40  # some requests were committed together
    listed = await vas.client.get("/api/v1/messages?limit=100", headers=vas.headers)
    assert len(listed.json()["items"]) == 40


async def test_same_key_in_concurrent_requests_is_one_message(vas: VasEnv) -> None:
    await vas.add_provider()
    headers = {**vas.headers, "Idempotency-Key": "order-42"}
    responses = await asyncio.gather(
        *(
            vas.client.post(
                "/api/v1/messages/send",
                json={"channel": "sms", "to": "+14155550100", "body": "once"},
                headers=headers,
            )
            for _ in range(10)
        )
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == 9


async def test_an_opted_out_recipient_in_a_batch_is_rejected_alone(vas: VasEnv) -> None:
    await vas.add_provider()
    opt_out = await vas.client.put(
        "/api/v1/consents",
        json={"channel": "sms", "address": "+14155550111", "opted_out": True},
        headers=vas.headers,
    )
    assert opt_out.status_code == 200, opt_out.text
    responses = await asyncio.gather(
        vas.send(channel="sms", to="+14155550111", body="no"),
        vas.send(channel="sms", to="+14155550112", body="yes"),
    )
    assert [r.json()["status"] for r in responses] == ["rejected", "queued"]
    assert responses[0].json()["error_code"] == "opted_out"
