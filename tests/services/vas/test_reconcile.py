"""Reconciliation: messages whose delivery callback was lost are settled by asking the
provider (real adapters against their loopback fakes, the real queue and database)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

from nexus.kernel.db import utcnow
from nexus.kernel.events import enqueue
from nexus.services.vas.models import Message, MessageEvent
from nexus.services.vas.reconcile import (
    KIND,
    QUEUE,
    Candidate,
    _apply,
    count_unconfirmed,
    reconcile,
    schedule_next,
)
from nexus.services.vas.state import Vas
from nexus.testing.fakes import fake_provider
from tests.conftest import eventually, settings_env
from tests.services.vas.conftest import VasEnv

SENDER = "+15005550006"


def state(env: VasEnv) -> Vas:
    return env.runtime.state["vas"]  # type: ignore[no-any-return]


async def message(env: VasEnv, message_id: str) -> dict[str, Any]:
    response = await env.client.get(f"/api/v1/messages/{message_id}", headers=env.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_status(env: VasEnv, message_id: str, status: str) -> dict[str, Any]:
    async def reached() -> bool:
        return (await message(env, message_id))["status"] == status

    await eventually(reached, timeout_s=15)
    return await message(env, message_id)


async def send_lost(
    env: VasEnv, fake: Any, provider: str, to: str = "+14155550123", *, add: bool = True
) -> str:
    """A message the provider took and moved on, whose delivery callback was lost."""
    if add:
        await env.add_provider(
            type=provider,
            channel="sms",
            name=provider,
            base_url=fake.base_url,
            credentials=fake.credentials,
            sender=SENDER,
        )
    response = await env.send(channel="sms", to=to, body="hello")
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]
    await wait_status(env, message_id, "sent")
    await fake.idle()
    assert fake.counters["callbacks_lost"] >= 1
    return message_id


async def backdate(env: VasEnv, message_id: str, minutes: float) -> None:
    async with state(env).db.transaction() as session:
        row = await session.get(Message, message_id)
        assert row is not None
        assert row.sent_at is not None
        row.sent_at -= dt.timedelta(minutes=minutes)


async def reconcile_rows(env: VasEnv, message_id: str) -> list[MessageEvent]:
    async with state(env).db.read() as session:
        rows = await session.scalars(
            select(MessageEvent).where(
                MessageEvent.message_id == message_id, MessageEvent.kind == KIND
            )
        )
        return list(rows)


@pytest.fixture
async def twilio() -> AsyncIterator[Any]:
    async with fake_provider("twilio", callback_delay_ms=0, callback_loss=1.0) as fake:
        yield fake


@pytest.mark.parametrize("provider", ["twilio", "infobip", "vonage"])
async def test_a_lost_callback_ends_delivered_with_a_history_row(
    vas: VasEnv, provider: str
) -> None:
    async with fake_provider(provider, callback_delay_ms=0, callback_loss=1.0) as fake:
        message_id = await send_lost(vas, fake, provider)
        assert (await reconcile(state(vas))).checked == 0  # not late enough yet
        summary = await reconcile(state(vas), older_than_s=0)
    assert (summary.checked, summary.outcomes["applied"]) == (1, 1)
    assert summary.found == {"delivered": 1}
    body = await wait_status(vas, message_id, "delivered")
    steps = [(s["kind"], s["status"]) for s in body["history"]]
    assert ("reconcile", "delivered") in steps
    assert ("status", "delivered") in steps  # at the provider's time of delivery
    row = next(s for s in body["history"] if s["kind"] == "reconcile")
    assert "status lookup" in row["reason"]


async def test_the_periodic_job_settles_late_messages(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    await backdate(vas, message_id, 11)  # past NEXUS_VAS_RECONCILE_AFTER_S (10 min)
    async with state(vas).db.transaction() as session:
        await enqueue(session, QUEUE, {})
    await wait_status(vas, message_id, "delivered")
    assert len(await reconcile_rows(vas, message_id)) == 1


async def test_one_run_an_interval_whoever_schedules_it(vas: VasEnv) -> None:
    db = state(vas).db
    first = await schedule_next(db, 60, now_s=120.0)
    assert await schedule_next(db, 60, now_s=150.0) == first  # same interval, same job
    assert await schedule_next(db, 60, now_s=181.0) != first


async def test_a_delivered_message_is_never_touched(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    await reconcile(state(vas), older_than_s=0)
    delivered = await wait_status(vas, message_id, "delivered")
    for record in twilio.lookups.values():
        record["status"] = "undelivered"  # the provider now says otherwise
    again = await reconcile(state(vas), older_than_s=0)
    assert again.checked == 0
    after = await message(vas, message_id)
    assert after["status"] == "delivered"
    assert after["history"] == delivered["history"]
    async with state(vas).db.read() as session:
        sent_at = (await session.get(Message, message_id)).sent_at  # type: ignore[union-attr]
    candidate = Candidate(message_id, "org-a", after["provider_id"], "twilio", "x", sent_at)
    late = await _apply(state(vas), candidate, _update("undelivered"))
    assert late is False  # a run that saw it `sent` before it was delivered changes nothing


def _update(status: str) -> Any:
    from nexus.services.vas.providers.base import StatusUpdate

    return StatusUpdate(provider_message_id="x", status=status)  # type: ignore[arg-type]


async def test_a_provider_without_lookup_is_skipped_and_counted(vas: VasEnv) -> None:
    async with fake_provider(
        "africastalking",
        callback_url="http://127.0.0.1:9/hook",  # set at AT, not per message
        callback_delay_ms=0,
        callback_loss=1.0,
    ) as fake:
        message_id = await send_lost(vas, fake, "africastalking", to="+254711000123")
        summary = await reconcile(state(vas), older_than_s=0)
    assert summary.checked == 0
    assert (await message(vas, message_id))["status"] == "sent"
    assert (await count_unconfirmed(state(vas))).get("africastalking", 0) == 0
    async with state(vas).db.transaction() as session:  # its validity passes
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(expires_at=utcnow() - dt.timedelta(minutes=1))
        )
    assert (await count_unconfirmed(state(vas)))["africastalking"] == 1
    assert (await message(vas, message_id))["status"] == "sent"


async def test_an_id_unknown_at_the_provider_stays_sent(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    twilio.lookups.clear()  # the provider no longer knows it
    summary = await reconcile(state(vas), older_than_s=0)
    assert summary.outcomes == {"unknown": 1}
    assert (await message(vas, message_id))["status"] == "sent"
    assert await reconcile_rows(vas, message_id) == []


async def test_a_provider_error_is_retried_by_a_later_run(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    await twilio.set_outage("error")
    failed = await reconcile(state(vas), older_than_s=0)
    assert failed.outcomes == {"error": 1}
    assert (await message(vas, message_id))["status"] == "sent"
    await twilio.set_outage(None)
    later = await reconcile(state(vas), older_than_s=0)
    assert later.outcomes == {"applied": 1}
    await wait_status(vas, message_id, "delivered")


async def test_a_dry_run_changes_nothing(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    summary = await reconcile(state(vas), older_than_s=0, dry_run=True)
    assert (summary.checked, summary.found) == (1, {"delivered": 1})
    assert (await message(vas, message_id))["status"] == "sent"
    assert await reconcile_rows(vas, message_id) == []


async def test_two_concurrent_runs_apply_once(vas: VasEnv, twilio: Any) -> None:
    ids = [
        await send_lost(vas, twilio, "twilio", to=f"+14155551{i:03d}", add=i == 0) for i in range(3)
    ]
    first, second = await asyncio.gather(
        reconcile(state(vas), older_than_s=0), reconcile(state(vas), older_than_s=0)
    )
    assert first.outcomes["applied"] + second.outcomes["applied"] == 3
    for message_id in ids:
        body = await wait_status(vas, message_id, "delivered")
        kinds = [(s["kind"], s["status"]) for s in body["history"]]
        assert kinds.count(("reconcile", "delivered")) == 1
        assert kinds.count(("status", "delivered")) == 1
    async with state(vas).db.read() as session:
        rows = await session.scalar(
            select(func.count()).select_from(MessageEvent).where(MessageEvent.kind == "ignored")
        )
    assert rows == 0  # no second report was even queued


async def test_the_command_reports_what_it_found(vas: VasEnv, twilio: Any) -> None:
    message_id = await send_lost(vas, twilio, "twilio")
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "nexus.cli", "vas", "reconcile", "--older-than", "0s", "--dry-run"],
        env=settings_env(vas.runtime.settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "checked 1; final statuses found: 1 delivered (would apply)" in result.stdout
    assert (await message(vas, message_id))["status"] == "sent"
