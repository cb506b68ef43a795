"""Search across contacts, companies and deals.

Every write of a searchable record upserts its row in `crm_search_docs` (title, the
lower-cased words of its names, e-mails, phones and domain, and the soundex codes of its
name words). The database indexes that row:

- SQLite: an FTS5 table (`crm_search_fts`, external content, kept in step by triggers)
  over `org_id`, `text` and `sounds`, with prefix indexes; the org is part of the match.
- PostgreSQL: a generated `tsvector` over `text || sounds` (GIN) and a trigram index
  (pg_trgm, GIN) over `text`.

A query first looks for records whose words start with every word typed (prefix match,
newest first, cursor-paginated). When that finds nothing, it falls back to records that
sound alike (soundex: "Jon Smyth" finds "John Smith") and, on PostgreSQL, to trigram
word similarity; those fuzzy results come in one page and say `match: "fuzzy"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import insert_ignore
from nexus.kernel.errors import BadRequest
from nexus.kernel.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from nexus.services.crm import normalize
from nexus.services.crm.models import Company, Contact, Deal, SearchDoc

OBJECT_TYPES = ("contact", "company", "deal")
_PHONE_QUERY = re.compile(r"^\+?[\d\s().-]{5,}$")


@dataclass
class Hit:
    object_type: str
    object_id: str
    title: str
    subtitle: str | None
    owner_id: str | None


def _text(*parts: str | None) -> str:
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        out.append(part.lower())
        out.extend(normalize.words(part))
    return " ".join(dict.fromkeys(out))


def doc_for(obj: Contact | Company | Deal, company_name: str | None = None) -> dict[str, Any]:
    """The search row of a record."""
    if isinstance(obj, Contact):
        names = " ".join(p for p in (obj.first_name, obj.last_name) if p)
        phones = [p.lstrip("+") for p in obj.phones]
        body = _text(names, *obj.emails, *phones)
        subtitle = ", ".join(
            [*obj.emails[:1], *obj.phones[:1], *([company_name] if company_name else [])][:2]
        )
        return _row(obj, "contact", obj.name, subtitle or None, body, normalize.sounds(names))
    if isinstance(obj, Company):
        return _row(
            obj,
            "company",
            obj.name,
            obj.domain,
            _text(obj.name, obj.domain),
            normalize.sounds(obj.name),
        )
    return _row(
        obj,
        "deal",
        obj.name,
        company_name,
        _text(obj.name, company_name),
        normalize.sounds(obj.name),
    )


def _row(
    obj: Any, kind: str, title: str, subtitle: str | None, body: str, sounds: str
) -> dict[str, Any]:
    return {
        "object_id": obj.id,
        "org_id": obj.org_id,
        "object_type": kind,
        "owner_id": obj.owner_id,
        "title": title[:300],
        "subtitle": (subtitle or None) and subtitle[:300],
        "text": body,
        "sounds": sounds,
    }


async def index(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert or replace the search rows (delete + insert keeps the FTS triggers simple)."""
    if not rows:
        return
    await session.execute(
        delete(SearchDoc).where(SearchDoc.object_id.in_([r["object_id"] for r in rows]))
    )
    await insert_ignore(session, SearchDoc, rows)


async def unindex(session: AsyncSession, object_ids: list[str]) -> None:
    if object_ids:
        await session.execute(delete(SearchDoc).where(SearchDoc.object_id.in_(object_ids)))


def _terms(query: str) -> tuple[list[str], str | None]:
    """(the words to match by prefix, a text the record must contain).

    An e-mail is matched by the words of its local part (its domain words, `gmail`,
    `com`, would match half the index) and then by containing what was typed."""
    text = query.strip().lower()
    if _PHONE_QUERY.match(text) and sum(c.isdigit() for c in text) >= 5:
        return ["".join(c for c in text if c.isdigit())], None
    local, at, domain = text.partition("@")
    if at:
        return (normalize.words(local) or normalize.words(domain))[:8], text
    return normalize.words(text)[:8], None


