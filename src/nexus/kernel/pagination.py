"""Cursor pagination over time-ordered ids (UUIDv7): stable under inserts, no OFFSET."""

from __future__ import annotations

import base64
import re
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select

from nexus.kernel.errors import BadRequest

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def decode_cursor(cursor: str) -> str:
    """The id a cursor stands for; 400 for anything that is not a cursor we made."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except Exception:
        value = ""
    if not _ID.match(value) or encode_cursor(value) != cursor:
        raise BadRequest("The cursor is not valid; use the next_cursor of a previous page.")
    return value


def paginate(
    stmt: Select[Any], id_column: Any, cursor: str | None, limit: int, *, descending: bool = False
) -> Select[Any]:
    """Apply cursor and limit (fetches one extra row to know whether a next page exists)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.")
    if cursor:
        last = decode_cursor(cursor)
        stmt = stmt.where(id_column < last if descending else id_column > last)
    order = id_column.desc() if descending else id_column.asc()
    return stmt.order_by(order).limit(limit + 1)


def page_of(
    rows: list[Any], limit: int, key: Any = lambda row: row.id
) -> tuple[list[Any], str | None]:
    """Split the fetched rows into this page and the next cursor."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(str(key(rows[-1])))
    return rows, None
