"""Campaigns: one message per contact of an audience, through the core's accept path.

The audience (tags, attribute filters, an uploaded list) is walked in contact id order
by a `vas.campaign` job. Each step takes the next few contacts, skips those without an
address on the channel and those opted out (counted), picks each one's variant by a
hash of campaign id and contact id (so a contact always gets the same variant), renders
its template, and hands the messages to the core's accept path (queued with their
dispatch jobs, idempotency key `campaign:<id>:<contact>`); then one transaction writes a
`vas_campaign_recipients` row per contact (its primary key is campaign + contact) and
the new cursor. A crash loses at most a step whose cursor never committed; the step
that runs again starts from the committed cursor, and the idempotency keys give it
back the messages already accepted: nobody gets two.

Throttle: a token bucket, so that messages accepted since the start (or resume) of the
run never exceed `throttle_per_s` times the time elapsed, plus one 0.2 s burst. The job
runs for a few seconds and then queues its continuation, so a killed process's lease
runs out soon and another worker goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Select, and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict, Problem
from nexus.kernel.events import Job, enqueue, job_id_for
from nexus.kernel.ids import new_id
from nexus.kernel.queue import Retry
from nexus.kernel.service import HandlerContext
from nexus.services.vas import lifecycle
from nexus.services.vas.accept import Item
from nexus.services.vas.engagement import contacts, templates
from nexus.services.vas.engagement.models import (
    Campaign,
    CampaignListEntry,
    CampaignRecipient,
    Contact,
    ContactAddress,
    Template,
)
from nexus.services.vas.messages import InvalidMessage, SendRequest, prepare
from nexus.services.vas.models import Consent, Message
from nexus.services.vas.state import Vas, vas_of

log = structlog.get_logger("nexus.vas.campaigns")
CAMPAIGN_QUEUE = "vas.campaign"
RUN_BUDGET_S = 4.0  # then the job queues its continuation (lease is 15 s)
TICK_S = 0.2  # pacing granularity
MAX_STEP = 200  # messages per transaction: the SQLite write lock is held that long
FINAL = frozenset({"completed", "canceled"})


class InvalidCampaign(Problem):
    status = 422
    slug = "invalid-campaign"


# -- definition --------------------------------------------------------------------------------
def local_to_utc(at: dt.datetime, zone: str) -> dt.datetime:
    """A schedule given as local time in `zone` (or with its own offset), in UTC."""
    if zone not in contacts.timezones() and zone != "UTC":
        raise InvalidCampaign(f"{zone!r} is not an IANA time zone.", field="schedule.timezone")
    if at.tzinfo is None:
        at = at.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return at.astimezone(dt.UTC)


def variant_for(
    campaign_id: str, contact_id: str, variants: list[dict[str, Any]]
) -> dict[str, Any]:
    """The contact's variant: a uniform hash of (campaign, contact) against the split."""
    digest = hashlib.sha256(f"{campaign_id}:{contact_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    cumulative = 0.0
    for variant in variants:
        cumulative += float(variant["percent"])
        if point < cumulative:
            return variant
    return variants[-1]


async def check_definition(session: AsyncSession, campaign: Campaign) -> dict[str, Template]:
    """Variants, templates and campaign variables are consistent; 422 otherwise."""
    variants = campaign.variants
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise InvalidCampaign("Variant names must be unique.", field="variants")
    total = sum(float(v["percent"]) for v in variants)
    if abs(total - 100) > 0.01:
        raise InvalidCampaign(
            f"Variant percentages add up to {total:g}, not 100.", field="variants"
        )
    ids = {v["template_id"] for v in variants}
    found = {
        t.id: t
        for t in await session.scalars(
            select(Template).where(Template.org_id == campaign.org_id, Template.id.in_(ids))
        )
    }
    for i, variant in enumerate(variants):
        template = found.get(variant["template_id"])
        if template is None:
            raise InvalidCampaign(
                f"No template {variant['template_id']}.", field=f"variants[{i}].template_id"
            )
        if template.channel != campaign.channel:
            raise InvalidCampaign(
                f"Template {template.name!r} is for {template.channel}, not {campaign.channel}.",
                field=f"variants[{i}].template_id",
            )
        specs = {s["name"]: s for s in template.variables or []}
        for name, value in campaign.variables.items():
            if name in specs:
                try:
                    templates.coerce(specs[name], value)
                except templates.RenderError as exc:
                    raise InvalidCampaign(f"Campaign {exc}.", field=f"variables.{name}") from None
    audience = campaign.audience
    if not (
        audience.get("tags")
        or audience.get("all_tags")
        or audience.get("attributes")
        or audience.get("uploaded_list")
        or audience.get("everyone")
    ):
        raise InvalidCampaign(
            "The audience is empty: give tags, attributes, an uploaded list, or everyone.",
            field="audience",
        )
    return found


def audience_query(campaign: Campaign) -> Select[Any]:
    """(contact, address on the campaign's channel or None), in contact id order."""
    org_id, audience = campaign.org_id, campaign.audience
    stmt = contacts.search(
        org_id,
        tags=audience.get("all_tags") or None,
        any_tags=audience.get("tags") or None,
        attributes=audience.get("attributes") or None,
    )
    if audience.get("uploaded_list"):
        stmt = stmt.where(
            exists().where(
                CampaignListEntry.org_id == org_id,
                CampaignListEntry.campaign_id == campaign.id,
                CampaignListEntry.contact_id == Contact.id,
            )
        )
    return stmt.add_columns(ContactAddress.address).outerjoin(
        ContactAddress,
        and_(
            ContactAddress.org_id == org_id,
            ContactAddress.contact_id == Contact.id,
            ContactAddress.channel == campaign.channel,
        ),
    )


async def audience_size(session: AsyncSession, campaign: Campaign) -> int:
    sub = audience_query(campaign).subquery()
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)


