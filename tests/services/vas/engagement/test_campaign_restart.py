"""A campaign survives its worker being killed mid-send: another worker completes it and
nobody gets two messages."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter

import httpx
import pytest
from sqlalchemy import insert, select

from nexus.kernel.db import utcnow
from nexus.kernel.http import create_app
from nexus.kernel.ids import new_id
from nexus.services.vas import service as vas_service
from nexus.services.vas.engagement.models import (
    CampaignRecipient,
    Contact,
    ContactAddress,
    ContactTag,
)
from nexus.services.vas.models import Message
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory, settings_env
from tests.services.vas.engagement.conftest import phone

pytestmark = pytest.mark.slow
COUNT = 600
ORG = "org-r"


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "nexus.cli", "worker", "--service", "vas"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_killed_worker_mid_campaign_sends_nobody_twice(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    api = await make_runtime([vas_service], workers=False)
    db = api.db("vas")
    now = utcnow()
    ids = [new_id() for _ in range(COUNT)]
    async with db.transaction() as session:
        await session.execute(
            insert(Contact),
            [
                {
                    "id": cid,
                    "org_id": ORG,
                    "name": f"C{i}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i, cid in enumerate(ids)
            ],
        )
        await session.execute(
            insert(ContactAddress),
            [
                {
                    "id": new_id(),
                    "org_id": ORG,
                    "contact_id": cid,
                    "channel": "sms",
                    "address": phone(2 + i),
                }
                for i, cid in enumerate(ids)
            ],
        )
        await session.execute(
            insert(ContactTag), [{"org_id": ORG, "contact_id": cid, "tag": "all"} for cid in ids]
        )
    headers = issuer.headers(org_id=ORG)
    app = create_app(settings, runtime=api)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        created = await client.post(
            "/api/v1/providers",
            headers=headers,
            json={
                "type": "sandbox",
                "channel": "sms",
                "name": "sb",
                "options": {"delivery_delay_ms": 5},
            },
        )
        assert created.status_code == 201, created.text
        template = await client.post(
            "/api/v1/templates",
            headers=headers,
            json={"name": "t", "channel": "sms", "body": "Hello {{ contact.name }}"},
        )
        campaign = await client.post(
            "/api/v1/campaigns",
            headers=headers,
            json={
                "name": "restart",
                "channel": "sms",
                "audience": {"tags": ["all"]},
                "variants": [{"name": "a", "template_id": template.json()["id"], "percent": 100}],
                "throttle_per_s": 60,
            },
        )
        campaign_id = campaign.json()["id"]
        started = await client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=headers)
        assert started.status_code == 200, started.text

        async def progress() -> dict:  # type: ignore[type-arg]
            return (await client.get(f"/api/v1/campaigns/{campaign_id}", headers=headers)).json()  # type: ignore[no-any-return]

        env = settings_env(settings, NEXUS_PLUGINS="")
        first = _worker(env)
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while (await progress())["processed"] < COUNT // 4:
                assert asyncio.get_running_loop().time() < deadline, "the first worker never sent"
                assert first.poll() is None, "the first worker died on its own"
                await asyncio.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = (await progress())["processed"]
        assert killed_at < COUNT, "killed mid-campaign"

        second = _worker(env)
        try:
            deadline = asyncio.get_running_loop().time() + 120
            while (state := await progress())["status"] != "completed":
                assert asyncio.get_running_loop().time() < deadline, state
                await asyncio.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert state["processed"] == state["accepted"] == COUNT

    async with db.read() as session:
        messages = list(await session.scalars(select(Message.to).where(Message.org_id == ORG)))
        recipients = list(
            await session.scalars(
                select(CampaignRecipient.contact_id).where(CampaignRecipient.org_id == ORG)
            )
        )
    assert len(messages) == COUNT
    assert max(Counter(messages).values()) == 1  # nobody got two
    assert sorted(recipients) == sorted(ids)
