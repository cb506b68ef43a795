"""Telegram Bot API adapter against its loopback fake."""

from __future__ import annotations

import dataclasses
import json

import httpx
import pytest

from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    WebhookRequest,
)
from nexus.services.vas.providers.telegram import Adapter
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.telegram import TelegramFake
from tests.services.vas.providers.conftest import config, webhook

CHAT = "424242"


@pytest.fixture
async def fake():
    async with TelegramFake() as server:
        yield server


def adapter(
    fake: TelegramFake, http: httpx.AsyncClient, credentials: dict[str, str] | None = None
) -> Adapter:
    return Adapter(
        config("telegram", "telegram", credentials or fake.credentials, fake.base_url), http
    )


def tg(to: str = CHAT, **kw: object) -> OutboundMessage:
    values: dict[str, object] = {"id": "msg_1", "channel": "telegram", "to": to, "body": "Hello"}
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_send_message(fake: TelegramFake, http: httpx.AsyncClient):
    result = await adapter(fake, http).send(tg(metadata={"parse_mode": "HTML"}))
    assert result.provider_message_id == f"{CHAT}:1"
    assert result.status == "sent"
    request = fake.requests[-1]
    assert request.path == f"/bot{fake.credentials['bot_token']}/sendMessage"
    assert request.json() == {"chat_id": 424242, "text": "Hello", "parse_mode": "HTML"}
    assert (await adapter(fake, http).send(tg())).provider_message_id == f"{CHAT}:2"


async def test_send_photo_document_location(fake: TelegramFake, http: httpx.AsyncClient):
    a = adapter(fake, http)
    await a.send(tg(body="A cat", media_url="https://x.test/cat.jpg", media_type="image"))
    request = fake.requests[-1]
    assert request.path.endswith("/sendPhoto")
    assert request.json() == {
        "chat_id": 424242,
        "photo": "https://x.test/cat.jpg",
        "caption": "A cat",
    }
    await a.send(tg(body=None, media_url="https://x.test/f.pdf", media_type="document"))
    request = fake.requests[-1]
    assert request.path.endswith("/sendDocument")
    assert request.json() == {"chat_id": 424242, "document": "https://x.test/f.pdf"}
    await a.send(tg(body=None, location={"latitude": 48.85, "longitude": 2.35}))
    request = fake.requests[-1]
    assert request.path.endswith("/sendLocation")
    assert request.json() == {"chat_id": 424242, "latitude": 48.85, "longitude": 2.35}
    await a.send(tg(to="@nexus_news"))
    assert fake.requests[-1].json()["chat_id"] == "@nexus_news"
    assert fake.counters["accepted"] == 4


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        (tg(to="1230000"), "400", "chat not found"),
        (tg(to="1230002"), "403", "blocked"),
        (tg(body="x" * 4097), "400", "too long"),
        (tg(body=""), "400", "empty"),
        (tg(metadata={"parse_mode": "BBCode"}), "400", "parse_mode"),
        (tg(body=None, location={"latitude": 123.0, "longitude": 0.0}), "400", "latitude"),
    ],
)
async def test_permanent_errors(
    fake: TelegramFake, http: httpx.AsyncClient, message: OutboundMessage, code: str, fragment: str
):
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(message)
    assert (caught.value.code, caught.value.retryable) == (code, False)
    assert fragment in caught.value.message


async def test_rate_limit_carries_retry_after(fake: TelegramFake, http: httpx.AsyncClient):
    fake.configure(error_code="429", error_times=1, retry_after_s=7)
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(tg())
    assert (caught.value.code, caught.value.retryable, caught.value.retry_after_s) == (
        "429",
        True,
        7.0,
    )
    fake.fail_rate = 1.0
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(tg())
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("code", "retryable"), [("500", True), ("502", True), ("http:503", True), ("403", False)]
)
async def test_error_classification(
    fake: TelegramFake, http: httpx.AsyncClient, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http).send(tg())
    assert caught.value.retryable is retryable


async def test_bad_token_and_health(fake: TelegramFake, http: httpx.AsyncClient):
    bad = adapter(fake, http, {"bot_token": "1:wrong"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(tg())
    assert (caught.value.code, caught.value.retryable) == ("401", False)
    health = await bad.health()
    assert not health.ok
    assert "wrong" not in health.detail  # the token never leaks into details
    health = await adapter(fake, http).health()
    assert health.ok
    assert "fake_nexus_bot" in health.detail
    await fake.set_outage("refuse")
    assert not (await adapter(fake, http).health()).ok


async def test_webhook_registration_and_inbound(
    fake: TelegramFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(
        fake, http, {"bot_token": fake.credentials["bot_token"], "webhook_secret": "s3cret-token_1"}
    )
    await a.register_webhook(sink.url("/api/v1/telegram/webhook?account=a"))
    assert fake.webhook_secret == "s3cret-token_1"
    await fake.inbound("555001", "/start")
    [request] = await sink.wait(1)
    hook = webhook(request)
    assert hook.headers["x-telegram-bot-api-secret-token"] == "s3cret-token_1"
    assert a.verify_webhook(hook)
    [item] = a.parse_webhook(hook)
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.body, item.channel) == ("555001", "/start", "telegram")
    assert item.provider_message_id == "555001:1"
    assert item.at is not None
    assert not a.verify_webhook(dataclasses.replace(hook, headers={}))
    wrong = {**hook.headers, "x-telegram-bot-api-secret-token": "guess"}
    assert not a.verify_webhook(dataclasses.replace(hook, headers=wrong))
    assert not adapter(fake, http).verify_webhook(hook)  # another secret


def test_secret_defaults_to_webhook_token(http: httpx.AsyncClient):
    a = Adapter(config("telegram", "telegram", {"bot_token": "1:x"}, "http://x"), http)
    hook = WebhookRequest(
        "POST", "http://x", {"x-telegram-bot-api-secret-token": a.config.webhook_token}, b"{}"
    )
    assert a.verify_webhook(hook)
    assert a.parse_webhook(hook) == []


def test_parse_media_callbacks_and_unknown_updates(http: httpx.AsyncClient):
    a = Adapter(config("telegram", "telegram", {"bot_token": "1:x"}, "http://x"), http)

    def parse(update: object) -> list[object]:
        return list(
            a.parse_webhook(WebhookRequest("POST", "http://x", {}, json.dumps(update).encode()))
        )

    photo = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "chat": {"id": -100},
            "date": 1,
            "caption": "look",
            "photo": [{"file_id": "small", "file_size": 10}, {"file_id": "big", "file_size": 99}],
        },
    }
    [item] = parse(photo)
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.body, item.media[0]["file_id"]) == ("-100", "look", "big")
    query = {
        "update_id": 2,
        "callback_query": {
            "id": "q1",
            "from": {"id": 7},
            "data": "yes",
            "message": {"chat": {"id": 7}},
        },
    }
    [item] = parse(query)
    assert isinstance(item, InboundMessage)
    assert (item.sender, item.body) == ("7", "yes")
    assert parse({"update_id": 3, "my_chat_member": {"x": 1}}) == []
    assert parse([1, 2]) == []
    assert a.parse_webhook(WebhookRequest("POST", "http://x", {}, b"{nope")) == []