async def _queue(
    session: AsyncSession, campaign: Campaign, job_id: str, *, run_at: dt.datetime | None = None
) -> None:
    await enqueue(
        session,
        CAMPAIGN_QUEUE,
        {"campaign_id": campaign.id, "run": campaign.runs},
        org_id=campaign.org_id,
        run_at=run_at,
        job_id=job_id,
    )


async def start(session: AsyncSession, campaign: Campaign) -> None:
    if campaign.status != "draft":
        raise Conflict(f"The campaign is {campaign.status}; only a draft can be started.")
    await check_definition(session, campaign)
    now = utcnow()
    campaign.audience_total = await audience_size(session, campaign)
    campaign.runs += 1
    campaign.started_at = now
    later = campaign.schedule_at is not None and campaign.schedule_at > now
    campaign.status = "scheduled" if later else "running"
    campaign.send_started_at, campaign.sent_in_run = None, 0
    campaign.updated_at = now
    job_id = job_id_for(CAMPAIGN_QUEUE, campaign.id, str(campaign.runs))
    await _queue(session, campaign, job_id, run_at=campaign.schedule_at if later else None)


async def pause(campaign: Campaign) -> None:
    if campaign.status not in {"running", "scheduled"}:
        raise Conflict(f"The campaign is {campaign.status}; only a running one can be paused.")
    campaign.status, campaign.updated_at = "paused", utcnow()


async def resume(session: AsyncSession, campaign: Campaign) -> None:
    if campaign.status != "paused":
        raise Conflict(f"The campaign is {campaign.status}; only a paused one can be resumed.")
    now = utcnow()
    campaign.runs += 1
    later = campaign.schedule_at is not None and campaign.schedule_at > now
    campaign.status = "scheduled" if later else "running"
    campaign.send_started_at, campaign.sent_in_run = None, 0
    campaign.updated_at = now
    job_id = job_id_for(CAMPAIGN_QUEUE, campaign.id, str(campaign.runs))
    await _queue(session, campaign, job_id, run_at=campaign.schedule_at if later else None)


