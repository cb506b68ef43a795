"""Companies: the domain is normalized and unique per org."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict
from nexus.kernel.ids import new_id
from nexus.services.crm import custom_fields, normalize, search
from nexus.services.crm.custom_fields import FieldErrors
from nexus.services.crm.models import Company

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
