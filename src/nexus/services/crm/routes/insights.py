"""/api/v1/crm/search, /forecast and /scoring."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from nexus.kernel.auth import Principal, current_principal
from nexus.kernel.errors import BadRequest, Forbidden, NotFound
from nexus.services.crm import forecast as forecasting
from nexus.services.crm import scoring, search
from nexus.services.crm.access import Access, access
from nexus.services.crm.models import Deal, ScoringModel
from nexus.services.crm.routes.common import Cursor, crm_db
from nexus.services.crm.schemas import ForecastOut, ScoringModelOut, SearchHit, SearchOut

router = APIRouter(tags=["crm search and insights"])


@router.get("/search", response_model=SearchOut, summary="Search contacts, companies and deals")
async def search_records(
    request: Request,
    q: str = Query(min_length=1, max_length=200, description="Names, e-mail, phone, domain."),
    type: list[str] = Query(["contact", "company", "deal"], description="Object types to search."),
    cursor: str | None = Cursor,
    limit: int = Query(25, ge=1, le=100),
    principal: Principal = Depends(current_principal),
) -> SearchOut:
    """Words match the start of words (`ada lov` finds Ada Lovelace); phone numbers match
    by digits. With no such match, records that sound alike come back (`match: fuzzy`):
    "Jon Smyth" finds John Smith. Only records you may read are searched."""
    unknown = set(type) - set(search.OBJECT_TYPES)
    if unknown:
        raise BadRequest(f"type: unknown {', '.join(sorted(unknown))}.")
    owners: dict[str, tuple[str, ...] | None] = {}
    for kind in dict.fromkeys(type):
        reading = Access(principal, kind, "read")
        if reading.held():
            owners[kind] = reading.owner_ids()
    if not owners:
        raise Forbidden(
            "This needs crm:contact:read, crm:company:read or crm:deal:read.",
            missing=[f"crm:{t}:read" for t in type],
        )
    async with crm_db(request).read(org_id=principal.org_id) as session:
        hits, next_cursor, match = await search.search(
            session, q, org_id=principal.org_id, owners=owners, cursor=cursor, limit=limit
        )
    return SearchOut(
        items=[
            SearchHit(
                type=h.object_type,
                id=h.object_id,
                title=h.title,
                subtitle=h.subtitle,
                owner_id=h.owner_id,
            )
            for h in hits
        ],
        next_cursor=next_cursor,
        match=match,  # type: ignore[arg-type]
    )


@router.get(
    "/forecast",
    response_model=ForecastOut,
    response_model_by_alias=True,
    summary="Weighted pipeline, committed and best case, win rate, cycle",
)
async def get_forecast(
    request: Request,
    start: dt.date | None = Query(None, alias="from", description="Default: this month's start."),
    end: dt.date | None = Query(None, alias="to", description="Default: 3 months after from."),
    grain: str = Query("month", pattern="^(month|quarter)$"),
    pipeline_id: str | None = Query(None, max_length=36),
    owner_id: str | None = Query(None, max_length=36),
    commit_at: float = Query(
        0.7, ge=0, le=1, description="Open deals at this probability count as committed."
    ),
    best_case_at: float = Query(0.2, ge=0, le=1),
    acc: Access = access("deal", "read"),
) -> dict[str, Any]:
    """Rows per period, owner and currency over the deals you may read (a rep: its own).
    See docs/crm.md for the definitions."""
    today = dt.datetime.now(dt.UTC).date()
    start = start or today.replace(day=1)
    end = end or (start.replace(day=1) + dt.timedelta(days=92)).replace(day=1) - dt.timedelta(
        days=1
    )
    if end < start or (end - start).days > 3 * 366:
        raise BadRequest("`to` must follow `from`, at most three years later.")
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        return await forecasting.forecast(
            session,
            acc.principal.org_id,
            visible=acc.where(Deal),
            start=start,
            end=end,
            grain=grain,
            pipeline_id=pipeline_id,
            owner_id=owner_id,
            commit_at=commit_at,
            best_case_at=best_case_at,
        )


@router.get("/scoring", response_model=ScoringModelOut, summary="The lead-scoring model")
async def scoring_model(
    request: Request, acc: Access = access("contact", "read")
) -> ScoringModelOut:
    """Which model scores (`ml` or `rules`), trained on how many deals, and how the model
    and the rules did on held-out recent deals (ROC AUC)."""
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        model = await session.scalar(select(ScoringModel))
    if model is None:
        raise NotFound("Not trained yet: POST /api/v1/crm/scoring/train or wait for the schedule.")
    return ScoringModelOut.model_validate(model)


@router.post("/scoring/train", response_model=ScoringModelOut, summary="Retrain lead scoring now")
async def train_scoring(
    request: Request, acc: Access = access("scoring", "train")
) -> ScoringModelOut:
    if not acc.unrestricted:
        raise Forbidden(
            "Training uses every deal of the org: it needs crm:scoring:train unrestricted."
        )
    model = await scoring.train_org(crm_db(request), acc.principal.org_id)
    return ScoringModelOut.model_validate(model)
