"""/api/v1/campaigns: CRUD, audience list upload, start / pause / resume / cancel, stats."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel import csv_import as ci
from nexus.kernel.auth import Principal, require
from nexus.kernel.db import Database, insert_ignore, utcnow
from nexus.kernel.errors import Conflict, NotFound
from nexus.kernel.http import large_body
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas.addresses import CHANNELS, InvalidAddress, normalize
from nexus.services.vas.engagement import campaigns, contacts
from nexus.services.vas.engagement.models import Campaign, CampaignListEntry, Contact
from nexus.services.vas.engagement.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    CampaignStats,
    Schedule,
    VariantStats,
)
from nexus.services.vas.state import vas_of

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
MAX_LIST_BYTES = 200 * 1024**2


def _db(request: Request) -> Database:
    return request.app.state.runtime.db("vas")  # type: ignore[no-any-return]


def _out(campaign: Campaign) -> CampaignOut:
    out = CampaignOut.model_validate(campaign)
    if campaign.status == "completed":
        out.progress = 1.0
    elif campaign.audience_total:
        out.progress = round(min(1.0, campaign.processed / campaign.audience_total), 4)
    return out


async def _get(
    session: AsyncSession, org_id: str, campaign_id: str, *, lock: bool = False
) -> Campaign:
    """The org's campaign (404 otherwise); `lock` in transactions that change it."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=lock)
    if campaign is None or campaign.org_id != org_id:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def _apply(campaign: Campaign, data: dict[str, Any]) -> None:
    schedule = data.pop("schedule", None)
    if schedule is not None:
        parsed = Schedule.model_validate(schedule)
        campaign.schedule_at = campaigns.local_to_utc(parsed.at, parsed.timezone)
        campaign.timezone = parsed.timezone
    for key, value in data.items():
        setattr(campaign, key, value)


@router.post("", status_code=201, response_model=CampaignOut, summary="Create a campaign (draft)")
async def create_campaign(
    body: CampaignIn, request: Request, principal: Principal = require("vas:campaign:manage")
) -> CampaignOut:
    data = body.model_dump(mode="json")
    now = utcnow()
    campaign = Campaign(
        org_id=principal.org_id, status="draft", created_at=now, updated_at=now, runs=0
    )
    _apply(campaign, data)
    async with _db(request).transaction(org_id=principal.org_id) as session:
        await campaigns.check_definition(session, campaign)
        session.add(campaign)
        await session.flush()
    return _out(campaign)


@router.get("", response_model=Page[CampaignOut], summary="Campaigns")
async def list_campaigns(
    request: Request,
    status: str | None = Query(
        None, pattern="^(draft|scheduled|running|paused|completed|canceled)$"
    ),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:campaign:read"),
) -> Page[CampaignOut]:
    stmt = select(Campaign).where(Campaign.org_id == principal.org_id)
    if status:
        stmt = stmt.where(Campaign.status == status)
    async with _db(request).read() as session:
        rows = list(
            await session.scalars(paginate(stmt, Campaign.id, cursor, limit, descending=True))
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[_out(c) for c in items], next_cursor=next_cursor)


@router.get("/{campaign_id}", response_model=CampaignOut, summary="A campaign and its progress")
async def get_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:read")
) -> CampaignOut:
    async with _db(request).read(org_id=principal.org_id) as session:
        return _out(await _get(session, principal.org_id, campaign_id))


@router.patch("/{campaign_id}", response_model=CampaignOut, summary="Change a draft campaign")
async def patch_campaign(
    campaign_id: str,
    body: CampaignPatch,
    request: Request,
    principal: Principal = require("vas:campaign:manage"),
) -> CampaignOut:
    async with _db(request).transaction(org_id=principal.org_id) as session:
        campaign = await _get(session, principal.org_id, campaign_id, lock=True)
        if campaign.status != "draft":
            raise Conflict(f"The campaign is {campaign.status}; only a draft can be changed.")
        _apply(campaign, body.model_dump(mode="json", exclude_unset=True))
        await campaigns.check_definition(session, campaign)
        campaign.updated_at = utcnow()
        return _out(campaign)


