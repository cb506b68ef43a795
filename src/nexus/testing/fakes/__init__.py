"""Loopback fakes of the messaging providers, speaking their real wire protocols.

One fake per provider (same paths, auth, payload validation, error shapes, signed
delivery callbacks), usable in-process:

    async with fake_provider("twilio", callback_url=sink.url("/hook")) as fake:
        adapter = Adapter(ProviderConfig(..., base_url=fake.base_url,
                                         credentials=fake.credentials), http)
        await adapter.send(...)
        fake.requests[-1], fake.counters["accepted"], await fake.wait_for_callbacks(2)
        fake.fail_rate = 0.3; fake.error_code = "21211"; await fake.set_outage("hang")

or as a process: `python -m nexus.testing.fakes twilio --port 9001`.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nexus.testing.fakes._base import (
    CallbackEvent,
    FakeProvider,
    OutgoingCall,
    ReceivedRequest,
    SentCallback,
)
from nexus.testing.fakes.sink import WebhookSink

# provider type -> "module:Class"
FAKES: dict[str, str] = {
    "twilio": "nexus.testing.fakes.twilio:TwilioFake",
    "infobip": "nexus.testing.fakes.infobip:InfobipFake",
    "africastalking": "nexus.testing.fakes.africastalking:AfricasTalkingFake",
    "vonage": "nexus.testing.fakes.vonage:VonageFake",
    "whatsapp_cloud": "nexus.testing.fakes.whatsapp_cloud:WhatsAppCloudFake",
    "messenger": "nexus.testing.fakes.messenger:MessengerFake",
    "telegram": "nexus.testing.fakes.telegram:TelegramFake",
    "smtp": "nexus.testing.fakes.smtp:SmtpFake",
}


def fake_class(provider: str) -> Any:
    if provider not in FAKES:
        raise LookupError(f"no fake for {provider!r}; known: {', '.join(sorted(FAKES))}")
    module, _, name = FAKES[provider].partition(":")
    return getattr(importlib.import_module(module), name)


@asynccontextmanager
async def fake_provider(provider: str, **knobs: Any) -> AsyncIterator[Any]:
    """Start the fake of `provider` on a free loopback port; yields its handle
    (`.base_url`, `.credentials`, `.requests`, `.counters`, knobs)."""
    fake = fake_class(provider)(**knobs)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


__all__ = [
    "FAKES",
    "CallbackEvent",
    "FakeProvider",
    "OutgoingCall",
    "ReceivedRequest",
    "SentCallback",
    "WebhookSink",
    "fake_class",
    "fake_provider",
]