async def cancel(campaign: Campaign) -> None:
    if campaign.status in FINAL:
        raise Conflict(f"The campaign is {campaign.status} already.")
    now = utcnow()
    campaign.status, campaign.finished_at, campaign.updated_at = "canceled", now, now


# -- the job -----------------------------------------------------------------------------------
@dataclass
class _Planned:
    contact_id: str
    variant: str
    prepared: Any = None  # messages.Prepared
    failure: str | None = None  # the render or validation failure
    address: str | None = None


async def _load(vas: Vas, campaign_id: str) -> Campaign | None:
    async with vas.db.read() as session:
        return await session.get(Campaign, campaign_id)


async def run(job: Job, ctx: HandlerContext) -> None:
    """Send the next part of a campaign, paced by its throttle, for up to RUN_BUDGET_S."""
    vas = vas_of(ctx.runtime)
    campaign_id, run_no = job.payload["campaign_id"], job.payload["run"]
    campaign = await _load(vas, campaign_id)
    if (
        campaign is None
        or campaign.runs != run_no
        or campaign.status not in {"running", "scheduled"}
    ):
        return  # paused, canceled, finished, or a job of an earlier run
    now = utcnow()
    if campaign.schedule_at and campaign.schedule_at > now and campaign.status == "scheduled":
        raise Retry("scheduled", delay_s=(campaign.schedule_at - now).total_seconds())
    if campaign.status == "scheduled" or campaign.send_started_at is None:
        async with vas.db.transaction() as session:
            row = await session.get(Campaign, campaign_id, with_for_update=True)
            if row is None or row.runs != run_no or row.status not in {"running", "scheduled"}:
                return
            row.status = "running"
            row.send_started_at = row.send_started_at or utcnow()
            row.updated_at = utcnow()
            campaign = row
    async with vas.db.read() as session:
        ids = {v["template_id"] for v in campaign.variants}
        found = {
            t.id: t
            for t in await session.scalars(select(Template).where(Template.id.in_(ids)))
            if t.org_id == campaign.org_id
        }
    region = (await vas.org(campaign.org_id)).default_region
    routes = await vas.accounts.routes(campaign.org_id, campaign.channel)
    deadline = time.monotonic() + RUN_BUDGET_S
    burst = max(1, min(MAX_STEP, math.ceil(campaign.throttle_per_s * TICK_S)))
    while True:
        assert campaign.send_started_at is not None
        rate = campaign.throttle_per_s
        due = campaign.send_started_at + dt.timedelta(seconds=campaign.sent_in_run / rate)
        wait = (due - utcnow()).total_seconds()
        if time.monotonic() + max(wait, 0) > deadline:
            async with vas.db.transaction() as session:
                row = await session.get(Campaign, campaign_id)
                if row is not None and row.runs == run_no and row.status == "running":
                    # derived from this job's id: a re-run of this job queues the same one
                    await _queue(session, row, job_id_for(job.id, "next"), run_at=due)
            return
        if wait > 0:
            await asyncio.sleep(wait)
        # a token bucket: what the throttle allows by now, plus one tick's burst; a step
        # that waited on the database catches up with a bigger next step
        elapsed = (utcnow() - campaign.send_started_at).total_seconds()
        room = math.floor(elapsed * rate) + burst - campaign.sent_in_run
        size = max(1, min(MAX_STEP, room))
        next_campaign = await _step(vas, campaign, found, region, routes, size)
        if next_campaign is None:
            return
        campaign = next_campaign


