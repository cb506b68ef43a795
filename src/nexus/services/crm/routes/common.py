"""What the CRM routes share: the database, paging parameters, linked-record checks."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database
from nexus.kernel.errors import NotFound
from nexus.kernel.pagination import page_of, paginate
from nexus.services.crm.access import Access

Cursor = Query(None, max_length=200, description="`next_cursor` of the previous page.")
Limit = Query(50, ge=1, le=500)


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
