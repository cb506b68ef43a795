"""A worker killed in the middle of dispatching loses nothing and sends nothing twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from nexus.kernel.http import create_app
from nexus.services.vas import service as vas_service
from nexus.services.vas.lifecycle import FINAL
from nexus.services.vas.models import Message, MessageEvent
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory, settings_env

pytestmark = pytest.mark.slow
COUNT = 40


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "nexus.cli", "worker", "--service", "vas"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_killed_worker_loses_nothing(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    api = await make_runtime([vas_service], workers=False)
    app = create_app(settings, runtime=api)
    headers = issuer.headers(org_id="org-k")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        created = await client.post(
            "/api/v1/providers",
            headers=headers,
            json={
                "type": "sandbox",
                "channel": "sms",
                "name": "slow sandbox",
                "options": {"latency_ms": 150, "delivery_delay_ms": 10},
            },
        )
        assert created.status_code == 201, created.text
        bulk = await client.post(
            "/api/v1/messages/send/bulk",
            headers=headers,
            json={
                "messages": [
                    {"channel": "sms", "to": f"+1415555{2000 + i:04d}", "body": f"m{i}"}
                    for i in range(COUNT)
                ]
            },
        )
        assert bulk.json()["accepted"] == COUNT, bulk.text
    env = settings_env(
        settings,
        NEXUS_VAS_DISPATCH_LEASE_S="2",
        NEXUS_VAS_DISPATCH_CONCURRENCY="4",
        NEXUS_PLUGINS="",
    )
    db = api.db("vas")

    async def statuses() -> Counter[str]:
        async with db.read() as session:
            rows = await session.execute(
                select(Message.status, func.count()).group_by(Message.status)
            )
            return Counter(dict(rows.all()))  # type: ignore[arg-type]

    first = _worker(env)
    try:
        for _ in range(600):
            assert first.poll() is None, first.stderr.read().decode()  # type: ignore[union-attr]
            counts = await statuses()
            if counts["sent"] + counts["delivered"] >= 5:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the first worker sent nothing: {await statuses()}")
    finally:
        first.kill()
        first.wait(10)
    assert sum(c for s, c in (await statuses()).items() if s in FINAL) < COUNT, "killed too late"

    second = _worker(env)
    try:
        for _ in range(1200):
            counts = await statuses()
            if sum(c for s, c in counts.items() if s in FINAL) == COUNT:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not all final: {await statuses()}")
    finally:
        second.terminate()
        second.wait(15)
    assert await statuses() == Counter({"delivered": COUNT})
    async with db.read() as session:
        rows = await session.execute(
            select(MessageEvent.message_id, MessageEvent.status, func.count())
            .where(MessageEvent.kind == "status")
            .group_by(MessageEvent.message_id, MessageEvent.status)
        )
        per_message: dict[str, Counter[str]] = {}
        for message_id, status, n in rows.all():
            per_message.setdefault(message_id, Counter())[status] = n
    assert len(per_message) == COUNT
    for counts in per_message.values():
        assert counts["delivered"] == 1  # one final state each
        assert counts["sent"] == 1  # recorded sent once


@pytest.mark.services_only
async def test_two_worker_processes_share_the_work(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL + NATS JetStream: an API process and two worker processes."""
    api = await make_runtime([vas_service], workers=False)
    app = create_app(settings, runtime=api)
    headers = issuer.headers(org_id="org-w")
    env = settings_env(settings, NEXUS_PLUGINS="")
    workers = [_worker(env), _worker(env)]
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            await client.post(
                "/api/v1/providers",
                headers=headers,
                json={
                    "type": "sandbox",
                    "channel": "sms",
                    "name": "sandbox",
                    "options": {"latency_ms": 20, "delivery_delay_ms": 10},
                },
            )
            bulk = await client.post(
                "/api/v1/messages/send/bulk",
                headers=headers,
                json={
                    "messages": [
                        {"channel": "sms", "to": f"+1415555{4000 + i:04d}", "body": f"m{i}"}
                        for i in range(100)
                    ]
                },
            )
            assert bulk.json()["accepted"] == 100
        db = api.db("vas")
        for _ in range(1200):
            async with db.read() as session:
                done = await session.scalar(
                    select(func.count()).select_from(Message).where(Message.status == "delivered")
                )
            if done == 100:
                break
            for worker in workers:
                assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        assert done == 100
        async with db.read() as session:
            sent_events = await session.scalar(
                select(func.count())
                .select_from(MessageEvent)
                .where(MessageEvent.kind == "status", MessageEvent.status == "sent")
            )
        assert sent_events == 100
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)
