"""Vonage adapter against its loopback fake."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest

from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    StatusUpdate,
    WebhookRequest,
)
from nexus.services.vas.providers.vonage import Adapter, signature
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.vonage import VonageFake
from tests.services.vas.providers.conftest import TOKEN, config, webhook

SECRET = "sig-secret-0123456789"


@pytest.fixture
async def fake():
    async with VonageFake(
        callback_delay_ms=0, callback_gap_ms=1, credentials={"signature_secret": SECRET}
    ) as server:
        yield server


def adapter(
    fake: VonageFake,
    http: httpx.AsyncClient,
    sink: WebhookSink,
    credentials: dict[str, str] | None = None,
    **options: object,
) -> Adapter:
    return Adapter(
        config(
            "vonage",
            "sms",
            credentials or fake.credentials,
            fake.base_url,
            sender="+447700900001",
            status_callback_url=sink.url(f"/api/v1/sms/webhook/vonage?account=a&token={TOKEN}"),
            options=options,
        ),
        http,
    )


def sms(to: str = "+447700900123", body: str = "Hello", **kw: object) -> OutboundMessage:
    return OutboundMessage(id="msg_1", channel="sms", to=to, body=body, **kw)  # type: ignore[arg-type]


async def test_send_wire_format(fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink):
    result = await adapter(fake, http, sink).send(sms(validity_s=3600))
    assert result.provider_message_id == "msg_1"
    assert (result.segments, result.cost, result.currency) == (1, Decimal("0.03330000"), "EUR")
    assert len(result.raw["message_ids"]) == 1
    request = fake.requests[-1]
    assert request.path == "/sms/json"
    form = request.form()
    assert form["api_key"] == fake.credentials["api_key"]
    assert form["api_secret"] == fake.credentials["api_secret"]
    assert (form["from"], form["to"], form["text"], form["type"]) == (
        "447700900001",
        "447700900123",
        "Hello",
        "text",
    )
    assert form["client-ref"] == "msg_1"
    assert form["ttl"] == "3600000"
    assert form["callback"].endswith(f"token={TOKEN}")


async def test_unicode_type(fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink):
    await adapter(fake, http, sink).send(sms(body="Привет 👋", encoding="UCS-2"))
    assert fake.requests[-1].form()["type"] == "unicode"
    assert fake.counters["garbled"] == 0


async def test_long_message_one_receipt_per_segment(
    fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    result = await a.send(sms(body="x" * 400))
    assert result.segments == 3
    assert result.cost == Decimal("0.09990000")
    requests = await sink.wait(3)
    items = [item for r in requests for item in a.parse_webhook(webhook(r))]
    assert len(items) == 3
    assert {i.provider_message_id for i in items} == {"msg_1"}
    assert {i.raw["messageId"] for i in items} == set(result.raw["message_ids"])
    assert all(isinstance(i, StatusUpdate) and i.status == "delivered" for i in items)


@pytest.mark.parametrize(("to", "code"), [("+447700900000", "3"), ("+447700900002", "7")])
async def test_refusals(
    fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink, to: str, code: str
):
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http, sink).send(sms(to=to))
    assert (caught.value.code, caught.value.retryable) == (code, False)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("1", True), ("5", True), ("9", False), ("15", False), ("http:500", True), ("http:429", True)],
)
async def test_error_classification(
    fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http, sink).send(sms())
    assert caught.value.retryable is retryable
    if code == "1":
        assert caught.value.retry_after_s == 1.0


async def test_bad_credentials_and_health(
    fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink
):
    bad = adapter(fake, http, sink, {"api_key": "fakekey1", "api_secret": "nope"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(sms())
    assert (caught.value.code, caught.value.retryable) == ("4", False)
    assert not (await bad.health()).ok
    assert (await adapter(fake, http, sink).health()).ok
    await fake.set_outage("refuse")
    health = await adapter(fake, http, sink).health()
    assert not health.ok
    assert "unreachable" in health.detail


@pytest.mark.parametrize("method", ["POST", "GET", "POST-JSON"])
@pytest.mark.parametrize("sig_method", ["md5hash", "sha256"])
async def test_signed_receipts(
    fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink, method: str, sig_method: str
):
    fake.configure(dlr_method=method, signature_method=sig_method)
    a = adapter(fake, http, sink, signature_method=sig_method)
    await a.send(sms(to="+447700900001"))  # ...0001: accepted, then fails
    [request] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    [item] = a.parse_webhook(hook)
    assert isinstance(item, StatusUpdate)
    assert (item.provider_message_id, item.status, item.error_code) == ("msg_1", "undelivered", "2")
    assert item.at is not None
    if method != "GET":
        tampered = dataclasses.replace(hook, body=hook.body.replace(b"failed", b"delivered"))
        assert not a.verify_webhook(tampered)
    else:
        query = {**hook.query, "status": "delivered"}
        assert not a.verify_webhook(dataclasses.replace(hook, query=query))
    other = adapter(
        fake,
        http,
        sink,
        {**fake.credentials, "signature_secret": "other"},
        signature_method=sig_method,
    )
    assert not other.verify_webhook(hook)


async def test_unsigned_or_stale_refused(
    http: httpx.AsyncClient, sink: WebhookSink, fake: VonageFake
):
    a = adapter(fake, http, sink)
    params = {"messageId": "X", "status": "delivered", "client-ref": "msg_1"}
    unsigned = WebhookRequest("POST", "https://n.test/hook", {}, urlencode(params).encode())
    assert not a.verify_webhook(unsigned)
    stale = {**params, "timestamp": str(int(time.time()) - 3600), "nonce": "n"}
    stale["sig"] = signature(stale, SECRET)
    assert not a.verify_webhook(
        WebhookRequest("POST", "https://n.test/hook", {}, urlencode(stale).encode())
    )
    fresh = {**params, "timestamp": str(int(time.time())), "nonce": "n"}
    fresh["sig"] = signature(fresh, SECRET)
    assert a.verify_webhook(
        WebhookRequest("POST", "https://n.test/hook", {}, urlencode(fresh).encode())
    )


async def test_token_when_no_signature_secret(
    http: httpx.AsyncClient, sink: WebhookSink, fake: VonageFake
):
    a = adapter(fake, http, sink, {"api_key": "k", "api_secret": "s"})
    body = b"messageId=X&status=delivered"
    assert a.verify_webhook(
        WebhookRequest("POST", f"https://n.test/h?token={TOKEN}", {}, body, {"token": TOKEN})
    )
    assert not a.verify_webhook(WebhookRequest("POST", "https://n.test/h", {}, body))


async def test_inbound(fake: VonageFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http, sink)
    await fake.inbound("+447700900555", "STOP", url=sink.url(f"/in?token={TOKEN}"))
    [request] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    [item] = a.parse_webhook(hook)
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.to, item.body) == ("+447700900555", "+447700900000", "STOP")


def test_parse_edge_cases(http: httpx.AsyncClient):
    a = Adapter(config("vonage", "sms", {"api_key": "k", "api_secret": "s"}, "http://x"), http)
    assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, b"")) == []
    assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, b"messageId=1&status=odd")) == []
    [item] = a.parse_webhook(
        WebhookRequest("POST", "http://x", {}, b"messageId=1&status=rejected&scts=2001011400&new=1")
    )
    assert isinstance(item, StatusUpdate)
    assert (item.provider_message_id, item.status) == ("1", "failed")
    assert item.at is not None
    assert item.at.year == 2020
