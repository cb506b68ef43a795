"""WhatsApp Cloud API adapter against its loopback fake."""

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
from nexus.services.vas.providers.whatsapp_cloud import Adapter
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.whatsapp_cloud import WhatsAppCloudFake
from tests.services.vas.providers.conftest import TOKEN, config, webhook

TO = "+14155550100"


@pytest.fixture
async def fake(sink: WebhookSink):
    url = sink.url("/api/v1/whatsapp/webhook?account=a")
    async with WhatsAppCloudFake(
        callback_url=url, callback_delay_ms=0, callback_gap_ms=2, read_receipts=True
    ) as server:
        yield server


def adapter(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, credentials: dict[str, str] | None = None
) -> Adapter:
    return Adapter(
        config(
            "whatsapp_cloud",
            "whatsapp",
            credentials or fake.credentials,
            fake.base_url,
            options={"health_timeout_s": 0.2},
        ),
        http,
    )


def wa(to: str = TO, **kw: object) -> OutboundMessage:
    values: dict[str, object] = {"id": "msg_1", "channel": "whatsapp", "to": to, "body": "Hello"}
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_send_text(fake: WhatsAppCloudFake, http: httpx.AsyncClient):
    result = await adapter(fake, http).send(wa(metadata={"preview_url": True}))
    assert result.provider_message_id
    assert result.provider_message_id.startswith("wamid.")
    request = fake.requests[-1]
    assert request.path == f"/v21.0/{fake.credentials['phone_number_id']}/messages"
    assert request.headers["authorization"] == f"Bearer {fake.credentials['access_token']}"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "14155550100",
        "biz_opaque_callback_data": "msg_1",
        "type": "text",
        "text": {"body": "Hello", "preview_url": True},
    }


async def test_send_template_media_location(fake: WhatsAppCloudFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    await a.send(
        wa(
            body=None,
            template={"name": "order_update", "language": "en_US", "variables": ["Ada", "42"]},
        )
    )
    body = fake.requests[-1].json()
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "42"}],
            }
        ],
    }
    components = [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://x.test/i.png"}}],
        }
    ]
    await a.send(wa(template={"name": "t", "language": {"code": "fr"}, "components": components}))
    assert fake.requests[-1].json()["template"]["components"] == components
    await a.send(
        wa(
            body="The invoice",
            media_url="https://x.test/f.pdf",
            media_type="document",
            metadata={"filename": "f.pdf"},
        )
    )
    body = fake.requests[-1].json()
    assert (body["type"], body["document"]) == (
        "document",
        {"link": "https://x.test/f.pdf", "caption": "The invoice", "filename": "f.pdf"},
    )
    await a.send(wa(body=None, location={"latitude": 52.52, "longitude": 13.4}))
    body = fake.requests[-1].json()
    assert (body["type"], body["location"]) == ("location", {"latitude": 52.52, "longitude": 13.4})
    assert fake.counters["accepted"] == 4


