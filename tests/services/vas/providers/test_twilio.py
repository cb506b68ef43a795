"""Twilio adapter against its loopback fake: wire format, errors, signatures, parsing."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import httpx
import pytest

from nexus.services.vas.providers.base import (
    InboundMessage,
    OutboundMessage,
    ProviderError,
    StatusUpdate,
    WebhookRequest,
)
from nexus.services.vas.providers.twilio import Adapter
from nexus.testing.fakes import WebhookSink
from nexus.testing.fakes.twilio import TwilioFake
from tests.services.vas.providers.conftest import config, webhook

SENDER = "+15005550006"


@pytest.fixture
async def fake(sink: WebhookSink):
    async with TwilioFake(
        callback_url=sink.url("/unused"), callback_delay_ms=0, callback_gap_ms=1
    ) as server:
        yield server


def adapter(
    fake: TwilioFake,
    http: httpx.AsyncClient,
    sink: WebhookSink,
    channel: str = "sms",
    **extra: object,
) -> Adapter:
    return Adapter(
        config(
            "twilio",
            channel,
            extra.pop("credentials", fake.credentials),  # type: ignore[arg-type]
            fake.base_url,
            sender=SENDER,
            status_callback_url=sink.url("/api/v1/sms/webhook/twilio?account=prv_1&token=t"),
            **extra,
        ),
        http,
    )


def sms(to: str = "+14155550100", **kw: object) -> OutboundMessage:
    values: dict[str, object] = {"id": "msg_1", "channel": "sms", "to": to, "body": "Hello"}
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_send_sms_wire_format(fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink):
    result = await adapter(fake, http, sink).send(
        sms(validity_s=600, media_url="https://x.test/a.png")
    )
    assert result.provider_message_id
    assert result.provider_message_id.startswith("SM")
    assert result.status == "sent"
    assert result.segments == 1
    request = fake.requests[-1]
    sid = fake.credentials["account_sid"]
    assert request.path == f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.headers["authorization"].startswith("Basic ")
    form = request.form()
    assert form["To"] == "+14155550100"
    assert form["From"] == SENDER
    assert form["Body"] == "Hello"
    assert form["ValidityPeriod"] == "600"
    assert form["MediaUrl"] == "https://x.test/a.png"
    assert form["StatusCallback"].endswith("/api/v1/sms/webhook/twilio?account=prv_1&token=t")


async def test_whatsapp_prefixes_and_messaging_service(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    await adapter(fake, http, sink, "whatsapp").send(sms(channel="whatsapp"))
    form = fake.requests[-1].form()
    assert form["To"] == "whatsapp:+14155550100"
    assert form["From"] == f"whatsapp:{SENDER}"
    await adapter(fake, http, sink).send(sms(sender="MG" + "1" * 32))
    form = fake.requests[-1].form()
    assert form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in form


async def test_segments_counted(fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink):
    result = await adapter(fake, http, sink).send(sms(body="é" * 161))
    assert result.segments == 2


@pytest.mark.parametrize(
    ("to", "code", "retryable", "status"),
    [
        ("+14155550000", "21211", False, 400),
        ("+14155550002", "21610", False, 400),
        ("not-a-number", "21211", False, 400),
    ],
)
async def test_refusals_are_permanent(
    fake: TwilioFake,
    http: httpx.AsyncClient,
    sink: WebhookSink,
    to: str,
    code: str,
    retryable: bool,
    status: int,
):
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http, sink).send(sms(to=to))
    assert (caught.value.code, caught.value.retryable, caught.value.status_code) == (
        code,
        retryable,
        status,
    )


@pytest.mark.parametrize(
    ("code", "retryable"), [("20429", True), ("20500", True), ("20503", True), ("21617", False)]
)
async def test_injected_errors(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink, code: str, retryable: bool
):
    fake.error_code, fake.error_times = code, 1
    with pytest.raises(ProviderError) as caught:
        await adapter(fake, http, sink).send(sms())
    assert caught.value.code == code
    assert caught.value.retryable is retryable
    assert (await adapter(fake, http, sink).send(sms())).provider_message_id  # once only


async def test_bad_credentials(fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink):
    bad = adapter(fake, http, sink, credentials={**fake.credentials, "auth_token": "wrong"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(sms())
    assert caught.value.status_code == 401
    assert not caught.value.retryable
    assert caught.value.code == "20003"
    health = await bad.health()
    assert not health.ok
    assert "401" in health.detail


async def test_outages_are_retryable(fake: TwilioFake, sink: WebhookSink):
    async with httpx.AsyncClient(timeout=0.3) as http:
        await fake.set_outage("refuse")
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, http, sink).send(sms())
        assert caught.value.retryable
        assert caught.value.code in {"connect_error", "connection"}
        assert not (await adapter(fake, http, sink).health()).ok
        await fake.set_outage("hang")
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, http, sink).send(sms())
        assert caught.value.retryable
        assert caught.value.code == "timeout"
        await fake.set_outage("error")
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, http, sink).send(sms())
        assert caught.value.retryable
        assert caught.value.status_code == 503
        await fake.set_outage(None)
        assert (await adapter(fake, http, sink).send(sms())).provider_message_id
        assert (await adapter(fake, http, sink).health()).ok


async def test_status_callbacks_verify_and_parse(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    ok = await a.send(sms())
    bad = await a.send(sms(to="+14155550001"))
    requests = await sink.wait(4)
    updates: dict[str, list[str]] = {}
    for request in requests:
        hook = webhook(request)
        assert a.verify_webhook(hook)
        [item] = a.parse_webhook(hook)
        assert isinstance(item, StatusUpdate)
        updates.setdefault(item.provider_message_id, []).append(item.status)
        if item.status == "undelivered":
            assert item.error_code == "30003"
    assert updates == {
        ok.provider_message_id: ["sent", "delivered"],
        bad.provider_message_id: ["sent", "undelivered"],
    }


async def test_tampered_or_unsigned_callbacks_refused(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    await a.send(sms())
    [request, *_] = await sink.wait(1)
    hook = webhook(request)
    assert a.verify_webhook(hook)
    tampered = dataclasses.replace(hook, body=hook.body.replace(b"sent", b"delivered"))
    assert not a.verify_webhook(tampered)
    assert not a.verify_webhook(dataclasses.replace(hook, url=hook.url + "&x=1"))
    unsigned = dataclasses.replace(
        hook, headers={k: v for k, v in hook.headers.items() if k != "x-twilio-signature"}
    )
    assert not a.verify_webhook(unsigned)
    other = adapter(fake, http, sink, credentials={**fake.credentials, "auth_token": "other"})
    assert not other.verify_webhook(hook)


async def test_signature_tolerates_default_port(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    from nexus.services.vas.providers.twilio import signature

    token = fake.credentials["auth_token"]
    params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]
    sig = signature(token, "https://hooks.example.com:443/t?x=1", params)
    hook = WebhookRequest(
        "POST",
        "https://hooks.example.com/t?x=1",
        {"x-twilio-signature": sig, "content-type": "application/x-www-form-urlencoded"},
        b"MessageSid=SM1&MessageStatus=delivered",
    )
    assert adapter(fake, http, sink).verify_webhook(hook)


async def test_inbound_sms_and_whatsapp(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    url = sink.url("/api/v1/sms/webhook/twilio?account=prv_1&token=t")
    await fake.inbound("+14155550123", "STOP", url=url)
    await fake.inbound(
        "+14155550124", "hi", url=url, whatsapp=True, media=[("https://x.test/m.jpg", "image/jpeg")]
    )
    first, second = await sink.wait(2)
    assert a.verify_webhook(webhook(first))
    assert a.verify_webhook(webhook(second))
    [sms_in] = a.parse_webhook(webhook(first))
    [wa_in] = a.parse_webhook(webhook(second))
    assert isinstance(sms_in, InboundMessage)
    assert isinstance(wa_in, InboundMessage)
    assert (sms_in.sender, sms_in.to, sms_in.body, sms_in.channel) == (
        "+14155550123",
        SENDER,
        "STOP",
        "sms",
    )
    assert (wa_in.sender, wa_in.channel) == ("+14155550124", "whatsapp")
    assert wa_in.media == [{"url": "https://x.test/m.jpg", "content_type": "image/jpeg"}]


async def test_parse_ignores_unknown_fields_and_statuses(
    fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink
):
    a = adapter(fake, http, sink)
    hook = WebhookRequest(
        "POST", "https://x", {}, b"MessageSid=SM1&MessageStatus=delivered&Price=-0.0075&NewField=1"
    )
    [item] = a.parse_webhook(hook)
    assert isinstance(item, StatusUpdate)
    assert item.status == "delivered"
    assert (
        a.parse_webhook(
            WebhookRequest("POST", "https://x", {}, b"MessageSid=SM1&MessageStatus=weird")
        )
        == []
    )
    assert a.parse_webhook(WebhookRequest("POST", "https://x", {}, b"")) == []


async def test_health(fake: TwilioFake, http: httpx.AsyncClient, sink: WebhookSink):
    health = await adapter(fake, http, sink).health()
    assert health.ok
    assert health.latency_ms is not None


async def test_price_parsing() -> None:
    from nexus.services.vas.providers.twilio import _price

    assert _price("-0.00750") == Decimal("0.00750")
    assert _price(None) is None
