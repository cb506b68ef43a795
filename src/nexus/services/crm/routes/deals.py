"""/api/v1/crm/pipelines (with the board) and /api/v1/crm/deals."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.errors import Conflict, NotFound
from nexus.kernel.pagination import Page, encode_cursor
from nexus.services.crm import activities, custom_fields, deals, search
from nexus.services.crm.access import Access, access
from nexus.services.crm.models import (
    Activity,
    Company,
    Contact,
    Deal,
    DealContact,
    Pipeline,
    Stage,
    StageChange,
)
from nexus.services.crm.routes.common import (
    Cursor,
    IdempotencyKeyHeader,
    Limit,
    create_once,
    crm_db,
    linked,
    page,
    reader,
)
from nexus.services.crm.schemas import (
    ActivityOut,
    BoardOut,
    BoardStage,
    DealIn,
    DealOut,
    DealPatch,
    PipelineIn,
    PipelineOut,
    PipelinePatch,
    StageChangeOut,
    StageOut,
)

pipelines = APIRouter(prefix="/pipelines", tags=["crm pipelines"])
router = APIRouter(prefix="/deals", tags=["crm deals"])


async def _pipeline_out(session: AsyncSession, pipeline: Pipeline) -> PipelineOut:
    stages = await deals.stages_of(session, pipeline.id)
    return PipelineOut(
        id=pipeline.id,
        name=pipeline.name,
        is_default=pipeline.is_default,
        stages=[StageOut.model_validate(s) for s in stages],
    )


_DEAL_COLUMNS = [k for k in DealOut.model_fields if k not in ("probability", "contact_ids")]


def _deal_out(deal: Deal, stage: Stage, contact_ids: list[str]) -> DealOut:
    return DealOut(
        **{k: getattr(deal, k) for k in _DEAL_COLUMNS},
        probability=deals.probability(deal, stage),
        contact_ids=contact_ids,
    )


async def _deals_out(session: AsyncSession, rows: list[Deal]) -> list[DealOut]:
    stage_ids = {d.stage_id for d in rows}
    stages = {s.id: s for s in await session.scalars(select(Stage).where(Stage.id.in_(stage_ids)))}
    links = await deals.contact_ids(session, [d.id for d in rows])
    return [_deal_out(d, stages[d.stage_id], links[d.id]) for d in rows]


# -- pipelines -----------------------------------------------------------------------------
@pipelines.get("", response_model=list[PipelineOut], summary="The org's pipelines and stages")
async def list_pipelines(
    request: Request, acc: Access = access("deal", "read")
) -> list[PipelineOut]:
    """Every org has a default pipeline ("Sales", four stages) from its first use."""
    db = crm_db(request)
    async with db.read(org_id=acc.principal.org_id) as session:
        rows = list(
            await session.scalars(select(Pipeline).order_by(Pipeline.created_at, Pipeline.id))
        )
        if rows:
            return [await _pipeline_out(session, p) for p in rows]
    async with db.transaction(org_id=acc.principal.org_id) as session:
        return [
            await _pipeline_out(
                session, await deals.ensure_default_pipeline(session, acc.principal.org_id)
            )
        ]


@pipelines.post("", response_model=PipelineOut, status_code=201, summary="Create a pipeline")
async def create_pipeline(
    body: PipelineIn, request: Request, acc: Access = access("pipeline", "write")
) -> PipelineOut:
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        await deals.ensure_default_pipeline(session, acc.principal.org_id)
        if await session.scalar(select(Pipeline.id).where(Pipeline.name == body.name)):
            raise Conflict(f"A pipeline is already named {body.name!r}.", slug="duplicate-name")
        pipeline = Pipeline(org_id=acc.principal.org_id, name=body.name, is_default=False)
        session.add(pipeline)
        await session.flush()
        await deals.set_stages(session, pipeline, [s.model_dump() for s in body.stages])
        if body.is_default:
            await deals.make_default(session, pipeline)
        await session.flush()
        return await _pipeline_out(session, pipeline)


@pipelines.patch("/{pipeline_id}", response_model=PipelineOut, summary="Rename, restage")
async def update_pipeline(
    pipeline_id: str,
    body: PipelinePatch,
    request: Request,
    acc: Access = access("pipeline", "write"),
) -> PipelineOut:
    """`stages` is the whole new list: give the `id` of each stage to keep; a stage left
    out is removed (refused while deals are in it)."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None or pipeline.org_id != acc.principal.org_id:
            raise NotFound(f"No pipeline {pipeline_id}.")
        if body.name and body.name != pipeline.name:
            if await session.scalar(select(Pipeline.id).where(Pipeline.name == body.name)):
                raise Conflict(f"A pipeline is already named {body.name!r}.", slug="duplicate-name")
            pipeline.name = body.name
        if body.stages is not None:
            await deals.set_stages(session, pipeline, [s.model_dump() for s in body.stages])
        if body.is_default:
            await deals.make_default(session, pipeline)
        await session.flush()
        return await _pipeline_out(session, pipeline)


