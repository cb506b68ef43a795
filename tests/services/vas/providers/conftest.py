"""Fixtures for the adapter tests: a shared httpx client and a webhook sink (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nexus.services.vas.providers.base import ProviderConfig, WebhookRequest
from nexus.testing.fakes import ReceivedRequest, WebhookSink


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for the folder (creating one costs ~50 ms of TLS set-up)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with WebhookSink() as server:
        yield server


TOKEN = "whk_" + "t0ken" * 6


def config(
    provider_type: str,
    channel: str,
    credentials: dict[str, str],
    base_url: str | None,
    **extra: object,
) -> ProviderConfig:
    values: dict[str, object] = {
        "id": "prv_1",
        "org_id": "org_1",
        "type": provider_type,
        "channel": channel,
        "name": provider_type,
        "credentials": credentials,
        "base_url": base_url,
        "webhook_token": TOKEN,
    }
    values.update(extra)
    return ProviderConfig(**values)  # type: ignore[arg-type]


def webhook(request: ReceivedRequest) -> WebhookRequest:
    return WebhookRequest(**request.webhook_kwargs())
