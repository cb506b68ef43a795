"""/api/v1/crm/companies: CRUD and timeline."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.errors import BadRequest
from nexus.kernel.pagination import Page
from nexus.services.crm import activities, companies, custom_fields, normalize, search
from nexus.services.crm.access import Access, access
from nexus.services.crm.models import Activity, Company, Contact, Deal
from nexus.services.crm.routes.common import (
    Cursor,
    IdempotencyKeyHeader,
    Limit,
    create_once,
    crm_db,
    page,
)
from nexus.services.crm.schemas import (
    ActivityOut,
    CompanyDuplicateOut,
    CompanyIn,
    CompanyOut,
    CompanyPatch,
    MergeIn,
)

router = APIRouter(prefix="/companies", tags=["crm companies"])


MAX_IDS = 100


@router.get("", response_model=Page[CompanyOut], summary="List companies (newest first)")
async def list_companies(
    request: Request,
    owner_id: str | None = Query(None, max_length=36),
    domain: str | None = Query(None, max_length=253),
    industry: str | None = Query(None, max_length=100),
    ids: list[str] = Query(
        [],
        alias="id",
        max_length=MAX_IDS,
        description=f"Only these companies (repeat `id`, at most {MAX_IDS}).",
    ),
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("company", "read"),
) -> Page[CompanyOut]:
    """Custom fields filter with `cf.<key>=value` (`.gte` / `.lte` for numbers and dates)."""
    db = crm_db(request)
    org_id = acc.principal.org_id
    async with db.read(org_id=org_id) as session:
        stmt = select(Company).where(
            Company.org_id == org_id, Company.merged_into_id.is_(None), acc.where(Company)
        )
        if owner_id:
            stmt = stmt.where(Company.owner_id == owner_id)
        if ids:
            stmt = stmt.where(Company.id.in_(ids))
        if industry:
            stmt = stmt.where(Company.industry == industry)
        if domain:
            try:
                stmt = stmt.where(Company.domain == normalize.domain(domain))
            except normalize.InvalidValue:
                return Page[CompanyOut](items=[], next_cursor=None)
        fields = await custom_fields.definitions(session, org_id, "company")
        stmt = stmt.where(
            *custom_fields.filters(Company, fields, dict(request.query_params), db.dialect)
        )
        rows, next_cursor = await page(session, stmt, Company, cursor, limit)
    return Page[CompanyOut](
        items=[CompanyOut.model_validate(c) for c in rows], next_cursor=next_cursor
    )


@router.post("", response_model=CompanyOut, status_code=201, summary="Create a company")
async def create_company(
    body: CompanyIn,
    request: Request,
    response: Response,
    key: str | None = IdempotencyKeyHeader,
    acc: Access = access("company", "write"),
) -> CompanyOut:
    """The domain is normalized (`https://www.Acme.com/` is `acme.com`) and unique in the
    org: a second company with it is a 409 naming the first."""

    async def create(session: AsyncSession) -> Company:
        company = await companies.create(
            session, acc.principal.org_id, acc.principal.subject, body.model_dump()
        )
        acc.check_values(company)
        return company

    company = await create_once(crm_db(request), acc, Company, key, response, create)
    return CompanyOut.model_validate(company)


@router.get("/{company_id}", response_model=CompanyOut, summary="One company")
async def get_company(
    company_id: str, request: Request, acc: Access = access("company", "read")
) -> CompanyOut:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        return CompanyOut.model_validate(acc.check(await session.get(Company, company_id)))


@router.patch("/{company_id}", response_model=CompanyOut, summary="Change a company")
async def update_company(
    company_id: str, body: CompanyPatch, request: Request, acc: Access = access("company", "write")
) -> CompanyOut:
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        company = acc.check(await session.get(Company, company_id))
        await companies.update(session, company, body.model_dump(exclude_unset=True))
        acc.check_values(company)
    return CompanyOut.model_validate(company)


@router.delete("/{company_id}", status_code=204, summary="Delete a company")
async def delete_company(
    company_id: str, request: Request, acc: Access = access("company", "delete")
) -> Response:
    """Its contacts, deals and activities stay, without the company."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        company = acc.check(await session.get(Company, company_id))
        for model in (Contact, Deal, Activity):
            await session.execute(
                update(model).where(model.company_id == company.id).values(company_id=None)
            )
        await search.unindex(session, [company.id])
        await session.delete(company)
    return Response(status_code=204)


@router.get(
    "/{company_id}/timeline", response_model=Page[ActivityOut], summary="The company's timeline"
)
async def company_timeline(
    company_id: str,
    request: Request,
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("company", "read"),
) -> Page[ActivityOut]:
    """Activities on the company, its contacts and its deals, newest first."""
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        company = acc.check(await session.get(Company, company_id))
        rows, next_cursor = await page(
            session, activities.timeline(Activity.company_id, company.id), Activity, cursor, limit
        )
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(a) for a in rows], next_cursor=next_cursor
    )


@router.get(
    "/{company_id}/duplicates",
    response_model=list[CompanyDuplicateOut],
    summary="Companies that look like the same one",
)
async def company_duplicates(
    company_id: str, request: Request, acc: Access = access("company", "read")
) -> list[CompanyDuplicateOut]:
    """Same name (legal suffixes aside: "Acme Inc" and "ACME"), a name that sounds the
    same, or a domain with the same first label; only companies you may see."""
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        company = acc.check(await session.get(Company, company_id))
        found = await companies.duplicates(session, company)
    return [
        CompanyDuplicateOut(company=CompanyOut.model_validate(c), reasons=reasons)
        for c, reasons in found
        if acc.allows(c)
    ]


@router.post(
    "/{company_id}/merge", response_model=CompanyOut, summary="Merge another company into this one"
)
async def merge_company(
    company_id: str, body: MergeIn, request: Request, acc: Access = access("company", "write")
) -> CompanyOut:
    """Its contacts, deals and activities move here; empty fields (domain, industry, size)
    are filled from it. It remains as a pointer (`merged_into_id`). Needs write on both
    and delete on the other."""
    if body.other_id == company_id:
        raise BadRequest("A company cannot be merged into itself.")
    remover = Access(acc.principal, "company", "delete")
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        keep = acc.check(await session.get(Company, company_id))
        other = acc.check(await session.get(Company, body.other_id))
        remover.check(other)
        for record in (keep, other):
            if record.merged_into_id:
                raise BadRequest(f"Company {record.id} was already merged.", slug="already-merged")
        await companies.merge(session, keep, other, acc.principal.subject)
    return CompanyOut.model_validate(keep)
