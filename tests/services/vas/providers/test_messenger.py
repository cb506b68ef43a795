"""Messenger Send API adapter against its loopback fake."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    StatusUpdate,
    WebhookRequest,
)
from nexus.services.vas.providers.messenger import Adapter
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.messenger import MessengerFake
from tests.services.vas.providers.conftest import config, webhook

PSID = "6543210987654321"


@pytest.fixture
async def fake(sink: WebhookSink):
    async with MessengerFake(
        callback_url=sink.url("/api/v1/messenger/webhook?account=a"),
        callback_delay_ms=0,
        callback_gap_ms=2,
        read_receipts=True,
    ) as server:
        yield server


def adapter(
    fake: MessengerFake, http: httpx.AsyncClient, credentials: dict[str, str] | None = None
) -> Adapter:
    return Adapter(
        config("messenger", "messenger", credentials or fake.credentials, fake.base_url), http
    )


def msg(to: str = PSID, **kw: object) -> OutboundMessage:
    values: dict[str, object] = {"id": "msg_1", "channel": "messenger", "to": to, "body": "Hello"}
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_send_text(fake: MessengerFake, http: httpx.AsyncClient):
    result = await adapter(fake, http).send(msg())
    assert result.provider_message_id
    assert result.provider_message_id.startswith("m_")
    request = fake.requests[-1]
    assert request.path == f"/v21.0/{fake.credentials['page_id']}/messages"
    assert request.query == {"access_token": fake.credentials["page_access_token"]}
    assert request.json() == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hello"},
    }


async def test_send_tagged_template_and_media(fake: MessengerFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    payload = {
        "template_type": "button",
        "text": "Your order shipped",
        "buttons": [{"type": "web_url", "url": "https://x.test", "title": "Track"}],
    }
    await a.send(
        msg(body=None, template={"payload": payload}, metadata={"tag": "POST_PURCHASE_UPDATE"})
    )
    body = fake.requests[-1].json()
    assert body["messaging_type"] == "MESSAGE_TAG"
    assert body["tag"] == "POST_PURCHASE_UPDATE"
    assert body["message"] == {"attachment": {"type": "template", "payload": payload}}
    await a.send(
        msg(
            metadata={"messaging_type": "UPDATE"},
            media_url="https://x.test/a.pdf",
            media_type="document",
        )
    )
    body = fake.requests[-1].json()
    assert body["messaging_type"] == "UPDATE"
    assert body["message"]["attachment"] == {
        "type": "file",
        "payload": {"url": "https://x.test/a.pdf", "is_reusable": True},
    }


async def test_window_and_recipient_errors(fake: MessengerFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    for to, code in (
        ("1000000000000003", "10"),
        ("1000000000000000", "100"),
        ("1000000000000002", "551"),
    ):
        with pytest.raises(ProviderError) as caught:
            await a.send(msg(to=to))
        assert (caught.value.code, caught.value.retryable) == (code, False)
    # A tagged message may go outside the window.
    await a.send(msg(to="1000000000000003", metadata={"tag": "ACCOUNT_UPDATE"}))
    with pytest.raises(ProviderError) as caught:
        await a.send(msg(metadata={"messaging_type": "MESSAGE_TAG"}))
    assert caught.value.code == "missing_tag"
    with pytest.raises(ProviderError) as caught:
        await a.send(msg(body="x" * 2001))
    assert (caught.value.code, caught.value.retryable) == ("100", False)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("613", True), ("2", True), ("4", True), ("200", False), ("http:500", True)],
)
async def test_error_classification(
    fake: MessengerFake, http: httpx.AsyncClient, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(msg())
    assert caught.value.retryable is retryable


async def test_bad_token_and_health(fake: MessengerFake, http: httpx.AsyncClient):
    bad = adapter(fake, http, {**fake.credentials, "page_access_token": "nope"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(msg())
    assert (caught.value.code, caught.value.retryable) == ("190", False)
    assert not (await bad.health()).ok
    health = await adapter(fake, http).health()
    assert health.ok
    assert "Fake Page" in health.detail
    await fake.set_outage("refuse")
    assert not (await adapter(fake, http).health()).ok
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(msg())
    assert caught.value.retryable


async def test_deliveries_reads_and_signatures(
    fake: MessengerFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    sent = await a.send(msg())
    requests = await sink.wait(2)
    delivery, read = (webhook(r) for r in requests)
    assert a.verify_webhook(delivery)
    assert a.verify_webhook(read)
    [item] = a.parse_webhook(delivery)
    assert isinstance(item, StatusUpdate)
    assert (item.provider_message_id, item.status) == (sent.provider_message_id, "delivered")
    assert item.at is not None
    assert a.parse_webhook(read) == []  # a watermark names no message
    [mark] = a.watermarks(read)
    assert (mark.recipient, mark.status) == (PSID, "read")
    assert not a.verify_webhook(dataclasses.replace(delivery, body=delivery.body + b" "))
    assert not a.verify_webhook(dataclasses.replace(delivery, headers={}))


async def test_inbound_opens_window(
    fake: MessengerFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    await fake.inbound("2000000000000003", "hello page", image_url="https://x.test/p.jpg")
    [request] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    [item] = a.parse_webhook(hook)
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.to, item.body, item.channel) == (
        "2000000000000003",
        fake.credentials["page_id"],
        "hello page",
        "messenger",
    )
    assert item.media == [{"type": "image", "url": "https://x.test/p.jpg"}]
    assert (await a.send(msg(to="2000000000000003"))).provider_message_id


async def test_handshake(fake: MessengerFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http)
    status, _, challenge = await fake.subscribe(sink.url("/api/v1/messenger/webhook?account=a"))
    assert status == 200
    hook = webhook(sink.requests[-1])
    assert a.handshake(hook) == challenge
    assert a.handshake(dataclasses.replace(hook, method="POST")) is None
    assert (
        a.handshake(dataclasses.replace(hook, query={**hook.query, "hub.verify_token": "x"}))
        is None
    )


def test_parse_echoes_postbacks_and_garbage(http: httpx.AsyncClient):
    a = Adapter(
        config(
            "messenger",
            "messenger",
            {"page_access_token": "t", "page_id": "1", "app_secret": "s"},
            "http://x",
        ),
        http,
    )
    for body in (b"", b"{", b'{"entry": [{"messaging": "x"}]}', b'{"entry": [1]}'):
        assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, body)) == []
    payload = {
        "object": "page",
        "entry": [
            {
                "id": "1",
                "messaging": [
                    {
                        "sender": {"id": "1"},
                        "recipient": {"id": "9"},
                        "timestamp": 1,
                        "message": {"mid": "m_echo", "is_echo": True, "text": "ours"},
                    },
                    {
                        "sender": {"id": "9"},
                        "recipient": {"id": "1"},
                        "timestamp": 1700000000000,
                        "postback": {"title": "Get Started", "payload": "START", "mid": "m_pb"},
                    },
                    {
                        "sender": {"id": "9"},
                        "recipient": {"id": "1"},
                        "timestamp": 1,
                        "delivery": {"watermark": 1700000000000},
                    },
                    {"sender": {"id": "9"}, "recipient": {"id": "1"}, "optin": {"ref": "x"}},
                ],
            }
        ],
    }
    hook = WebhookRequest("POST", "http://x", {}, json.dumps(payload).encode())
    [postback] = a.parse_webhook(hook)
    assert isinstance(postback, InboundMessage)
    assert (postback.provider_message_id, postback.body) == ("m_pb", "Get Started")
    [mark] = a.watermarks(hook)
    assert mark.status == "delivered"
