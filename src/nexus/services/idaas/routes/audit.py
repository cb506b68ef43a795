"""/api/v1/audit-events: read-only, filterable, newest first."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from nexus.kernel.auth import Principal, require
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.idaas.deps import Idaas, get_idaas, in_org
from nexus.services.idaas.models import AuditEvent
from nexus.services.idaas.schemas import AuditOut

router = APIRouter(prefix="/audit-events", tags=["audit"])


@router.get("", response_model=Page[AuditOut])
async def list_events(
    request: Request,
    actor_id: str | None = Query(None, max_length=64),
    type: str | None = Query(
        None, max_length=100, description="Exact type, or a prefix ending in '*'."
    ),
    target_id: str | None = Query(None, max_length=64),
    result: str | None = Query(None, pattern="^(success|failure)$"),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = require("idaas:audit:review"),
    idaas: Idaas = Depends(get_idaas),
) -> Page[AuditOut]:
    async with in_org(idaas, request, principal, write=False) as (session, org_id):
        stmt = select(AuditEvent).where(AuditEvent.org_id == org_id)
        if actor_id:
            stmt = stmt.where(AuditEvent.actor_id == actor_id)
        if type:
            stmt = stmt.where(
                AuditEvent.type.startswith(type[:-1])
                if type.endswith("*")
                else AuditEvent.type == type
            )
        if target_id:
            stmt = stmt.where(AuditEvent.target_id == target_id)
        if result:
            stmt = stmt.where(AuditEvent.result == result)
        if since:
            stmt = stmt.where(AuditEvent.created_at >= _utc(since))
        if until:
            stmt = stmt.where(AuditEvent.created_at < _utc(until))
        rows = list(
            (
                await session.scalars(paginate(stmt, AuditEvent.id, cursor, limit, descending=True))
            ).all()
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[AuditOut.model_validate(r) for r in items], next_cursor=next_cursor)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
