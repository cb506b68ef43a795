"""The fakes' own machinery: registry, knobs over HTTP, loopback-only callbacks, callback
retries and batching, and the command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from nexus.services.vas.providers import ADAPTERS, adapter_class
from nexus.services.vas.providers.base import OutboundMessage, ProviderAdapter
from nexus.testing.fakes import FAKES, WebhookSink, fake_class, fake_provider
from nexus.testing.fakes.twilio import TwilioFake


def test_every_adapter_has_a_fake_and_a_valid_class():
    for provider_type in ADAPTERS:
        cls = adapter_class(provider_type)
        assert issubclass(cls, ProviderAdapter)
        assert cls.type == provider_type
        assert cls.channels
        if provider_type != "sandbox":
            assert provider_type in FAKES
            assert fake_class(provider_type).name == provider_type
    with pytest.raises(LookupError):
        fake_class("nope")


async def test_fake_provider_context_manager():
    async with fake_provider("infobip") as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
    async with fake_provider("smtp") as fake:
        assert fake.base_url.startswith("smtp://127.0.0.1:")


def test_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        TwilioFake(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        TwilioFake(callback_url="https://example.com/hook")
    fake = TwilioFake()
    with pytest.raises(ValueError, match="loopback"):
        fake.configure(callback_url="http://10.0.0.1/hook")
    with pytest.raises(ValueError, match="unknown knob"):
        fake.configure(nonsense=1)


async def test_control_endpoints(http: httpx.AsyncClient):
    async with TwilioFake() as fake:
        response = await http.post(
            f"{fake.base_url}/_fake/knobs", json={"fail_rate": 1.0, "latency_ms": 1}
        )
        assert response.status_code == 200
        assert response.json()["fail_rate"] == 1.0
        assert fake.fail_rate == 1.0
        response = await http.post(f"{fake.base_url}/_fake/knobs", json={"outage": "refuse"})
        assert response.status_code == 400
        stats = (await http.get(f"{fake.base_url}/_fake/stats")).json()
        assert stats["knobs"]["latency_ms"] == 1
        assert "requests" not in stats["counters"]  # control calls are not provider traffic


async def test_callbacks_never_leave_loopback(http: httpx.AsyncClient):
    async with TwilioFake(callback_delay_ms=0) as fake:
        from nexus.services.vas.providers.twilio import Adapter
        from tests.services.vas.providers.conftest import config

        a = Adapter(
            config(
                "twilio",
                "sms",
                fake.credentials,
                fake.base_url,
                sender="+15005550006",
                status_callback_url="https://example.com/hook",
            ),
            http,
        )
        await a.send(OutboundMessage(id="m", channel="sms", to="+14155550100", body="x"))
        await fake.wait_for_callbacks(2)
        assert fake.counters["callbacks_refused"] == 2
        assert fake.counters["callbacks_sent"] == 0


async def test_callback_retries_are_bounded(http: httpx.AsyncClient):
    async with (
        WebhookSink(status=503) as sink,
        TwilioFake(callback_url=sink.url("/hook"), callback_delay_ms=0, callback_retries=2) as fake,
    ):
        await fake.inbound("+14155550123", "hi")
        assert len(sink.requests) == 3  # one try and two retries
        assert fake.counters["callbacks_failed"] == 1
        sink.status = 200
        await fake.inbound("+14155550123", "hi")
        assert fake.counters["callbacks_sent"] == 1


async def test_inbound_over_http_and_stats(http: httpx.AsyncClient):
    async with WebhookSink() as sink, fake_provider("vonage", callback_url=sink.url("/in")) as fake:
        response = await http.post(
            f"{fake.base_url}/_fake/inbound", json={"from": "+447700900555", "text": "hello"}
        )
        assert response.json() == [{"status": 200, "error": None}]
        assert sink.requests[-1].form()["text"] == "hello"
        stats = (await http.get(f"{fake.base_url}/_fake/stats")).json()
        assert stats["counters"]["inbound"] == 1


async def test_fail_rate_and_latency(http: httpx.AsyncClient):
    async with TwilioFake(fail_rate=0.5, seed=7, latency_ms=1) as fake:
        from nexus.services.vas.providers.twilio import Adapter
        from tests.services.vas.providers.conftest import config

        a = Adapter(
            config("twilio", "sms", fake.credentials, fake.base_url, sender="+15005550006"), http
        )
        outcomes = []
        for _ in range(40):
            try:
                await a.send(OutboundMessage(id="m", channel="sms", to="+14155550100", body="x"))
                outcomes.append(True)
            except Exception:
                outcomes.append(False)
        assert 5 < outcomes.count(False) < 35
        assert fake.counters["errors_injected"] == outcomes.count(False)


async def test_stop_cancels_pending_callbacks():
    async with WebhookSink() as sink:
        fake = TwilioFake(callback_url=sink.url("/hook"), callback_delay_ms=10_000)
        await fake.start()
        fake.schedule([])  # nothing to do is fine
        from nexus.testing.fakes import CallbackEvent

        fake.schedule([CallbackEvent(sink.url("/hook"), {"MessageSid": "SM1"})])
        await asyncio.sleep(0)
        await asyncio.wait_for(fake.stop(), 2)
        assert sink.requests == []


@pytest.mark.slow
def test_command_line():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nexus.testing.fakes",
            "telegram",
            "--port",
            "0",
            "--fail-rate",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["provider"] == "telegram"
        token = line["credentials"]["bot_token"]
        answer = httpx.get(f"{line['base_url']}/bot{token}/getMe", timeout=5).json()
        assert answer["ok"] is True
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0


async def test_health_never_raises(http: httpx.AsyncClient):
    from tests.services.vas.providers.conftest import config

    credentials = {
        "account_sid": "AC1",
        "auth_token": "t",
        "api_key": "k",
        "api_secret": "s",
        "username": "u",
        "access_token": "t",
        "phone_number_id": "1",
        "app_secret": "s",
        "bot_token": "1:x",
        "page_access_token": "t",
        "page_id": "1",
    }
    for provider_type in ADAPTERS:
        for base_url in ("http://127.0.0.1:9", "not a url", "ftp://127.0.0.1:9"):
            cls = adapter_class(provider_type)
            a = cls(
                config(
                    provider_type,
                    next(iter(cls.channels)),
                    credentials,
                    base_url,
                    options={"health_timeout_s": 0.5, "timeout_s": 0.5},
                ),
                http,
            )
            health = await a.health()
            assert health.ok is (provider_type == "sandbox"), (provider_type, base_url)
