"""What the CRM routes share: the database, paging parameters, linked-record checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Header, Query, Request, Response
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database
from nexus.kernel.errors import NotFound
from nexus.kernel.pagination import page_of, paginate
from nexus.services.crm.access import Access
from nexus.services.crm.models import IdempotencyKey

Cursor = Query(None, max_length=200, description="`next_cursor` of the previous page.")
Limit = Query(50, ge=1, le=500)
IdempotencyKeyHeader = Header(
    None,
    alias="Idempotency-Key",
    max_length=150,
    description="Repeat a create safely: the same key (per caller) returns the same record.",
)


def crm_db(request: Request) -> Database:
    return request.app.state.runtime.db("crm")  # type: ignore[no-any-return]


async def page(
    session: AsyncSession, stmt: Select[Any], model: Any, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """Newest first, by id (UUIDv7), with a cursor."""
    rows = list(await session.scalars(paginate(stmt, model.id, cursor, limit, descending=True)))
    return page_of(rows, limit)


async def linked(
    session: AsyncSession, access: Access, model: Any, record_id: str | None, field: str
) -> Any:
    """A record another one points at (a deal's company...): it must exist in the org and
    be readable by the caller; else 404 naming the field."""
    if record_id is None:
        return None
    obj = await session.get(model, record_id)
    if obj is None or not access.allows(obj) or getattr(obj, "merged_into_id", None):
        raise NotFound(f"{field}: no {access.kind} {record_id}.", field=field)
    return obj


def reader(access: Access, kind: str) -> Access:
    """The read access of the same caller to another kind of record."""
    return Access(access.principal, kind, "read")


async def create_once(
    db: Database,
    acc: Access,
    model: Any,
    key: str | None,
    response: Response,
    create: Callable[[AsyncSession], Awaitable[Any]],
) -> Any:
    """`create(session)` in a unit of work, once per caller and `Idempotency-Key`: a
    repeated key returns the record the first request created (`Idempotent-Replayed`)."""
    scoped = f"{acc.principal.subject}:{key}" if key else None
    org_id = acc.principal.org_id

    async def replay() -> Any:
        async with db.read(org_id=org_id) as session:
            object_id = await session.scalar(
                select(IdempotencyKey.object_id).where(
                    IdempotencyKey.kind == acc.kind, IdempotencyKey.key == scoped
                )
            )
            obj = await session.get(model, object_id) if object_id else None
        if obj is not None:
            response.headers["Idempotent-Replayed"] = "true"
        return obj

    if scoped and (obj := await replay()) is not None:
        return obj
    try:
        async with db.transaction(org_id=org_id) as session:
            obj = await create(session)
            if scoped:
                session.add(
                    IdempotencyKey(org_id=org_id, kind=acc.kind, key=scoped, object_id=obj.id)
                )
        return obj
    except IntegrityError:  # the same key, concurrently
        if scoped and (obj := await replay()) is not None:
            return obj
        raise