async def _plan(
    vas: Vas,
    campaign: Campaign,
    found: dict[str, Template],
    region: str | None,
    step: int,
) -> tuple[list[_Planned], str | None, int, int]:
    """The next contacts: what to send each, the new cursor, and the counts skipped."""
    org_id = campaign.org_id
    stmt = audience_query(campaign)
    if campaign.cursor:
        stmt = stmt.where(Contact.id > campaign.cursor)
    async with vas.db.read() as session:
        rows = list((await session.execute(stmt.order_by(Contact.id).limit(step))).all())
        if not rows:
            return [], None, 0, 0
        ids = [c.id for c, _ in rows]
        with_address = [(c, a) for c, a in rows if a]
        pairs = {(campaign.channel, a) for _, a in with_address}
        consents = await contacts.consents_of(session, org_id, pairs)
        opted = {pair for pair, consent in consents.items() if consent.opted_out}
        tags = await contacts.tags_of(session, org_id, [c.id for c, _ in with_address])
        addresses = await contacts.addresses_of(session, org_id, [c.id for c, _ in with_address])
    planned: list[_Planned] = []
    excluded = no_address = 0
    for contact, address in rows:
        if not address:
            no_address += 1
            continue
        if (campaign.channel, address) in opted:
            excluded += 1
            continue
        variant = variant_for(campaign.id, contact.id, campaign.variants)
        plan = _Planned(contact.id, variant["name"], address=address)
        template = found.get(variant["template_id"])
        try:
            if template is None:
                raise templates.RenderError("the variant's template was deleted")
            context = templates.contact_context(contact, tags[contact.id], addresses[contact.id])
            rendered = templates.render(template, campaign.variables, context)
            plan.prepared = prepare(
                SendRequest(
                    channel=campaign.channel,
                    to=address,
                    body=rendered.body,
                    sender=campaign.sender,
                    subject=rendered.subject,
                    template=rendered.provider_template,
                    region=region,
                    metadata={
                        "campaign_id": campaign.id,
                        "variant": variant["name"],
                        "contact_id": contact.id,
                    },
                ),
                region,
            )
        except templates.RenderError as exc:
            plan.failure = f"The template could not be rendered: {exc}."
        except InvalidMessage as exc:
            plan.failure = f"The rendered message is not valid: {exc.detail}"
        planned.append(plan)
    return planned, ids[-1], excluded, no_address


def _key(campaign: Campaign, contact_id: str) -> str:
    """The idempotency key of a contact's message: one per campaign and contact."""
    return f"campaign:{campaign.id}:{contact_id}"


def _rejected(campaign: Campaign, plan: _Planned) -> Message:
    now = utcnow()
    message = Message(
        id=new_id(),
        org_id=campaign.org_id,
        channel=campaign.channel,
        direction="outbound",
        to=plan.address or "",
        status="accepted",
        content={},
        segments=0,
        error_code="render_failed",
        error_reason=plan.failure,
        idempotency_key=_key(campaign, plan.contact_id),
        metadata_={
            "campaign_id": campaign.id,
            "variant": plan.variant,
            "contact_id": plan.contact_id,
        },
        created_at=now,
        updated_at=now,
    )
    return message


