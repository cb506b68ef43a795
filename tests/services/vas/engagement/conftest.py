"""Engagement fixtures: the VAS app with a sandbox SMS provider, and helpers to make
contacts (through the import API) and templates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.services.vas.conftest import VasEnv


def phone(i: int) -> str:
    """A valid, distinct US number per i (up to 10,000)."""
    return f"+1415555{i:04d}"


async def wait_import(env: VasEnv, import_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await env.client.get(
            f"/api/v1/contacts/imports/{import_id}", headers=env.headers
        )
        body = response.json()
        if body["status"] in {"completed", "failed", "canceled"}:
            return body  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


async def import_csv(env: VasEnv, text: str, **params: Any) -> dict[str, Any]:
    response = await env.client.post(
        "/api/v1/contacts/import",
        content=text.encode(),
        params=params,
        headers={**env.headers, "content-type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    return await wait_import(env, response.json()["id"])


async def template(env: VasEnv, **fields: Any) -> dict[str, Any]:
    body = {"name": "t", "channel": "sms", "body": "Hi {{ contact.name }}"} | fields
    response = await env.client.post("/api/v1/templates", json=body, headers=env.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def sms(vas: VasEnv) -> VasEnv:
    """The VAS env with a fast sandbox SMS provider for org A."""
    await vas.add_provider(options={"latency_ms": 0, "delivery_delay_ms": 5}, cost_per_unit="0.01")
    return vas
