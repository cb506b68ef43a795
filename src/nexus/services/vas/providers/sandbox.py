"""The built-in sandbox provider: accepts, 'delivers' and fails like a real one, offline.

Options (per provider account, `options`): `latency_ms` (send latency), `fail_rate`
(share of sends refused with a retryable error), `undeliverable_rate` (share of sent
messages that end `undelivered`), `delivery_delay_ms` (time to the delivery report).
Numbers ending in 0000 are always refused as invalid (not retryable); ending in 0001,
always undeliverable. Delivery reports come back through the same status path as a
real provider's webhooks.

The sandbox cannot be called in over HTTP, so replies are simulated instead: `inbound()`
builds the inbound message a real adapter would parse from its webhook, and the
`POST /api/v1/providers/{id}/sandbox/inbound` route feeds it to the same inbound path.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal

from nexus.kernel.ids import new_id
from nexus.services.vas.providers.base import (
    Health,
    InboundMessage,
    OutboundMessage,
    ProviderAdapter,
    ProviderError,
    SendResult,
    StatusUpdate,
    WebhookItem,
    WebhookRequest,
)

CHANNELS = frozenset({"sms", "whatsapp", "telegram", "messenger", "email"})


class Adapter(ProviderAdapter):
    type = "sandbox"
    channels = CHANNELS
    simulates_delivery = True

    def _option(self, name: str, default: float) -> float:
        return float(self.config.options.get(name, default))

    async def send(self, message: OutboundMessage) -> SendResult:
        latency = self._option("latency_ms", 0) / 1000
        if latency:
            await asyncio.sleep(latency)
        if message.to.endswith("0000"):
            raise ProviderError("The number is not valid.", retryable=False, code="invalid_to")
        if random.random() < self._option("fail_rate", 0):
            raise ProviderError("Sandbox outage (simulated).", retryable=True, code="outage")
        cost = (
            Decimal(str(self.config.options.get("cost_per_segment", "0.0075"))) * message.segments
        )
        return SendResult(f"sbx_{new_id()}", "sent", cost, "USD", message.segments)

    def delivery_report(
        self, message: OutboundMessage, result: SendResult
    ) -> tuple[float, StatusUpdate]:
        """(delay in seconds, the report) for a message this adapter sent."""
        delay = self._option("delivery_delay_ms", 50) / 1000
        assert result.provider_message_id is not None
        if message.to.endswith("0001") or random.random() < self._option("undeliverable_rate", 0):
            return delay, StatusUpdate(
                result.provider_message_id,
                "undelivered",
                error_code="unreachable",
                error_message="Handset unreachable (simulated).",
            )
        return delay, StatusUpdate(
            result.provider_message_id, "delivered", cost=result.cost, currency=result.currency
        )

    def inbound(self, sender: str, to: str | None, body: str) -> InboundMessage:
        """A simulated message from `sender` (normalized by the caller) to this account."""
        return InboundMessage(
            provider_message_id=f"sbx_in_{new_id()}",
            sender=sender,
            to=to or self.config.sender,
            body=body,
            channel=self.config.channel,
        )

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return False  # the sandbox never calls in over HTTP

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        return []

    async def health(self) -> Health:
        started = time.perf_counter()
        await asyncio.sleep(0)
        return Health(True, (time.perf_counter() - started) * 1000, "sandbox")