async def search(
    session: AsyncSession,
    query: str,
    *,
    org_id: str,
    owners: dict[str, tuple[str, ...] | None],
    cursor: str | None,
    limit: int,
) -> tuple[list[Hit], str | None, str]:
    """(hits, next cursor, "prefix" | "fuzzy"). `owners` maps each object type to search
    to None (every record) or the owner ids whose records the caller may see."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.")
    terms, contains = _terms(query)
    if not terms:
        raise BadRequest("Type at least one letter or digit to search.", slug="empty-query")
    after = decode_cursor(cursor) if cursor else None
    pg = session.bind.dialect.name == "postgresql"
    where, params = _scope(owners, org_id)
    params["limit"] = limit + 1
    if after:
        where.append("d.object_id < :after")
        params["after"] = after
    if contains:
        where.append(f"{'strpos' if pg else 'instr'}(d.text, :contains) > 0")
        params["contains"] = contains
    rows = await _run(session, pg, "prefix", terms, query, where, params)
    if len(rows) > limit:
        rows = rows[:limit]
        return [_hit(r) for r in rows], encode_cursor(rows[-1].object_id), "prefix"
    if rows or after:
        return [_hit(r) for r in rows], None, "prefix"
    codes = normalize.sounds(query).split()
    if contains or (not codes and not pg):
        return [], None, "prefix"
    params["limit"] = limit
    fuzzy = await _run(session, pg, "fuzzy", codes, query, where, params)
    return [_hit(r) for r in fuzzy], None, "fuzzy"


def _scope(
    owners: dict[str, tuple[str, ...] | None], org_id: str
) -> tuple[list[str], dict[str, Any]]:
    params: dict[str, Any] = {"org_id": org_id}
    clauses = []
    for i, (kind, ids) in enumerate(sorted(owners.items())):
        params[f"type{i}"] = kind
        if ids is None:
            clauses.append(f"d.object_type = :type{i}")
            continue
        if not ids:
            continue
        names = []
        for j, owner in enumerate(ids):
            params[f"owner{i}_{j}"] = owner
            names.append(f":owner{i}_{j}")
        clauses.append(f"(d.object_type = :type{i} AND d.owner_id IN ({', '.join(names)}))")
    return [f"({' OR '.join(clauses) or 'false'})"], params


async def _run(
    session: AsyncSession,
    pg: bool,
    mode: str,
    terms: list[str],
    query: str,
    where: list[str],
    params: dict[str, Any],
) -> list[Any]:
    # The SQL is assembled from fixed fragments; every value is a bound parameter, and the
    # FTS5 match terms are letters and digits only (normalize.words, soundex codes).
    columns = "d.object_type, d.object_id, d.title, d.subtitle, d.owner_id"
    if pg:
        conditions = ["d.org_id = :org_id", *where]
        if mode == "prefix":
            params["tsq"] = " & ".join(f"{t}:*" for t in terms)
            conditions.append("d.tsv @@ to_tsquery('simple', :tsq)")
            order = "d.object_id DESC"
        else:
            params["q"] = " ".join(normalize.words(query))
            match = ["(:q <% d.text)"]
            if terms:
                params["tsq"] = " & ".join(terms)
                match.append("d.tsv @@ to_tsquery('simple', :tsq)")
            conditions.append(f"({' OR '.join(match)})")
            order = "word_similarity(:q, d.text) DESC, d.object_id DESC"
        # OFFSET 0 keeps the planner from walking the newest-first index and testing
        # every row against the tsquery (a rare term, a phone number, read 1M rows):
        # the GIN and trigram indexes find the matches first, then they are ordered
        sql = (
            f"SELECT {columns} FROM (SELECT * FROM crm_search_docs d "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} OFFSET 0) d ORDER BY {order} LIMIT :limit"
        )
    else:
        org = '"' + "".join(c for c in params["org_id"] if c.isalnum()) + '"'
        if mode == "prefix":
            match = " AND ".join(f'"{t}"*' for t in terms)
            params["match"] = f"org_id : {org} AND text : ({match})"
        else:
            params["match"] = f"org_id : {org} AND sounds : ({' AND '.join(terms)})"
        sql = (
            f"SELECT {columns} FROM crm_search_fts f "  # noqa: S608
            "JOIN crm_search_docs d ON d.rowid = f.rowid "
            f"WHERE crm_search_fts MATCH :match AND {' AND '.join(where)} "
            f"ORDER BY d.object_id DESC LIMIT :limit"
        )
    return list((await session.execute(text(sql), params)).all())


def _hit(row: Any) -> Hit:
    return Hit(row.object_type, row.object_id, row.title, row.subtitle, row.owner_id)