async def test_validation_errors_are_permanent(fake: WhatsAppCloudFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    with pytest.raises(ProviderError) as caught:
        await a.send(wa(body="x" * 4097))
    assert (caught.value.code, caught.value.retryable, caught.value.status_code) == (
        "100",
        False,
        400,
    )
    with pytest.raises(ProviderError) as caught:
        await a.send(wa(to="+14155550000"))
    assert (caught.value.code, caught.value.retryable) == ("131009", False)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("130429", True),
        ("131000", True),
        ("131016", True),
        ("131056", True),
        ("4", True),
        ("131026", False),
        ("131047", False),
        ("100", False),
        ("http:502", True),
    ],
)
async def test_error_classification(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(wa())
    assert caught.value.retryable is retryable
    if not code.startswith("http:"):
        assert caught.value.code == code


async def test_bad_token_and_health(fake: WhatsAppCloudFake, http: httpx.AsyncClient):
    bad = adapter(fake, http, {**fake.credentials, "access_token": "nope"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(wa())
    assert (caught.value.code, caught.value.status_code, caught.value.retryable) == (
        "190",
        401,
        False,
    )
    assert not (await bad.health()).ok
    health = await adapter(fake, http).health()
    assert health.ok
    assert "GREEN" in health.detail
    wrong_phone = adapter(fake, http, {**fake.credentials, "phone_number_id": "1"})
    assert not (await wrong_phone.health()).ok
    async with httpx.AsyncClient(timeout=0.2) as short:
        await fake.set_outage("hang")
        health = await adapter(fake, short).health()
        assert not health.ok
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, short).send(wa())
        assert (caught.value.retryable, caught.value.code) == (True, "timeout")
        await fake.set_outage(None)


async def test_statuses_signed_and_parsed(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    ok = await a.send(wa())
    failed = await a.send(wa(to="+14155550001"))
    window = await a.send(wa(to="+14155550003"))
    requests = await sink.wait(5)
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for request in requests:
        hook = webhook(request)
        assert a.verify_webhook(hook)
        for item in a.parse_webhook(hook):
            assert isinstance(item, StatusUpdate)
            assert item.at is not None
            seen.setdefault(item.provider_message_id, []).append((item.status, item.error_code))
    assert seen == {
        ok.provider_message_id: [("sent", None), ("delivered", None), ("read", None)],
        failed.provider_message_id: [("failed", "131026")],
        window.provider_message_id: [("failed", "131047")],
    }


async def test_template_allowed_outside_window(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    await a.send(wa(to="+14155550003", template={"name": "hello_world", "language": "en_US"}))
    await sink.wait(3)


async def test_tampered_or_unsigned_refused(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    await a.send(wa())
    [request, *_] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    assert not a.verify_webhook(dataclasses.replace(hook, body=hook.body.replace(b"sent", b"read")))
    assert not a.verify_webhook(dataclasses.replace(hook, headers={}))
    other = adapter(fake, http, {**fake.credentials, "app_secret": "another"})
    assert not other.verify_webhook(hook)


async def test_inbound_and_out_of_order(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http)
    await fake.inbound("+14155550003", "Hi there", profile_name="Ada")
    await fake.inbound("+14155550004", "photo", image_id="MEDIA1")
    first, second = await sink.wait(2)
    [text] = a.parse_webhook(webhook(first))
    [image] = a.parse_webhook(webhook(second))
    assert isinstance(text, InboundMessage)
    assert (text.sender, text.to, text.body, text.channel) == (
        "+14155550003",
        "+15550783881",
        "Hi there",
        "whatsapp",
    )
    assert isinstance(image, InboundMessage)
    assert image.media[0]["id"] == "MEDIA1"
    assert image.body == "photo"
    # The sender wrote in: the 24-hour window is open for free-form messages now.
    await a.send(wa(to="+14155550003"))
    requests = await sink.wait(4)
    statuses = [
        i.status
        for r in requests[2:]
        for i in a.parse_webhook(webhook(r))
        if isinstance(i, StatusUpdate)
    ]
    assert "failed" not in statuses


async def test_shuffled_and_duplicated_callbacks(
    fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink
):
    fake.configure(shuffle_callbacks=True, duplicate_callbacks=True)
    a = adapter(fake, http)
    await a.send(wa())
    requests = await sink.wait(6)
    statuses = [
        i.status
        for r in requests
        for i in a.parse_webhook(webhook(r))
        if isinstance(i, StatusUpdate)
    ]
    assert sorted(statuses) == sorted(["sent", "delivered", "read"] * 2)


async def test_handshake(fake: WhatsAppCloudFake, http: httpx.AsyncClient, sink: WebhookSink):
    a = adapter(fake, http)
    status, _, challenge = await fake.subscribe(sink.url("/api/v1/whatsapp/webhook?account=a"))
    assert status == 200
    hook = webhook(sink.requests[-1])
    assert a.handshake(hook) == challenge
    wrong = dataclasses.replace(hook, query={**hook.query, "hub.verify_token": "guess"})
    assert a.handshake(wrong) is None
    assert a.handshake(dataclasses.replace(hook, query={**hook.query, "hub.mode": "x"})) is None
    # Without a configured verify token the account's webhook token is the verify token.
    no_verify = {k: v for k, v in fake.credentials.items() if k != "verify_token"}
    b = adapter(fake, http, no_verify)
    assert (
        b.handshake(dataclasses.replace(hook, query={**hook.query, "hub.verify_token": TOKEN}))
        == challenge
    )


def test_parse_ignores_unknown_and_garbage(http: httpx.AsyncClient):
    a = Adapter(
        config(
            "whatsapp_cloud",
            "whatsapp",
            {"access_token": "t", "phone_number_id": "1", "app_secret": "s"},
            "http://x",
        ),
        http,
    )
    for body in (b"", b"{", b"[]", b'{"entry": 1}', b'{"entry": [{"changes": [1, {"value": 2}]}]}'):
        assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, body)) == []
    payload = {
        "object": "whatsapp_business_account",
        "new": True,
        "entry": [
            {
                "changes": [
                    {
                        "field": "account_update",
                        "value": {"statuses": [{"id": "x", "status": "sent"}]},
                    },
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                {"id": "w1", "status": "deleted"},
                                {
                                    "id": "w2",
                                    "status": "delivered",
                                    "timestamp": "1700000000",
                                    "x": 1,
                                },
                            ],
                            "messages": [
                                {
                                    "from": "15551234567",
                                    "id": "w3",
                                    "type": "reaction",
                                    "reaction": {"emoji": "👍"},
                                }
                            ],
                            "errors": [{"code": 1}],
                        },
                    },
                ]
            }
        ],
    }
    items = a.parse_webhook(WebhookRequest("POST", "http://x", {}, json.dumps(payload).encode()))
    assert [type(i).__name__ for i in items] == ["StatusUpdate", "InboundMessage"]
    assert items[0].provider_message_id == "w2"