@pipelines.delete("/{pipeline_id}", status_code=204, summary="Remove a pipeline")
async def delete_pipeline(
    pipeline_id: str, request: Request, acc: Access = access("pipeline", "write")
) -> Response:
    """Refused for the default pipeline and for one that still has deals (move or delete
    them first)."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None or pipeline.org_id != acc.principal.org_id:
            raise NotFound(f"No pipeline {pipeline_id}.")
        if pipeline.is_default:
            raise Conflict("Make another pipeline the default first.", slug="default-pipeline")
        used = await session.scalar(
            select(func.count()).select_from(Deal).where(Deal.pipeline_id == pipeline.id)
        )
        if used:
            raise Conflict(f"{used} deal(s) are in this pipeline.", slug="pipeline-in-use")
        await session.execute(delete(Stage).where(Stage.pipeline_id == pipeline.id))
        await session.delete(pipeline)
    return Response(status_code=204)


@pipelines.get("/{pipeline_id}/board", response_model=BoardOut, summary="The pipeline board")
async def board(
    pipeline_id: str,
    request: Request,
    per_stage: int = Query(50, ge=0, le=500, description="Deals shown per stage."),
    owner_id: str | None = Query(None, max_length=36),
    acc: Access = access("deal", "read"),
) -> BoardOut:
    """Each stage with its open deals' count, amount and weighted amount per currency, and
    its newest `per_stage` deals (more with `GET /deals?stage_id=…&cursor=…`). A rep sees
    the deals it may see."""
    org_id = acc.principal.org_id
    async with crm_db(request).read(org_id=org_id) as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None or pipeline.org_id != org_id:
            raise NotFound(f"No pipeline {pipeline_id}.")
        stages = await deals.stages_of(session, pipeline.id)
        scope = [
            Deal.org_id == org_id,
            Deal.pipeline_id == pipeline.id,
            Deal.status == "open",
            acc.where(Deal),
        ]
        if owner_id:
            scope.append(Deal.owner_id == owner_id)
        probability = func.coalesce(Deal.probability_override, Stage.probability)
        sums = await session.execute(
            select(
                Deal.stage_id,
                Deal.currency,
                func.count(),
                func.sum(Deal.amount),
                func.sum(Deal.amount * probability),
            )
            .join(Stage, Stage.id == Deal.stage_id)
            .where(*scope)
            .group_by(Deal.stage_id, Deal.currency)
        )
        totals: dict[str, tuple[int, dict[str, Decimal], dict[str, Decimal]]] = {}
        for stage_id, currency, count, amount, weighted in sums:
            n, amounts, weights = totals.setdefault(stage_id, (0, {}, {}))
            amounts[currency] = Decimal(str(amount or 0)).quantize(Decimal("0.01"))
            weights[currency] = Decimal(str(weighted or 0)).quantize(Decimal("0.01"))
            totals[stage_id] = (n + count, amounts, weights)
        columns = []
        for stage in stages:
            count, amounts, weights = totals.get(stage.id, (0, {}, {}))
            rows: list[Deal] = []
            if per_stage and count:
                rows = list(
                    await session.scalars(
                        select(Deal)
                        .where(*scope, Deal.stage_id == stage.id)
                        .order_by(Deal.id.desc())
                        .limit(per_stage)
                    )
                )
            columns.append(
                BoardStage(
                    stage=StageOut.model_validate(stage),
                    count=count,
                    amount=amounts,
                    weighted=weights,
                    deals=await _deals_out(session, rows),
                    next_cursor=encode_cursor(rows[-1].id) if count > len(rows) and rows else None,
                )
            )
        return BoardOut(pipeline=await _pipeline_out(session, pipeline), stages=columns)


# -- deals ---------------------------------------------------------------------------------
@router.get("", response_model=Page[DealOut], summary="List deals (newest first)")
async def list_deals(
    request: Request,
    pipeline_id: str | None = Query(None, max_length=36),
    stage_id: str | None = Query(None, max_length=36),
    status: str | None = Query(None, pattern="^(open|won|lost)$"),
    owner_id: str | None = Query(None, max_length=36),
    company_id: str | None = Query(None, max_length=36),
    contact_id: str | None = Query(None, max_length=36),
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("deal", "read"),
) -> Page[DealOut]:
    """Custom fields filter with `cf.<key>=value` (`.gte` / `.lte` for numbers and dates)."""
    db = crm_db(request)
    org_id = acc.principal.org_id
    async with db.read(org_id=org_id) as session:
        stmt = select(Deal).where(Deal.org_id == org_id, acc.where(Deal))
        for column, value in (
            (Deal.pipeline_id, pipeline_id),
            (Deal.stage_id, stage_id),
            (Deal.status, status),
            (Deal.owner_id, owner_id),
            (Deal.company_id, company_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if contact_id:
            stmt = stmt.where(
                Deal.id.in_(select(DealContact.deal_id).where(DealContact.contact_id == contact_id))
            )
        fields = await custom_fields.definitions(session, org_id, "deal")
        stmt = stmt.where(
            *custom_fields.filters(Deal, fields, dict(request.query_params), db.dialect)
        )
        rows, next_cursor = await page(session, stmt, Deal, cursor, limit)
        return Page[DealOut](items=await _deals_out(session, rows), next_cursor=next_cursor)


async def _check_links(
    session: AsyncSession, acc: Access, company_id: str | None, contact_ids: list[str] | None
) -> None:
    await linked(session, reader(acc, "company"), Company, company_id, "company_id")
    for i, contact_id in enumerate(contact_ids or []):
        await linked(session, reader(acc, "contact"), Contact, contact_id, f"contact_ids.{i}")


@router.post("", response_model=DealOut, status_code=201, summary="Create a deal")
async def create_deal(
    body: DealIn,
    request: Request,
    response: Response,
    key: str | None = IdempotencyKeyHeader,
    acc: Access = access("deal", "write"),
) -> DealOut:
    """In the default pipeline's first stage unless told; the probability comes from the
    stage unless given."""

    async def create(session: AsyncSession) -> Deal:
        await _check_links(session, acc, body.company_id, body.contact_ids)
        deal = await deals.create(
            session, acc.principal.org_id, acc.principal.subject, body.model_dump()
        )
        acc.check_values(deal)
        return deal

    db = crm_db(request)
    deal = await create_once(db, acc, Deal, key, response, create)
    async with db.read(org_id=acc.principal.org_id) as session:
        return (await _deals_out(session, [deal]))[0]


@router.get("/{deal_id}", response_model=DealOut, summary="One deal")
async def get_deal(deal_id: str, request: Request, acc: Access = access("deal", "read")) -> DealOut:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        deal = acc.check(await session.get(Deal, deal_id))
        return (await _deals_out(session, [deal]))[0]


@router.patch("/{deal_id}", response_model=DealOut, summary="Change or move a deal")
async def update_deal(
    deal_id: str, body: DealPatch, request: Request, acc: Access = access("deal", "write")
) -> DealOut:
    """`stage_id` moves it (recorded in its history, `nexus.crm.deal.stage_changed`);
    `status: won|lost` closes it (`lost_reason` needed for lost), `open` reopens it."""
    data = body.model_dump(exclude_unset=True)
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        deal = acc.check(await session.get(Deal, deal_id))
        await _check_links(session, acc, data.get("company_id"), data.get("contact_ids"))
        await deals.update(session, deal, data, acc.principal.subject)
        acc.check_values(deal)
        return (await _deals_out(session, [deal]))[0]


@router.delete("/{deal_id}", status_code=204, summary="Delete a deal")
async def delete_deal(
    deal_id: str, request: Request, acc: Access = access("deal", "delete")
) -> Response:
    """Its activities stay on their contacts' timelines."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        deal = acc.check(await session.get(Deal, deal_id))
        await session.execute(delete(DealContact).where(DealContact.deal_id == deal.id))
        await session.execute(delete(StageChange).where(StageChange.deal_id == deal.id))
        await session.execute(
            delete(Activity).where(Activity.deal_id == deal.id, Activity.contact_id.is_(None))
        )
        await session.execute(
            update(Activity).where(Activity.deal_id == deal.id).values(deal_id=None)
        )
        await search.unindex(session, [deal.id])
        await session.delete(deal)
    return Response(status_code=204)


@router.get("/{deal_id}/history", response_model=list[StageChangeOut], summary="Stage history")
async def deal_history(
    deal_id: str, request: Request, acc: Access = access("deal", "read")
) -> list[StageChangeOut]:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        deal = acc.check(await session.get(Deal, deal_id))
        rows = await session.scalars(
            select(StageChange).where(StageChange.deal_id == deal.id).order_by(StageChange.id)
        )
        return [StageChangeOut.model_validate(r) for r in rows]


@router.get("/{deal_id}/timeline", response_model=Page[ActivityOut], summary="The deal's timeline")
async def deal_timeline(
    deal_id: str,
    request: Request,
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("deal", "read"),
) -> Page[ActivityOut]:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        deal = acc.check(await session.get(Deal, deal_id))
        rows, next_cursor = await page(
            session, activities.timeline(Activity.deal_id, deal.id), Activity, cursor, limit
        )
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(a) for a in rows], next_cursor=next_cursor
    )
