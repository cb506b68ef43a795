"""Infobip adapter against its loopback fake."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import httpx
import pytest

from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    SendResult,
    StatusUpdate,
    WebhookRequest,
)
from nexus.services.vas.providers.infobip import Adapter, parse_time
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.infobip import InfobipFake
from tests.services.vas.providers.conftest import TOKEN, config, webhook


@pytest.fixture
async def fake():
    async with InfobipFake(callback_delay_ms=0, batch_window_ms=30) as server:
        yield server


def adapter(
    fake: InfobipFake,
    http: httpx.AsyncClient,
    sink: WebhookSink,
    credentials: dict[str, str] | None = None,
) -> Adapter:
    return Adapter(
        config(
            "infobip",
            "sms",
            credentials or fake.credentials,
            fake.base_url,
            sender="InfoSMS",
            status_callback_url=sink.url(f"/api/v1/sms/webhook/infobip?account=a&token={TOKEN}"),
        ),
        http,
    )


def sms(id_: str = "msg_1", to: str = "+41793026727", **kw: object) -> OutboundMessage:
    return OutboundMessage(id=id_, channel="sms", to=to, body=kw.pop("body", "Hello"), **kw)  # type: ignore[arg-type]


async def test_send_wire_format(fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink):
    result = await adapter(fake, http, sink).send(sms(validity_s=3601))
    assert result.provider_message_id == "msg_1"
    assert (result.status, result.segments) == ("sent", 1)
    request = fake.requests[-1]
    assert request.path == "/sms/2/text/advanced"
    assert request.headers["authorization"] == f"App {fake.credentials['api_key']}"
    [message] = request.json()["messages"]
    assert message["destinations"] == [{"to": "41793026727", "messageId": "msg_1"}]
    assert message["from"] == "InfoSMS"
    assert message["text"] == "Hello"
    assert message["notifyUrl"].endswith(f"token={TOKEN}")
    assert message["notifyContentType"] == "application/json"
    assert message["callbackData"] == "msg_1"
    assert message["validityPeriod"] == 61  # minutes, rounded up


async def test_batch_in_one_request(fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink):
    outcomes = await adapter(fake, http, sink).send_many(
        [sms("m1"), sms("m2", to="+41793020000"), sms("m3", to="+41793020001")]
    )
    assert len(fake.requests) == 1
    assert len(fake.requests[-1].json()["messages"]) == 3
    first, second, third = outcomes
    assert isinstance(first, SendResult)
    assert first.provider_message_id == "m1"
    assert isinstance(second, ProviderError)
    assert (second.code, second.retryable) == ("REJECTED_DESTINATION", False)
    assert isinstance(third, SendResult)


@pytest.mark.parametrize(
    ("code", "retryable", "status"),
    [
        ("TOO_MANY_REQUESTS", True, 429),
        ("GENERAL_ERROR", True, 500),
        ("BAD_REQUEST", False, 400),
        ("REJECTED_NOT_ENOUGH_CREDITS", False, 200),
        ("http:503", True, 503),
    ],
)
async def test_error_classification(
    fake: InfobipFake,
    http: httpx.AsyncClient,
    sink: WebhookSink,
    code: str,
    retryable: bool,
    status: int,
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http, sink).send(sms())
    assert caught.value.retryable is retryable
    assert caught.value.status_code == status
    if not code.startswith("http:"):
        assert caught.value.code == code


async def test_bad_credentials_and_health(
    fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink
):
    good = adapter(fake, http, sink)
    bad = adapter(fake, http, sink, {"api_key": "nope"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(sms())
    assert (caught.value.code, caught.value.retryable, caught.value.status_code) == (
        "UNAUTHORIZED",
        False,
        401,
    )
    assert (await good.health()).ok
    assert "EUR" in (await good.health()).detail
    assert not (await bad.health()).ok
    await fake.set_outage("refuse")
    assert not (await good.health()).ok
    with pytest.raises(ProviderError) as caught:
        await good.send(sms())
    assert caught.value.retryable


async def test_delivery_reports_batched_and_parsed(
    fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    for i in range(5):
        await a.send(sms(f"m{i}", to="+4179302000" + ("1" if i == 4 else "5")))
    [request] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    items = a.parse_webhook(hook)
    assert len(items) == 5  # one request, five results
    by_id = {i.provider_message_id: i for i in items}
    assert all(isinstance(i, StatusUpdate) for i in items)
    delivered = by_id["m0"]
    assert isinstance(delivered, StatusUpdate)
    assert delivered.status == "delivered"
    assert delivered.error_code is None
    assert (delivered.cost, delivered.currency) == (Decimal("0.01"), "EUR")
    assert delivered.at is not None
    failed = by_id["m4"]
    assert isinstance(failed, StatusUpdate)
    assert (failed.status, failed.error_code) == ("undelivered", "EC_ABSENT_SUBSCRIBER")


async def test_hundred_results_per_report(
    fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    outcomes = await a.send_many([sms(f"m{i}") for i in range(150)])
    assert all(isinstance(o, SendResult) for o in outcomes)
    requests = await sink.wait(2)
    sizes = sorted(len(r.json()["results"]) for r in requests)
    assert sizes == [50, 100]
    assert sum(len(a.parse_webhook(webhook(r))) for r in requests) == 150


async def test_token_verification(fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http, sink)
    body = b'{"results": []}'
    assert a.verify_webhook(
        WebhookRequest("POST", f"https://n.test/hook?token={TOKEN}", {}, body, {"token": TOKEN})
    )
    assert a.verify_webhook(WebhookRequest("POST", f"https://n.test/hooks/{TOKEN}/dlr", {}, body))
    assert not a.verify_webhook(
        WebhookRequest("POST", "https://n.test/hook?token=guess", {}, body, {"token": "guess"})
    )
    assert not a.verify_webhook(WebhookRequest("POST", "https://n.test/hook", {}, body))
    empty = Adapter(dataclasses.replace(a.config, webhook_token=""), http)
    assert not empty.verify_webhook(
        WebhookRequest("POST", "https://n.test/hook?token=", {}, body, {"token": ""})
    )


async def test_inbound(fake: InfobipFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http, sink)
    await fake.inbound("+41793026731", "STOP now", url=sink.url(f"/in?token={TOKEN}"))
    [request] = await sink.wait(1)
    assert a.verify_webhook(webhook(request))
    [item] = a.parse_webhook(webhook(request))
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.to, item.body, item.channel) == (
        "+41793026731",
        "+447491163443",
        "STOP now",
        "sms",
    )
    assert item.at is not None


def test_parse_tolerates_garbage_and_unknown_fields():
    a = Adapter(config("infobip", "sms", {"api_key": "k"}, "http://x"), httpx.AsyncClient())
    for body in (b"", b"[]", b"{}", b'{"results": "x"}', b'{"results": [1, {"x": 1}]}', b"{bad"):
        assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, body)) == []
    result = {
        "messageId": "m",
        "status": {"groupId": 3, "name": "DELIVERED_TO_HANDSET"},
        "newField": {"a": 1},
        "doneAt": "2019-11-09T16:00:00.000+0000",
    }
    [item] = a.parse_webhook(
        WebhookRequest("POST", "http://x", {}, json.dumps({"results": [result]}).encode())
    )
    assert isinstance(item, StatusUpdate)
    assert item.at == dt.datetime(2019, 11, 9, 16, tzinfo=dt.UTC)
    assert parse_time("nonsense") is None
