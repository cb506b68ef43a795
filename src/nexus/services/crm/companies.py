"""Companies: the domain is normalized and unique per org."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.services.crm import custom_fields, normalize, search
from nexus.services.crm.custom_fields import FieldErrors
from nexus.services.crm.models import Activity, Company, Contact, Deal

FIELDS = ("name", "industry", "size", "owner_id")


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize.domain(value)
    except normalize.InvalidValue as exc:
        raise FieldErrors([{"field": "domain", "message": str(exc), "code": "invalid"}]) from None


async def _unique(session: AsyncSession, org_id: str, domain: str | None, own_id: str) -> None:
    if domain is None:
        return
    other = await session.scalar(
        select(Company.id).where(
            Company.org_id == org_id, Company.domain == domain, Company.id != own_id
        )
    )
    if other:
        raise Conflict(
            f"Another company already has the domain {domain}.",
            slug="duplicate-domain",
            company_id=other,
        )


async def create(session: AsyncSession, org_id: str, actor: str, data: dict[str, Any]) -> Company:
    fields = await custom_fields.definitions(session, org_id, "company")
    company = Company(
        id=new_id(),
        org_id=org_id,
        name=data["name"],
        domain=_domain(data.get("domain")),
        industry=data.get("industry"),
        size=data.get("size"),
        owner_id=data.get("owner_id") or actor,
        custom=custom_fields.validate(fields, data.get("custom") or {}),
    )
    await _unique(session, org_id, company.domain, company.id)
    session.add(company)
    await session.flush()
    await search.index(session, [search.doc_for(company)])
    return company


async def update(session: AsyncSession, company: Company, data: dict[str, Any]) -> list[str]:
    changed = []
    if "domain" in data:
        domain = _domain(data["domain"])
        if domain != company.domain:
            await _unique(session, company.org_id, domain, company.id)
            company.domain = domain
            changed.append("domain")
    for name in FIELDS:
        if name in data and data[name] is not None and data[name] != getattr(company, name):
            setattr(company, name, data[name])
            changed.append(name)
    if data.get("custom") is not None:
        fields = await custom_fields.definitions(session, company.org_id, "company")
        custom = custom_fields.validate(fields, data["custom"], current=company.custom)
        if custom != company.custom:
            company.custom = custom
            changed.append("custom")
    if changed:
        company.updated_at = utcnow()
        await session.flush()
        await search.index(session, [search.doc_for(company)])
    return changed


_SUFFIXES = frozenset(
    [
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "sarl",
        "bv",
        "nv",
        "plc",
        "pty",
        "oy",
        "ab",
        "as",
        "srl",
        "spa",
        "kk",
    ]
)


def name_key(name: str) -> str:
    """A company name without case, accents, punctuation and legal suffixes."""
    words = normalize.words(name)
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return " ".join(words)


async def duplicates(session: AsyncSession, company: Company) -> list[tuple[Company, list[str]]]:
    """Other companies with the same name (legal suffixes aside), a name that sounds the
    same, or a domain with the same first label (acme.com, acme.co.uk)."""
    others = list(
        await session.scalars(
            select(Company).where(
                Company.org_id == company.org_id,
                Company.id != company.id,
                Company.merged_into_id.is_(None),
            )
        )
    )
    key = name_key(company.name)
    sounds = normalize.sounds(key)
    label = company.domain.split(".", 1)[0] if company.domain else None
    found = []
    for other in others:
        reasons = []
        if name_key(other.name) == key:
            reasons.append("same name")
        elif sounds and normalize.sounds(name_key(other.name)) == sounds:
            reasons.append("similar name")
        if label and other.domain and other.domain.split(".", 1)[0] == label:
            reasons.append(f"similar domain {other.domain}")
        if reasons:
            found.append((other, reasons))
    return found


async def merge(session: AsyncSession, keep: Company, other: Company, actor: str) -> None:
    """Merge `other` into `keep`: its contacts, deals and activities move over, `keep`'s
    empty fields are filled from it; `other` stays as a pointer (`merged_into_id`)."""
    for model in (Contact, Deal, Activity):
        await session.execute(
            sql_update(model).where(model.company_id == other.id).values(company_id=keep.id)
        )
    if not keep.domain and other.domain:
        keep_domain, other.domain = other.domain, None
        await session.flush()  # the domain is unique: free it first
        keep.domain = keep_domain
    for name in ("industry", "size"):
        if getattr(keep, name) is None and getattr(other, name) is not None:
            setattr(keep, name, getattr(other, name))
    keep.custom = {**other.custom, **keep.custom}
    other.merged_into_id = keep.id
    other.updated_at = keep.updated_at = utcnow()
    session.add(
        Activity(
            org_id=keep.org_id,
            kind="note",
            subject="Companies merged",
            body=f"{other.name} ({other.id}) was merged into this company.",
            company_id=keep.id,
            owner_id=actor,
            data={"merged_id": other.id},
        )
    )
    await session.flush()
    await search.unindex(session, [other.id])
    await search.index(session, [search.doc_for(keep)])
    emit(
        session,
        "nexus.crm.company.merged",
        {"company_id": keep.id, "merged_id": other.id},
        org_id=keep.org_id,
    )