async def _step(
    vas: Vas,
    campaign: Campaign,
    found: dict[str, Template],
    region: str | None,
    routes: list[Any],
    step: int,
) -> Campaign | None:
    """One paced step; the campaign as committed, or None when this run should stop.

    The messages go through the core's accept path (group commit) with the keys
    `campaign:<id>:<contact>`; then one transaction records the recipients and moves the
    cursor. A step re-run after a crash between the two gets the same messages back."""
    planned, cursor, excluded, no_address = await _plan(vas, campaign, found, region, step)
    sendable = [p for p in planned if p.failure is None]
    stored: dict[str, dict[str, Any]] = {}
    if cursor is not None and sendable:
        items = [Item(p.prepared, routes, _key(campaign, p.contact_id)) for p in sendable]
        results = await vas.acceptor.accept(campaign.org_id, items)
        stored = {p.contact_id: r.row for p, r in zip(sendable, results, strict=True)}
    async with vas.db.transaction(org_id=campaign.org_id) as session:
        row = await session.get(Campaign, campaign.id, with_for_update=True)
        if row is None or row.runs != campaign.runs or row.status != "running":
            return None  # paused or canceled meanwhile
        if row.cursor != campaign.cursor:
            return row  # another worker took this step: go on from where it got
        now = utcnow()
        if cursor is None:
            row.status, row.finished_at, row.updated_at = "completed", now, now
            log.info("campaign completed", campaign_id=row.id, accepted=row.accepted)
            return None
        done = set(
            await session.scalars(
                select(CampaignRecipient.contact_id).where(
                    CampaignRecipient.org_id == row.org_id,
                    CampaignRecipient.campaign_id == row.id,
                    CampaignRecipient.contact_id.in_([p.contact_id for p in planned]),
                )
            )
        )
        accepted = rejected = failed = 0
        for plan in planned:
            if plan.contact_id in done:
                continue
            if plan.failure is not None:
                message = _rejected(row, plan)
                session.add(message)
                lifecycle.record(session, message, "accepted", at=now)
                lifecycle.move(session, message, "rejected", reason=plan.failure, at=now)
                failed += 1
                message_id = message.id
            else:
                message_id = stored[plan.contact_id]["id"]
                if stored[plan.contact_id]["status"] == "rejected":
                    rejected += 1
                else:
                    accepted += 1
            session.add(
                CampaignRecipient(
                    org_id=row.org_id,
                    campaign_id=row.id,
                    contact_id=plan.contact_id,
                    variant=plan.variant,
                    message_id=message_id,
                    at=now,
                )
            )
        row.cursor = cursor
        row.processed += len(planned) + excluded + no_address
        row.accepted += accepted
        row.rejected += rejected
        row.render_failed += failed
        row.excluded_opted_out += excluded
        row.skipped_no_address += no_address
        row.sent_in_run += accepted + rejected + failed
        row.updated_at = now
        return row


# -- stats -------------------------------------------------------------------------------------
SENT = ("sent", "delivered", "undelivered")
FAILED = ("failed", "undelivered", "expired")
PENDING = ("accepted", "queued", "sending")


async def stats(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """Per variant: recipients, sent, delivered, failed, rejected, pending, opted out after
    the message, replies (an inbound message from the recipient after it), cost."""
    org_id = campaign.org_id
    r, m = CampaignRecipient, Message
    base = (
        select(r.variant)
        .join(m, and_(m.id == r.message_id, m.org_id == org_id))
        .where(r.org_id == org_id, r.campaign_id == campaign.id)
        .group_by(r.variant)
    )

    def count_in(statuses: tuple[str, ...]) -> Any:
        return func.sum(case((m.status.in_(statuses), 1), else_=0))

    reply = aliased(Message)
    inbound = select(reply.id).where(
        reply.org_id == org_id,
        reply.direction == "inbound",
        reply.channel == m.channel,
        reply.sender == m.to,
        reply.created_at >= m.created_at,
    )
    opted = select(Consent.id).where(
        Consent.org_id == org_id,
        Consent.channel == m.channel,
        Consent.address == m.to,
        Consent.opted_out.is_(True),
        Consent.updated_at >= m.created_at,
    )
    stmt = base.add_columns(
        func.count(),
        count_in(SENT),
        count_in(("delivered",)),
        count_in(FAILED),
        count_in(("rejected",)),
        count_in(PENDING),
        func.sum(case((opted.exists(), 1), else_=0)),
        func.sum(case((inbound.exists(), 1), else_=0)),
        func.sum(func.coalesce(m.cost, m.estimated_cost, 0)),
        func.min(r.at),
        func.max(r.at),
    )
    rows = (await session.execute(stmt)).all()
    keys = (
        "recipients",
        "sent",
        "delivered",
        "failed",
        "rejected",
        "pending",
        "opted_out",
        "replies",
        "cost",
    )
    per = {row[0]: dict(zip(keys, row[1:10], strict=True)) for row in rows}
    first = min((row[10] for row in rows if row[10]), default=None)
    last = max((row[11] for row in rows if row[11]), default=None)
    return {"variants": per, "first_at": first, "last_at": last}
