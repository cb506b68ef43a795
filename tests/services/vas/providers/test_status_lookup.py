"""`fetch_status` of the adapters whose provider can be asked for a message's status
(Twilio, Infobip, Vonage), against their loopback fakes with delivery callbacks lost;
and the adapters that cannot tell."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from nexus.services.vas.providers import adapter_class
from nexus.services.vas.providers.base import (
    OutboundMessage,
    ProviderAdapter,
    ProviderError,
    SentMessage,
)
from nexus.testing.fakes import WebhookSink, fake_provider
from tests.services.vas.providers.conftest import TOKEN, config

SENDER = "+15005550006"
LOOKUP = ("twilio", "infobip", "vonage")


@dataclass
class Lookup:
    fake: Any
    adapter: ProviderAdapter

    async def send(self, to: str = "+14155550123", id_: str = "msg_1") -> tuple[str, SentMessage]:
        message = OutboundMessage(id=id_, channel="sms", to=to, body="Hello", sender=SENDER)
        result = await self.adapter.send(message)
        assert result.provider_message_id
        await self.fake.idle()  # the status moved on at the provider; its callback was lost
        return result.provider_message_id, SentMessage(id_, dt.datetime.now(dt.UTC))


@pytest.fixture(params=LOOKUP)
async def lookup(
    request: pytest.FixtureRequest, http: httpx.AsyncClient, sink: WebhookSink
) -> AsyncIterator[Lookup]:
    provider: str = request.param
    async with fake_provider(provider, callback_delay_ms=0, callback_loss=1.0) as fake:
        callback = sink.url(f"/api/v1/sms/webhook/{provider}?account=a&token={TOKEN}")
        adapter = adapter_class(provider)(
            config(
                provider,
                "sms",
                fake.credentials,
                fake.base_url,
                sender=SENDER,
                status_callback_url=callback,
            ),
            http,
        )
        yield Lookup(fake, adapter)


async def test_a_lost_delivery_report_is_found_by_asking(lookup: Lookup, sink: WebhookSink) -> None:
    provider_id, sent = await lookup.send()
    assert lookup.fake.counters["callbacks_lost"] >= 1
    assert not lookup.fake.callbacks
    assert not sink.requests
    update = await lookup.adapter.fetch_status(provider_id, sent)
    assert update is not None
    assert (update.provider_message_id, update.status) == (provider_id, "delivered")
    assert update.error_code is None
    assert update.cost is not None
    assert update.cost >= Decimal(0)


async def test_undelivered_comes_with_the_providers_error(lookup: Lookup) -> None:
    provider_id, sent = await lookup.send(to="+14155550001")  # ...0001: never delivered
    update = await lookup.adapter.fetch_status(provider_id, sent)
    assert update is not None
    assert update.status == "undelivered"
    assert update.error_code


async def test_before_any_report_the_message_is_only_sent(lookup: Lookup) -> None:
    lookup.fake.callback_delay_ms = 60_000  # nothing happens at the provider for now
    message = OutboundMessage(id="msg_2", channel="sms", to="+14155550123", body="Hi")
    result = await lookup.adapter.send(message)
    assert result.provider_message_id
    sent = SentMessage("msg_2", dt.datetime.now(dt.UTC))
    update = await lookup.adapter.fetch_status(result.provider_message_id, sent)
    assert update is not None
    assert update.status in {"queued", "sending", "sent"}


async def test_an_id_the_provider_does_not_know_is_none(lookup: Lookup) -> None:
    sent = SentMessage("msg_x", dt.datetime.now(dt.UTC))
    assert await lookup.adapter.fetch_status("SM" + "0" * 32, sent) is None


async def test_a_provider_outage_raises_a_retryable_error(lookup: Lookup) -> None:
    provider_id, sent = await lookup.send()
    await lookup.fake.set_outage("error")
    with pytest.raises(ProviderError) as caught:
        await lookup.adapter.fetch_status(provider_id, sent)
    assert caught.value.retryable


async def test_bad_credentials_are_the_accounts_fault(
    lookup: Lookup, http: httpx.AsyncClient
) -> None:
    provider_id, sent = await lookup.send()
    wrong = {k: v + "x" for k, v in lookup.fake.credentials.items()}
    cfg = lookup.adapter.config
    adapter = type(lookup.adapter)(
        config(cfg.type, "sms", wrong, cfg.base_url, sender=SENDER), http
    )
    with pytest.raises(ProviderError) as caught:
        await adapter.fetch_status(provider_id, sent)
    assert caught.value.provider_fault
    assert not caught.value.retryable


async def test_wire_format_of_the_lookups(lookup: Lookup) -> None:
    provider_id, sent = await lookup.send()
    await lookup.adapter.fetch_status(provider_id, sent)
    request = lookup.fake.requests[-1]
    assert request.method == "GET"
    credentials = lookup.fake.credentials
    if lookup.adapter.type == "twilio":
        sid = credentials["account_sid"]
        assert request.path == f"/2010-04-01/Accounts/{sid}/Messages/{provider_id}.json"
        basic = base64.b64encode(f"{sid}:{credentials['auth_token']}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {basic}"
    elif lookup.adapter.type == "infobip":
        assert (request.path, request.query) == ("/sms/1/logs", {"messageId": provider_id})
        assert request.headers["authorization"] == f"App {credentials['api_key']}"
    else:
        assert request.path == "/v2/reports/records"
        assert request.query["client_ref"] == provider_id == "msg_1"
        assert request.query["account_id"] == credentials["api_key"]
        assert (request.query["product"], request.query["direction"]) == ("SMS", "outbound")
        assert request.query["date_start"] < request.query["date_end"]
        key, secret = credentials["api_key"], credentials["api_secret"]
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {basic}"


async def test_vonage_needs_every_segment_delivered(http: httpx.AsyncClient) -> None:
    async with fake_provider("vonage", callback_delay_ms=0, callback_loss=1.0) as fake:
        adapter = adapter_class("vonage")(
            config(
                "vonage",
                "sms",
                fake.credentials,
                fake.base_url,
                sender=SENDER,
                status_callback_url="http://127.0.0.1:9/hook",
            ),
            http,
        )
        message = OutboundMessage(id="msg_long", channel="sms", to="+14155550123", body="x" * 300)
        result = await adapter.send(message)
        assert result.segments == 2
        await fake.idle()
        sent = SentMessage("msg_long", dt.datetime.now(dt.UTC))
        update = await adapter.fetch_status("msg_long", sent)
        assert update is not None
        assert update.status == "delivered"
        last = next(r for r in reversed(fake.lookups.values()) if r["client_ref"] == "msg_long")
        last["status"] = "submitted"  # one segment still on its way
        update = await adapter.fetch_status("msg_long", sent)
        assert update is not None
        assert update.status == "sent"


@pytest.mark.parametrize(
    "provider", ["africastalking", "whatsapp_cloud", "telegram", "messenger", "smtp", "sandbox"]
)
async def test_providers_without_a_status_lookup_cannot_tell(
    provider: str, http: httpx.AsyncClient
) -> None:
    cls = adapter_class(provider)
    assert not cls.status_lookup
    adapter = cls(config(provider, "sms", {}, None), http)
    sent = SentMessage("msg_1", dt.datetime.now(dt.UTC))
    assert await adapter.fetch_status("anything", sent) is None
    assert all(adapter_class(p).status_lookup for p in LOOKUP)


def test_a_fake_process_can_lose_callbacks() -> None:
    from nexus.testing.fakes.__main__ import parse_args

    assert parse_args(["twilio", "--callback-loss", "0.25"]).callback_loss == 0.25
    with pytest.raises(SystemExit):
        parse_args(["twilio", "--callback-loss", "1.5"])