@router.delete("/{campaign_id}", status_code=204, summary="Delete a campaign that is not sending")
async def delete_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:manage")
) -> Response:
    """Its messages stay in the message log."""
    async with _db(request).transaction(org_id=principal.org_id) as session:
        campaign = await _get(session, principal.org_id, campaign_id, lock=True)
        if campaign.status in {"running", "scheduled"}:
            raise Conflict("Pause or cancel the campaign before deleting it.")
        await session.execute(
            delete(CampaignListEntry).where(
                CampaignListEntry.org_id == principal.org_id,
                CampaignListEntry.campaign_id == campaign.id,
            )
        )
        await session.delete(campaign)
    return Response(status_code=204)


@router.post(
    "/{campaign_id}/audience",
    summary="Upload the campaign's audience list (CSV: contact_id or addresses)",
    responses={422: {"description": "No contact_id or address column"}},
)
@large_body(MAX_LIST_BYTES)
async def upload_list(
    campaign_id: str,
    request: Request,
    replace: bool = Query(True, description="Replace the list (else add to it)."),
    principal: Principal = require("vas:campaign:manage"),
) -> dict[str, int]:
    """A CSV with a `contact_id` column, or address columns (phone, email, ...): each row is
    matched to a contact. Answers how many rows matched. Set `audience.uploaded_list` to use it."""
    runtime = request.app.state.runtime
    org_id = principal.org_id
    async with _db(request).read(org_id=org_id) as session:
        campaign = await _get(session, org_id, campaign_id)
    if campaign.status != "draft":
        raise Conflict(f"The campaign is {campaign.status}; only a draft's list can change.")
    upload = await ci.save_upload(
        request.stream(), ci.import_dir(runtime.settings.data_dir, "vas"), max_bytes=MAX_LIST_BYTES
    )
    try:
        return await _read_list(request, org_id, campaign_id, upload, replace)
    finally:
        upload.path.unlink(missing_ok=True)


async def _read_list(
    request: Request, org_id: str, campaign_id: str, upload: ci.Upload, replace: bool
) -> dict[str, int]:
    fields = [
        ci.ImportField("contact_id", aliases=("id",)),
        ci.ImportField("phone"),
        *[ci.ImportField(ch) for ch in CHANNELS],
    ]
    mapping = ci.resolve_mapping(upload.header, fields)
    if not mapping:
        raise ci.ImportProblem("Give a contact_id column or an address column.", field="file")
    region = (await vas_of(request.app.state.runtime).org(org_id)).default_region
    index = {name: upload.header.index(column) for name, column in mapping.items()}
    rows = matched = 0
    db = _db(request)
    if replace:
        async with db.transaction(org_id=org_id) as session:
            await session.execute(
                delete(CampaignListEntry).where(
                    CampaignListEntry.org_id == org_id, CampaignListEntry.campaign_id == campaign_id
                )
            )

    async def flush(ids: set[str], pairs: set[tuple[str, str]]) -> int:
        async with db.transaction(org_id=org_id) as session:
            found = set()
            for batch in contacts.batches(sorted(ids)):
                found |= set(
                    await session.scalars(
                        contacts.search(org_id, ids=batch).with_only_columns(Contact.id)
                    )
                )
            found |= set((await contacts.owners_of(session, org_id, pairs)).values())
            await insert_ignore(
                session,
                CampaignListEntry,
                [{"org_id": org_id, "campaign_id": campaign_id, "contact_id": c} for c in found],
            )
            return len(found)

    batches = _list_batches(upload, index, region)
    while (batch := await asyncio.to_thread(next, batches, None)) is not None:
        count, ids, pairs = batch
        rows += count
        matched += await flush(ids, pairs)
    async with db.read() as session:
        total = await session.scalar(
            select(func.count()).where(
                CampaignListEntry.org_id == org_id, CampaignListEntry.campaign_id == campaign_id
            )
        )
    return {"rows": rows, "matched": matched, "list_size": int(total or 0)}


ListBatch = tuple[int, set[str], set[tuple[str, str]]]


def _list_batches(
    upload: ci.Upload, index: dict[str, int], region: str | None
) -> Iterator[ListBatch]:
    """(rows read, contact ids, (channel, address) pairs), about 5,000 values at a time."""
    rows, ids, pairs = 0, set(), set()
    with Path(upload.path).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=upload.delimiter)
        next(reader, None)
        for record in reader:
            rows += 1
            for name, i in index.items():
                value = record[i].strip() if i < len(record) else ""
                if not value:
                    continue
                if name == "contact_id":
                    ids.add(value)
                    continue
                channels = ("sms", "whatsapp") if name == "phone" else (name,)
                try:
                    address = normalize(channels[0], value, region)
                except InvalidAddress:
                    continue
                pairs.update((ch, address) for ch in channels)
            if len(ids) + len(pairs) >= 5000:
                yield rows, ids, pairs
                rows, ids, pairs = 0, set(), set()
    if rows:
        yield rows, ids, pairs


