"""Sending through the sandbox: the lifecycle, history, idempotency, validation, opt-out."""

from __future__ import annotations

import asyncio

import pytest

from tests.services.vas.conftest import VasEnv


@pytest.mark.parametrize(
    ("channel", "to"),
    [
        ("sms", "+14155550123"),
        ("whatsapp", "+14155550124"),
        ("telegram", "123456789"),
        ("messenger", "1234567890123"),
        ("email", "ada@example.com"),
    ],
)
async def test_message_reaches_delivered_with_history(vas: VasEnv, channel: str, to: str) -> None:
    await vas.add_provider(channel=channel, name=f"sandbox {channel}")
    response = await vas.send(channel=channel, to=to, body="Hello from Nexus")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    message = await vas.wait_final(response.json()["id"])
    assert message["status"] == "delivered", message
    statuses = [step["status"] for step in message["history"] if step["kind"] == "status"]
    assert statuses == ["accepted", "queued", "sending", "sent", "delivered"]
    routing = [step for step in message["history"] if step["kind"] == "routing"]
    assert routing[0]["data"]["candidates"][0]["name"] == f"sandbox {channel}"


async def test_sms_reports_encoding_segments_and_cost(vas: VasEnv) -> None:
    await vas.add_provider(cost_per_unit="0.01")
    gsm = await vas.send(channel="sms", to="+14155550123", body="x" * 161)
    assert (gsm.json()["encoding"], gsm.json()["segments"]) == ("GSM-7", 2)
    assert float(gsm.json()["estimated_cost"]) == pytest.approx(0.02)
    ucs = await vas.send(channel="sms", to="+14155550123", body="Привет 👋")
    assert (ucs.json()["encoding"], ucs.json()["segments"]) == ("UCS-2", 1)


async def test_idempotency_key_returns_the_original(vas: VasEnv) -> None:
    await vas.add_provider()
    headers = {**vas.headers, "Idempotency-Key": "order-42"}
    first = await vas.send(headers=headers, channel="sms", to="+14155550123", body="once")
    again = await vas.send(headers=headers, channel="sms", to="+14155550123", body="once")
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"channel": "sms", "to": "12", "body": "x"}, "to"),
        ({"channel": "pigeon", "to": "+14155550123", "body": "x"}, "channel"),
        ({"channel": "sms", "to": "+14155550123", "body": "   "}, "body"),
        ({"channel": "sms", "to": "+14155550123", "body": "x" * 1601}, "body"),
    ],
)
async def test_bad_input_is_a_4xx_and_stores_nothing(
    vas: VasEnv, payload: dict, field: str
) -> None:  # type: ignore[type-arg]
    await vas.add_provider()
    response = await vas.send(**payload)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.text
    log = await vas.client.get("/api/v1/messages", headers=vas.headers)
    assert log.json()["items"] == []


async def test_opted_out_recipient_is_rejected_with_reason(vas: VasEnv) -> None:
    await vas.add_provider()
    put = await vas.client.put(
        "/api/v1/consents",
        json={"channel": "sms", "address": "+14155550123", "opted_out": True},
        headers=vas.headers,
    )
    assert put.status_code == 200, put.text
    response = await vas.send(channel="sms", to="+1 415 555 0123", body="promo")
    assert response.json()["status"] == "rejected"
    assert response.json()["error_code"] == "opted_out"


async def test_no_provider_means_rejected(vas: VasEnv) -> None:
    response = await vas.send(channel="sms", to="+14155550123", body="hello")
    assert response.status_code == 202
    assert response.json()["status"] == "rejected"
    assert response.json()["error_code"] == "no_provider"


async def test_other_orgs_cannot_see_messages(vas: VasEnv) -> None:
    await vas.add_provider()
    sent = await vas.send(channel="sms", to="+14155550123", body="private")
    other = vas.headers_for("org-b")
    assert (
        await vas.client.get(f"/api/v1/messages/{sent.json()['id']}", headers=other)
    ).status_code == 404
    assert (await vas.client.get("/api/v1/messages", headers=other)).json()["items"] == []


async def test_scheduled_message_waits_and_can_be_canceled(vas: VasEnv) -> None:
    import datetime as dt

    await vas.add_provider()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    scheduled = await vas.send(channel="sms", to="+14155550123", body="later", send_at=later)
    canceled = await vas.send(
        channel="sms",
        to="+14155550124",
        body="never",
        send_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
    )
    cancel = await vas.client.post(
        f"/api/v1/messages/{canceled.json()['id']}/cancel", headers=vas.headers
    )
    assert cancel.status_code == 200
    assert cancel.json()["status"] == "canceled"
    again = await vas.client.post(
        f"/api/v1/messages/{canceled.json()['id']}/cancel", headers=vas.headers
    )
    assert again.status_code == 409
    await asyncio.sleep(0.5)
    early = (
        await vas.client.get(f"/api/v1/messages/{scheduled.json()['id']}", headers=vas.headers)
    ).json()
    assert early["status"] == "queued"
    final = await vas.wait_final(scheduled.json()["id"])
    assert final["status"] == "delivered"
    assert final["sent_at"] >= later


async def test_message_past_its_validity_expires(vas: VasEnv) -> None:
    vas.runtime.state["vas"].settings.max_attempts = 100  # expiry, not exhaustion, ends it
    await vas.add_provider(options={"fail_rate": 1.0})  # every attempt fails: retries back off
    response = await vas.send(channel="sms", to="+14155550123", body="too late", ttl_s=1)
    final = await vas.wait_final(response.json()["id"])
    assert final["status"] == "expired"
    assert final["error_code"] == "expired"


async def test_org_default_region_and_keywords(vas: VasEnv) -> None:
    await vas.add_provider()
    national = await vas.send(channel="sms", to="020 7946 0018", body="hi")
    assert national.status_code == 422  # no region: a national number is ambiguous
    put = await vas.client.put(
        "/api/v1/vas/settings",
        json={"default_region": "GB", "stop_keywords": ["halt"]},
        headers=vas.headers,
    )
    assert put.status_code == 200, put.text
    assert "HALT" in put.json()["stop_keywords"]
    assert "STOP" in put.json()["stop_keywords"]
    national = await vas.send(channel="sms", to="020 7946 0018", body="hi")
    assert national.json()["to"] == "+442079460018"
    other = await vas.send(
        headers=vas.headers_for("org-b"), channel="sms", to="020 7946 0018", body="x"
    )
    assert other.status_code == 422  # another org's settings are its own
