"""Pipelines, stages and deals: moving a deal records its stage history and emits
`nexus.crm.deal.stage_changed`, closing it `nexus.crm.deal.won` / `.lost`."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import insert_ignore, utcnow
from nexus.kernel.errors import BadRequest, Conflict, NotFound
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.services.crm import custom_fields, search
from nexus.services.crm.models import Company, Deal, DealContact, Pipeline, Stage, StageChange

DEFAULT_STAGES = (
    ("Lead in", 0.1),
    ("Qualified", 0.25),
    ("Proposal", 0.5),
    ("Negotiation", 0.75),
)
_NS = uuid.UUID("7d1f5e2a-3c4b-4d8e-9a6f-1b2c3d4e5f60")


async def ensure_default_pipeline(session: AsyncSession, org_id: str) -> Pipeline:
    """The org's default pipeline, created on first use (the same ids in every process)."""
    found = await session.scalar(
        select(Pipeline).where(Pipeline.org_id == org_id, Pipeline.is_default.is_(True))
    )
    if found is not None:
        return found
    pipeline_id = str(uuid.uuid5(_NS, f"{org_id}:default"))
    now = utcnow()
    await insert_ignore(
        session,
        Pipeline,
        [
            {
                "id": pipeline_id,
                "org_id": org_id,
                "name": "Sales",
                "is_default": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    await insert_ignore(
        session,
        Stage,
        [
            {
                "id": str(uuid.uuid5(_NS, f"{org_id}:default:{i}")),
                "org_id": org_id,
                "pipeline_id": pipeline_id,
                "name": name,
                "position": i,
                "probability": p,
            }
            for i, (name, p) in enumerate(DEFAULT_STAGES)
        ],
    )
    pipeline = await session.get(Pipeline, pipeline_id)
    assert pipeline is not None
    return pipeline


async def stages_of(session: AsyncSession, pipeline_id: str) -> list[Stage]:
    return list(
        await session.scalars(
            select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
        )
    )


async def set_stages(
    session: AsyncSession, pipeline: Pipeline, stages: list[dict[str, Any]]
) -> None:
    """Replace the stage list: stages given with an id are kept (renamed, reordered);
    a stage left out is removed, which is refused while open deals are in it."""
    current = {s.id: s for s in await stages_of(session, pipeline.id)}
    keep = {s["id"] for s in stages if s.get("id")}
    unknown = keep - set(current)
    if unknown:
        raise BadRequest(f"No stage {', '.join(sorted(unknown))} in this pipeline.")
    names = [s["name"].strip().lower() for s in stages]
    if len(set(names)) != len(names):
        raise BadRequest("Stage names must differ within a pipeline.")
    dropped = set(current) - keep
    if dropped:
        used = await session.scalar(
            select(func.count()).select_from(Deal).where(Deal.stage_id.in_(dropped))
        )
        if used:
            raise Conflict(
                f"{used} deal(s) are still in the stages being removed; move them first.",
                slug="stage-in-use",
            )
        await session.execute(delete(Stage).where(Stage.id.in_(dropped)))
    for position, data in enumerate(stages):
        stage = current.get(data.get("id") or "")
        if stage is None:
            stage = Stage(id=new_id(), org_id=pipeline.org_id, pipeline_id=pipeline.id)
            session.add(stage)
        stage.name, stage.probability, stage.position = (
            data["name"],
            data["probability"],
            position,
        )


async def make_default(session: AsyncSession, pipeline: Pipeline) -> None:
    others = await session.scalars(
        select(Pipeline).where(Pipeline.org_id == pipeline.org_id, Pipeline.id != pipeline.id)
    )
    for other in others:
        other.is_default = False
    pipeline.is_default = True


def probability(deal: Deal, stage: Stage) -> float:
    if deal.status == "won":
        return 1.0
    if deal.status == "lost":
        return 0.0
    return deal.probability_override if deal.probability_override is not None else stage.probability


async def contact_ids(session: AsyncSession, deal_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {d: [] for d in deal_ids}
    if deal_ids:
        rows = await session.execute(
            select(DealContact.deal_id, DealContact.contact_id).where(
                DealContact.deal_id.in_(deal_ids)
            )
        )
        for deal_id, contact_id in rows:
            out[deal_id].append(contact_id)
    return out


async def _set_contacts(session: AsyncSession, deal: Deal, ids: list[str]) -> None:
    await session.execute(delete(DealContact).where(DealContact.deal_id == deal.id))
    session.add_all(
        DealContact(deal_id=deal.id, contact_id=c, org_id=deal.org_id) for c in dict.fromkeys(ids)
    )


async def _stage(session: AsyncSession, pipeline_id: str, stage_id: str | None) -> Stage:
    stages = await stages_of(session, pipeline_id)
    if not stages:
        raise Conflict("The pipeline has no stages.")
    if stage_id is None:
        return stages[0]
    for stage in stages:
        if stage.id == stage_id:
            return stage
    raise BadRequest(f"No stage {stage_id} in the deal's pipeline.", slug="unknown-stage")


async def _reindex(session: AsyncSession, deal: Deal) -> None:
    company = None
    if deal.company_id:
        company = await session.scalar(select(Company.name).where(Company.id == deal.company_id))
    await search.index(session, [search.doc_for(deal, company)])


async def create(session: AsyncSession, org_id: str, actor: str, data: dict[str, Any]) -> Deal:
    if data.get("pipeline_id"):
        pipeline = await session.get(Pipeline, data["pipeline_id"])
        if pipeline is None or pipeline.org_id != org_id:
            raise NotFound(f"No pipeline {data['pipeline_id']}.")
    else:
        pipeline = await ensure_default_pipeline(session, org_id)
    stage = await _stage(session, pipeline.id, data.get("stage_id"))
    fields = await custom_fields.definitions(session, org_id, "deal")
    now = utcnow()
    deal = Deal(
        id=new_id(),
        created_at=now,
        updated_at=now,
        org_id=org_id,
        name=data["name"],
        amount=Decimal(data.get("amount") or 0),
        currency=data.get("currency") or "USD",
        pipeline_id=pipeline.id,
        stage_id=stage.id,
        probability_override=data.get("probability"),
        expected_close=data.get("expected_close"),
        owner_id=data.get("owner_id") or actor,
        company_id=data.get("company_id"),
        status="open",
        custom=custom_fields.validate(fields, data.get("custom") or {}),
    )
    session.add(deal)
    await _set_contacts(session, deal, data.get("contact_ids") or [])
    session.add(
        StageChange(
            org_id=org_id,
            deal_id=deal.id,
            from_stage_id=None,
            to_stage_id=stage.id,
            from_status=None,
            to_status="open",
            changed_by=actor,
            at=now,
        )
    )
    await session.flush()
    await _reindex(session, deal)
    emit(
        session,
        "nexus.crm.deal.created",
        {"deal_id": deal.id, "owner_id": deal.owner_id, "stage_id": stage.id},
        org_id=org_id,
    )
    return deal


async def update(session: AsyncSession, deal: Deal, data: dict[str, Any], actor: str) -> list[str]:
    """Apply a patch; a stage or status change is recorded and published."""
    changed: list[str] = []
    for name in (
        "name",
        "amount",
        "currency",
        "expected_close",
        "owner_id",
        "company_id",
        "lost_reason",
    ):
        if name in data and data[name] != getattr(deal, name):
            if name in ("name", "amount", "currency", "owner_id") and data[name] is None:
                continue
            setattr(deal, name, data[name])
            changed.append(name)
    if data.get("clear_probability"):
        deal.probability_override = None
        changed.append("probability")
    elif data.get("probability") is not None and data["probability"] != deal.probability_override:
        deal.probability_override = data["probability"]
        changed.append("probability")
    if data.get("contact_ids") is not None:
        await _set_contacts(session, deal, data["contact_ids"])
        changed.append("contact_ids")
    if data.get("custom") is not None:
        fields = await custom_fields.definitions(session, deal.org_id, "deal")
        custom = custom_fields.validate(fields, data["custom"], current=deal.custom)
        if custom != deal.custom:
            deal.custom = custom
            changed.append("custom")
    old_stage, old_status = deal.stage_id, deal.status
    stage = await _stage(session, deal.pipeline_id, data.get("stage_id") or deal.stage_id)
    status = data.get("status") or deal.status
    if status == "lost" and not (data.get("lost_reason") or deal.lost_reason):
        raise BadRequest("Say why the deal was lost (lost_reason).", slug="lost-reason-required")
    if (stage.id, status) != (old_stage, old_status):
        await move(session, deal, stage, status, actor)
        changed.append("stage_id" if stage.id != old_stage else "status")
    if changed:
        deal.updated_at = utcnow()
        await session.flush()
        await _reindex(session, deal)
    return changed


async def move(session: AsyncSession, deal: Deal, stage: Stage, status: str, actor: str) -> None:
    old_stage, old_status = deal.stage_id, deal.status
    now = utcnow()
    deal.stage_id, deal.status = stage.id, status
    if status == "open":
        deal.closed_at = None
        deal.lost_reason = None
    elif old_status == "open" or deal.closed_at is None:
        deal.closed_at = now
    session.add(
        StageChange(
            org_id=deal.org_id,
            deal_id=deal.id,
            from_stage_id=old_stage,
            to_stage_id=stage.id,
            from_status=old_status,
            to_status=status,
            changed_by=actor,
            at=now,
        )
    )
    base = {"deal_id": deal.id, "owner_id": deal.owner_id, "pipeline_id": deal.pipeline_id}
    if stage.id != old_stage:
        emit(
            session,
            "nexus.crm.deal.stage_changed",
            base
            | {
                "from_stage_id": old_stage,
                "to_stage_id": stage.id,
                "probability": probability(deal, stage),
            },
            org_id=deal.org_id,
        )
    if status != old_status and status in ("won", "lost"):
        emit(
            session,
            f"nexus.crm.deal.{status}",
            base
            | {
                "amount": str(deal.amount),
                "currency": deal.currency,
                "lost_reason": deal.lost_reason,
            },
            org_id=deal.org_id,
        )