async def _transition(
    request: Request, principal: Principal, campaign_id: str, action: str
) -> CampaignOut:
    if action in {"start", "resume"}:
        async with _db(request).read(org_id=principal.org_id) as session:
            channel = (await _get(session, principal.org_id, campaign_id)).channel
        if not await vas_of(request.app.state.runtime).accounts.routes(principal.org_id, channel):
            raise Conflict(
                f"The org has no enabled {channel} provider: add one before sending.",
                slug="no-provider",
            )
    async with _db(request).transaction(org_id=principal.org_id) as session:
        campaign = await _get(session, principal.org_id, campaign_id, lock=True)
        if action == "start":
            await campaigns.start(session, campaign)
        elif action == "pause":
            await campaigns.pause(campaign)
        elif action == "resume":
            await campaigns.resume(session, campaign)
        else:
            await campaigns.cancel(campaign)
        return _out(campaign)


@router.post("/{campaign_id}/start", response_model=CampaignOut, summary="Start (or schedule)")
async def start_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:manage")
) -> CampaignOut:
    """Counts the audience and starts sending, or waits for the schedule."""
    return await _transition(request, principal, campaign_id, "start")


@router.post("/{campaign_id}/pause", response_model=CampaignOut, summary="Pause sending")
async def pause_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:manage")
) -> CampaignOut:
    return await _transition(request, principal, campaign_id, "pause")


@router.post("/{campaign_id}/resume", response_model=CampaignOut, summary="Resume sending")
async def resume_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:manage")
) -> CampaignOut:
    return await _transition(request, principal, campaign_id, "resume")


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, summary="Stop for good")
async def cancel_campaign(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:manage")
) -> CampaignOut:
    """Nobody else gets a message; messages already accepted go on."""
    return await _transition(request, principal, campaign_id, "cancel")


@router.get("/{campaign_id}/stats", response_model=CampaignStats, summary="Stats per variant")
async def campaign_stats(
    campaign_id: str, request: Request, principal: Principal = require("vas:campaign:read")
) -> CampaignStats:
    async with _db(request).read(org_id=principal.org_id) as session:
        campaign = await _get(session, principal.org_id, campaign_id)
        raw = await campaigns.stats(session, campaign)
    variants = []
    overall = VariantStats(variant="overall")
    for variant in [v["name"] for v in campaign.variants]:
        counts = raw["variants"].get(variant, {})
        item = VariantStats(
            variant=variant,
            **{k: int(v or 0) for k, v in counts.items() if k != "cost"},
            cost=Decimal(counts.get("cost") or 0),
        )
        for key in (
            "recipients",
            "sent",
            "delivered",
            "failed",
            "rejected",
            "pending",
            "opted_out",
            "replies",
        ):
            setattr(overall, key, getattr(overall, key) + getattr(item, key))
        overall.cost += item.cost
        variants.append(item)
    for item in [*variants, overall]:
        if item.sent:
            item.delivery_rate = round(item.delivered / item.sent, 4)
            item.reply_rate = round(item.replies / item.sent, 4)
    metric = campaign.winner_metric
    scored = [v for v in variants if getattr(v, metric) is not None]
    winner = None
    if len(scored) > 1:
        best = max(scored, key=lambda v: getattr(v, metric))
        if sum(1 for v in scored if getattr(v, metric) == getattr(best, metric)) == 1:
            winner = best.variant
    rate = None
    first, last = raw["first_at"], raw["last_at"]
    if first and last and last > first and overall.recipients > 1:
        rate = round((overall.recipients - 1) / (last - first).total_seconds(), 2)
    return CampaignStats(
        campaign_id=campaign.id,
        status=campaign.status,
        audience_total=campaign.audience_total,
        processed=campaign.processed,
        excluded_opted_out=campaign.excluded_opted_out,
        skipped_no_address=campaign.skipped_no_address,
        render_failed=campaign.render_failed,
        overall=overall,
        variants=variants,
        winner=winner,
        winner_metric=metric,
        send_rate_per_s=rate,
    )
