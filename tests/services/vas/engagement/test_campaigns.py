"""Campaigns through the sandbox: audience with opted-out contacts excluded, A/B split by
percentages, throttle, live progress, pause / resume / cancel, schedule with a time
zone, render failures rejected with the reason, stats and winner."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from nexus.kernel.db import utcnow
from nexus.services.vas.engagement.models import CampaignRecipient
from nexus.services.vas.inbound import receive
from nexus.services.vas.models import Message, ProviderAccount
from nexus.services.vas.providers.base import InboundMessage
from tests.services.vas.conftest import VasEnv
from tests.services.vas.engagement.conftest import import_csv, phone, template

API = "/api/v1/campaigns"
TICK_SLACK = 0.3  # the throttle allows one 0.2 s burst ahead of the rate


async def _audience(env: VasEnv, n: int, *, opted_out: int = 0, no_phone: int = 0) -> None:
    rows = ["phone,email,name,tags,opted out,plan"]
    for i in range(n):
        number = "" if i < no_phone else phone(i)
        plan = "" if i % 97 == 5 else "gold"  # a few without the attribute the template needs
        stop = "yes" if i >= n - opted_out else "no"
        rows.append(f"{number},p{i}@example.com,P{i},customers,{stop},{plan}")
    done = await import_csv(env, "\n".join(rows) + "\n")
    assert done["rows_failed"] == 0, done


async def _create(env: VasEnv, **fields: Any) -> dict[str, Any]:
    response = await env.client.post(API, json=fields, headers=env.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _get(env: VasEnv, campaign_id: str) -> dict[str, Any]:
    return (await env.client.get(f"{API}/{campaign_id}", headers=env.headers)).json()  # type: ignore[no-any-return]


async def _action(env: VasEnv, campaign_id: str, action: str) -> dict[str, Any]:
    response = await env.client.post(f"{API}/{campaign_id}/{action}", headers=env.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _until(
    env: VasEnv, campaign_id: str, statuses: set[str], timeout_s: float = 180
) -> list[dict[str, Any]]:
    """Poll the campaign until it reaches one of `statuses`; every observation."""
    seen = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        campaign = await _get(env, campaign_id)
        seen.append(campaign)
        if campaign["status"] in statuses:
            return seen
        assert asyncio.get_running_loop().time() < deadline, campaign
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_ab_campaign_split_throttle_and_opt_outs(sms: VasEnv) -> None:
    n, opted, no_phone, rate = 2000, 100, 30, 200
    await _audience(sms, n, opted_out=opted, no_phone=no_phone)
    a = await template(
        sms, name="A", body="{{ contact.name }}: gold offer for {{ contact.attributes.plan }}"
    )
    b = await template(
        sms,
        name="B",
        body="Hello {{ contact.name }}, {{ discount }}% off",
        variables=[{"name": "discount", "type": "integer"}],
    )
    campaign = await _create(
        sms,
        name="spring",
        channel="sms",
        audience={"tags": ["customers"]},
        variants=[
            {"name": "A", "template_id": a["id"], "percent": 70},
            {"name": "B", "template_id": b["id"], "percent": 30},
        ],
        variables={"discount": "15"},
        throttle_per_s=rate,
    )
    assert campaign["status"] == "draft"
    started = await _action(sms, campaign["id"], "start")
    assert started["status"] == "running"
    assert started["audience_total"] == n
    seen = await _until(sms, campaign["id"], {"completed"})
    assert any(0 < c["processed"] < n for c in seen), "progress is visible while sending"
    done = seen[-1]
    assert done["progress"] == 1.0
    assert done["excluded_opted_out"] == opted
    assert done["skipped_no_address"] == no_phone
    recipients = n - opted - no_phone

    db = sms.runtime.db("vas")
    async with db.read() as session:
        rows = list(
            (
                await session.execute(
                    select(
                        Message.to,
                        Message.metadata_,
                        Message.status,
                        Message.error_reason,
                        Message.created_at,
                    )
                )
            ).all()
        )
        pairs = list(
            (
                await session.execute(
                    select(CampaignRecipient.contact_id, CampaignRecipient.variant)
                )
            ).all()
        )
    assert len(rows) == recipients == len(pairs)
    assert len({to for to, *_ in rows}) == recipients  # nobody got two
    opted_numbers = {phone(i) for i in range(n - opted, n)}
    assert not opted_numbers & {to for to, *_ in rows}  # opted-out contacts got nothing

    # the split follows the percentages within sampling error (4 sigma)
    share = Counter(v for _, v in pairs)["A"] / recipients
    assert abs(share - 0.7) < 4 * math.sqrt(0.7 * 0.3 / recipients)

    # variant A needs contact.attributes.plan: those without it were rejected, with the reason
    failed = [r for r in rows if r[2] == "rejected"]
    assert failed
    assert all(r[1]["variant"] == "A" and "plan" in r[3] for r in failed)
    assert done["render_failed"] == len(failed)

    # the throttle holds: accepting `recipients` messages took at least recipients/rate s
    times = sorted(r[4] for r in rows)
    assert (times[-1] - times[0]).total_seconds() >= 0.9 * (recipients - 1) / rate - TICK_SLACK

    stats = (await sms.client.get(f"{API}/{campaign['id']}/stats", headers=sms.headers)).json()
    assert stats["overall"]["recipients"] == recipients
    assert {v["variant"] for v in stats["variants"]} == {"A", "B"}
    assert stats["send_rate_per_s"] <= rate * 1.1
    assert stats["excluded_opted_out"] == opted


async def test_pause_resume_cancel_and_stats(sms: VasEnv) -> None:
    await _audience(sms, 120)
    t = await template(sms, name="T", body="Hi {{ contact.name }}")
    campaign = await _create(
        sms,
        name="slow",
        channel="sms",
        audience={"attributes": {"plan": "gold"}},
        variants=[{"name": "only", "template_id": t["id"], "percent": 100}],
        throttle_per_s=40,
        winner_metric="reply_rate",
    )
    await _action(sms, campaign["id"], "start")
    await _until(sms, campaign["id"], {"running"})
    while (await _get(sms, campaign["id"]))["processed"] == 0:
        await asyncio.sleep(0.05)
    paused = await _action(sms, campaign["id"], "pause")
    assert paused["status"] == "paused"
    await asyncio.sleep(0.6)
    before = (await _get(sms, campaign["id"]))["processed"]
    await asyncio.sleep(0.6)
    assert (await _get(sms, campaign["id"]))["processed"] == before < 118
    conflict = await sms.client.post(f"{API}/{campaign['id']}/pause", headers=sms.headers)
    assert conflict.status_code == 409
    await _action(sms, campaign["id"], "resume")
    done = (await _until(sms, campaign["id"], {"completed"}))[-1]
    assert done["accepted"] == 118  # 120 minus the two without the attribute

    # a reply and an opt-out after the campaign message show in the stats
    db = sms.runtime.db("vas")
    async with db.transaction() as session:
        account = await session.scalar(
            select(ProviderAccount).where(ProviderAccount.org_id == "org-a")
        )
        assert account is not None
        org = await sms.runtime.state["vas"].org("org-a")
        for i, body in ((1, "Thanks!"), (2, "STOP")):
            await receive(
                session,
                account,
                InboundMessage(f"in-{i}", phone(i), None, body, "sms", at=utcnow()),
                org,
            )

    async def stats() -> dict[str, Any]:
        return (await sms.client.get(f"{API}/{campaign['id']}/stats", headers=sms.headers)).json()  # type: ignore[no-any-return]

    for _ in range(400):  # until every message has its final status
        s = await stats()
        if s["overall"]["delivered"] + s["overall"]["failed"] == 118:
            break
        await asyncio.sleep(0.05)
    only = s["variants"][0]
    assert only["replies"] == 2
    assert only["opted_out"] == 1
    # the sandbox refuses numbers ending 0000 and cannot deliver to those ending 0001
    assert (only["sent"], only["delivered"], only["failed"]) == (117, 116, 2)
    assert only["delivery_rate"] == round(116 / 117, 4)
    assert float(only["cost"]) > 0
    assert s["winner"] is None  # one variant: nothing to compare

    other = await _create(
        sms,
        name="stopped",
        channel="sms",
        audience={"everyone": True},
        variants=[{"name": "x", "template_id": t["id"], "percent": 100}],
        throttle_per_s=20,
    )
    await _action(sms, other["id"], "start")
    canceled = await _action(sms, other["id"], "cancel")
    assert canceled["status"] == "canceled"
    await asyncio.sleep(0.5)
    assert (await _get(sms, other["id"]))["processed"] < 120
    assert (
        await sms.client.post(f"{API}/{other['id']}/resume", headers=sms.headers)
    ).status_code == 409


async def test_schedule_in_a_time_zone_and_validation(sms: VasEnv) -> None:
    await _audience(sms, 5)
    t = await template(sms, name="T", body="Hi")
    local = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    at = (local + dt.timedelta(seconds=2)).replace(tzinfo=None)
    campaign = await _create(
        sms,
        name="later",
        channel="sms",
        audience={"tags": ["customers"]},
        variants=[{"name": "x", "template_id": t["id"], "percent": 100}],
        schedule={"at": at.isoformat(), "timezone": "Etc/GMT+5"},
    )
    scheduled_at = dt.datetime.fromisoformat(campaign["schedule_at"])
    assert abs((scheduled_at - (utcnow() + dt.timedelta(seconds=2))).total_seconds()) < 2
    started = await _action(sms, campaign["id"], "start")
    assert started["status"] == "scheduled"
    done = (await _until(sms, campaign["id"], {"completed"}))[-1]
    assert dt.datetime.fromisoformat(done["finished_at"]) >= scheduled_at

    base = {
        "name": "bad",
        "channel": "sms",
        "audience": {"tags": ["customers"]},
        "variants": [{"name": "x", "template_id": t["id"], "percent": 100}],
    }
    for change, field in (
        ({"variants": [{"name": "x", "template_id": t["id"], "percent": 60}]}, "variants"),
        (
            {"variants": [{"name": "x", "template_id": "nope", "percent": 100}]},
            "variants[0].template_id",
        ),
        ({"channel": "email"}, "variants[0].template_id"),
        ({"audience": {}}, "audience"),
        (
            {"schedule": {"at": "2030-01-01T09:00:00", "timezone": "Nowhere/City"}},
            "schedule.timezone",
        ),
    ):
        response = await sms.client.post(API, json=base | change, headers=sms.headers)
        assert response.status_code == 422, (change, response.text)
        assert response.json().get("field") == field
    other = sms.headers_for("org-b")
    for path in (f"{API}/{campaign['id']}", f"{API}/{campaign['id']}/stats"):
        assert (await sms.client.get(path, headers=other)).status_code == 404
    assert (
        await sms.client.post(f"{API}/{campaign['id']}/cancel", headers=other)
    ).status_code == 404
    async with sms.runtime.db("vas").read() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 5


async def test_no_provider_no_start(vas: VasEnv) -> None:
    await _audience(vas, 3)
    campaign = await _create(
        vas,
        name="nowhere",
        channel="telegram",
        audience={"everyone": True},
        variants=[
            {
                "name": "x",
                "template_id": (await template(vas, name="TG", channel="telegram", body="Hi"))[
                    "id"
                ],
                "percent": 100,
            }
        ],
    )
    response = await vas.client.post(f"{API}/{campaign['id']}/start", headers=vas.headers)
    assert response.status_code == 409
    assert response.json()["type"].endswith("/no-provider")
    assert (await _get(vas, campaign["id"]))["status"] == "draft"


async def test_a_slow_throttle_goes_on_in_later_jobs(sms: VasEnv) -> None:
    """At 1 msg/s a run outlasts one job's time budget: its continuation finishes it."""
    await _audience(sms, 7)
    t = await template(sms, name="T", body="Hi {{ contact.name }}")
    campaign = await _create(
        sms,
        name="trickle",
        channel="sms",
        audience={"tags": ["customers"]},
        variants=[{"name": "x", "template_id": t["id"], "percent": 100}],
        throttle_per_s=1,
    )
    await _action(sms, campaign["id"], "start")
    done = (await _until(sms, campaign["id"], {"completed"}, timeout_s=60))[-1]
    assert done["accepted"] == 7
    stats = (await sms.client.get(f"{API}/{campaign['id']}/stats", headers=sms.headers)).json()
    assert stats["send_rate_per_s"] <= 1.1
