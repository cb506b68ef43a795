"""Africa's Talking adapter against its loopback fake."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from nexus.services.vas.providers.africastalking import SANDBOX_URL, Adapter, parse_cost
from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    StatusUpdate,
    WebhookRequest,
)
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.africastalking import AfricasTalkingFake
from tests.services.vas.providers.conftest import TOKEN, config, webhook


@pytest.fixture
async def fake(sink: WebhookSink):
    url = sink.url(f"/api/v1/sms/webhook/africastalking?account=a&token={TOKEN}")
    async with AfricasTalkingFake(
        callback_url=url, callback_delay_ms=0, callback_gap_ms=2
    ) as server:
        yield server


def adapter(
    fake: AfricasTalkingFake, http: httpx.AsyncClient, credentials: dict[str, str] | None = None
) -> Adapter:
    return Adapter(
        config(
            "africastalking", "sms", credentials or fake.credentials, fake.base_url, sender="NEXUS"
        ),
        http,
    )


def sms(to: str = "+254711082300", body: str = "Hello") -> OutboundMessage:
    return OutboundMessage(id="msg_1", channel="sms", to=to, body=body)


async def test_send_wire_format(fake: AfricasTalkingFake, http: httpx.AsyncClient):
    result = await adapter(fake, http).send(sms())
    assert result.provider_message_id
    assert result.provider_message_id.startswith("ATXid_")
    assert (result.cost, result.currency) == (Decimal("0.8000"), "KES")
    request = fake.requests[-1]
    assert request.path == "/version1/messaging"
    assert request.headers["apikey"] == fake.credentials["api_key"]
    assert request.headers["accept"] == "application/json"
    assert request.form() == {
        "username": "sandbox",
        "to": "+254711082300",
        "message": "Hello",
        "from": "NEXUS",
    }


@pytest.mark.parametrize(
    ("to", "code"), [("+254711080000", "403"), ("+254711080002", "406"), ("0711", "403")]
)
async def test_recipient_refusals_are_permanent(
    fake: AfricasTalkingFake, http: httpx.AsyncClient, to: str, code: str
):
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(sms(to=to))
    assert (caught.value.code, caught.value.retryable) == (code, False)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("405", False), ("407", False), ("500", True), ("502", True), ("http:503", True)],
)
async def test_error_classification(
    fake: AfricasTalkingFake, http: httpx.AsyncClient, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(sms())
    assert caught.value.retryable is retryable


async def test_bad_credentials_and_health(fake: AfricasTalkingFake, http: httpx.AsyncClient):
    bad = adapter(fake, http, {**fake.credentials, "api_key": "wrong"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(sms())
    assert (caught.value.status_code, caught.value.retryable, caught.value.code) == (
        401,
        False,
        "unauthorized",
    )
    assert not (await bad.health()).ok
    health = await adapter(fake, http).health()
    assert health.ok
    assert "KES" in health.detail
    await fake.set_outage("error")
    assert not (await adapter(fake, http).health()).ok


async def test_delivery_reports(
    fake: AfricasTalkingFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    ok = await a.send(sms())
    bad = await a.send(sms(to="+254711080001"))
    requests = await sink.wait(4)
    seen: dict[str | None, list[str]] = {}
    for request in requests:
        hook = webhook(request)
        assert a.verify_webhook(hook)
        [item] = a.parse_webhook(hook)
        assert isinstance(item, StatusUpdate)
        seen.setdefault(item.provider_message_id, []).append(item.status)
        if item.status == "undelivered":
            assert item.error_code == "AbsentSubscriber"
    assert seen == {
        ok.provider_message_id: ["sent", "delivered"],
        bad.provider_message_id: ["sent", "undelivered"],
    }


async def test_token_required(fake: AfricasTalkingFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    body = b"id=ATXid_1&status=Success&phoneNumber=%2B254711082300"
    assert not a.verify_webhook(WebhookRequest("POST", "https://n.test/hook", {}, body))
    assert not a.verify_webhook(
        WebhookRequest("POST", "https://n.test/hook?token=x", {}, body, {"token": "x"})
    )
    assert a.verify_webhook(
        WebhookRequest("POST", f"https://n.test/hook?token={TOKEN}", {}, body, {"token": TOKEN})
    )


async def test_inbound(fake: AfricasTalkingFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http)
    await fake.inbound("+254711082399", "STOP")
    [request] = await sink.wait(1)
    [item] = a.parse_webhook(webhook(request))
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.to, item.body) == ("+254711082399", "21525", "STOP")
    assert item.at is not None


def test_parse_edge_cases(http: httpx.AsyncClient):
    a = Adapter(
        config("africastalking", "sms", {"username": "u", "api_key": "k"}, "http://x"), http
    )
    assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, b"")) == []
    assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, b"id=1&status=Weird")) == []
    [item] = a.parse_webhook(
        WebhookRequest("POST", "http://x", {}, b"id=1&status=Rejected&extra=1")
    )
    assert isinstance(item, StatusUpdate)
    assert (item.status, item.error_code) == ("failed", "Rejected")
    assert parse_cost("USD 0.0100") == (Decimal("0.0100"), "USD")
    assert parse_cost("0") == (None, None)


def test_sandbox_host(http: httpx.AsyncClient):
    a = Adapter(
        config("africastalking", "sms", {"username": "sandbox", "api_key": "k"}, None), http
    )
    assert a.base_url == SANDBOX_URL
