"""CRM lists over CRM's API: contacts, companies and deals with search, filters, cursor
pagination and a create form (the API's reasons shown next to the fields, what was typed
kept)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.crm import (
    REFUSED,
    Refused,
    company_names,
    custom_fields,
    custom_values,
    names_of,
    owner_names,
    owner_param,
    pipelines_of,
    post_once,
    text,
)
from nexus.services.hub.web import Ctx, HubRoute, redirect, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
PAGE_SIZE = 50
CHOICES = 100  # companies / contacts offered in a create form's list
LIFECYCLE = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other")
STATUSES = ("open", "won", "lost")


@dataclass(frozen=True)
class Kind:
    path: str  # contacts | companies | deals
    singular: str
    filters: tuple[str, ...]  # query parameters passed to the API as they are
    inputs: tuple[str, ...]  # the create form's fields


KINDS = {
    "contacts": Kind(
        "contacts",
        "contact",
        ("lifecycle_stage", "tag", "company_id"),
        (
            "first_name",
            "last_name",
            "email",
            "phone",
            "company_id",
            "lifecycle_stage",
            "lead_source",
            "tags",
        ),
    ),
    "companies": Kind(
        "companies", "company", ("industry",), ("name", "domain", "industry", "size")
    ),
    "deals": Kind(
        "deals",
        "deal",
        ("pipeline_id", "stage_id", "status", "company_id", "contact_id"),
        (
            "name",
            "amount",
            "currency",
            "stage_id",
            "company_id",
            "contact_id",
            "expected_close",
        ),
    ),
}


def _filters(request: Request, kind: Kind) -> dict[str, str]:
    q = request.query_params
    out = {n: (q.get(n) or "").strip()[:200] for n in ("q", "owner", *kind.filters)}
    return {k: v for k, v in out.items() if v}


async def _rows(ctx: Ctx, kind: Kind, filters: dict[str, str], cursor: str | None) -> Any:
    """A page of records, or of search hits when something was typed in the search box."""
    if filters.get("q"):
        return await ctx.get(
            "crm", "/crm/search", q=filters["q"], type=kind.singular, cursor=cursor, limit=PAGE_SIZE
        )
    params = {k: v for k, v in filters.items() if k in kind.filters}
    return await ctx.get(
        "crm",
        f"/crm/{kind.path}",
        **params,
        owner_id=owner_param(ctx, filters.get("owner", "")),
        cursor=cursor,
        limit=PAGE_SIZE,
    )


async def _choices(ctx: Ctx, path: str, permission: str, chosen: str) -> list[dict[str, Any]]:
    """The newest records to link a new one to (and the one already chosen)."""
    if not ctx.can(permission):
        return []
    try:
        items: list[dict[str, Any]] = (await ctx.get("crm", f"/crm/{path}", limit=CHOICES))["items"]
    except ApiError:
        return []
    if chosen and all(i["id"] != chosen for i in items):
        extra = await names_of(ctx, path, {chosen})
        items = [{"id": i, "name": n} for i, n in extra.items()] + items
    return items


async def list_page(
    request: Request,
    ctx: Ctx,
    name: str,
    refused: Refused | None = None,
) -> Response:
    kind = KINDS[name]
    filters = _filters(request, kind)
    cursor = request.query_params.get("cursor") or None
    refused = refused or Refused(values={k: request.query_params.get(k, "") for k in kind.inputs})
    values = refused.values
    page, people, fields, pipelines, companies, contacts = await asyncio.gather(
        _rows(ctx, kind, filters, cursor),
        owner_names(ctx),
        custom_fields(ctx, kind.singular),
        pipelines_of(ctx) if name == "deals" else asyncio.sleep(0, []),
        _choices(ctx, "companies", "crm:company:read", values.get("company_id", ""))
        if name != "companies"
        else asyncio.sleep(0, []),
        _choices(ctx, "contacts", "crm:contact:read", values.get("contact_id", ""))
        if name == "deals"
        else asyncio.sleep(0, []),
    )
    items = page["items"]
    linked = await company_names(
        ctx, {i.get("company_id") or "" for i in items} - {c["id"] for c in companies}
    )
    next_url = (
        f"/crm/{name}?" + urlencode({**filters, "cursor": page["next_cursor"]})
        if page["next_cursor"]
        else None
    )
    return render(
        request,
        f"crm/{name}.html",
        ctx,
        items=items,
        searched=bool(filters.get("q")),
        fuzzy=page.get("match") == "fuzzy",
        filters=filters,
        next_url=next_url,
        paged=bool(cursor),
        owners=people,
        fields=fields,
        pipelines=pipelines,
        stages={s["id"]: s["name"] for p in pipelines for s in p["stages"]},
        companies=companies,
        company_names={c["id"]: c["name"] for c in companies} | linked,
        contacts=contacts,
        lifecycle=LIFECYCLE,
        statuses=STATUSES,
        error=refused.error,
        errors=refused.errors,
        values=values,
        key=values.get("key") or secrets.token_urlsafe(16),
        flash="Saved." if request.query_params.get("done") else None,
    )


def _body(name: str, values: dict[str, Any], pipelines: list[dict[str, Any]]) -> dict[str, Any]:
    """What the create form's fields mean to the API."""
    v = values
    if name == "contacts":
        return {
            "first_name": v["first_name"] or None,
            "last_name": v["last_name"] or None,
            "emails": [v["email"]] if v["email"] else [],
            "phones": [v["phone"]] if v["phone"] else [],
            "company_id": v["company_id"] or None,
            "lifecycle_stage": v["lifecycle_stage"] or "lead",
            "lead_source": v["lead_source"] or None,
            "tags": [t.strip() for t in v["tags"].split(",") if t.strip()],
        }
    if name == "companies":
        return {
            "name": v["name"],
            "domain": v["domain"] or None,
            "industry": v["industry"] or None,
            "size": v["size"] or None,
        }
    pipeline_of = {s["id"]: p["id"] for p in pipelines for s in p["stages"]}
    return {
        "name": v["name"],
        "amount": v["amount"] or "0",
        "currency": (v["currency"] or "USD").upper(),
        "stage_id": v["stage_id"] or None,
        "pipeline_id": pipeline_of.get(v["stage_id"]),
        "company_id": v["company_id"] or None,
        "contact_ids": [v["contact_id"]] if v["contact_id"] else [],
        "expected_close": v["expected_close"] or None,
    }


async def create(request: Request, ctx: Ctx, name: str) -> Response:
    kind = KINDS[name]
    form = await request.form()
    values: dict[str, Any] = {n: text(form, n) for n in (*kind.inputs, "key")}
    fields = await custom_fields(ctx, kind.singular)
    pipelines = await pipelines_of(ctx) if name == "deals" else []
    body = _body(name, values, pipelines)
    custom = custom_values(form, fields)
    if custom:
        body["custom"] = custom
    values["custom"] = custom
    try:
        record = await post_once(ctx, f"/crm/{name}", body, values["key"])
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await list_page(request, ctx, name, Refused.of(exc, values))
    return redirect(f"/crm/{name}/{record['id']}?done=created", request)


@router.get("/crm/contacts")
async def contacts(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await list_page(request, ctx, "contacts")


@router.post("/crm/contacts")
async def create_contact(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await create(request, ctx, "contacts")


@router.get("/crm/companies")
async def companies(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await list_page(request, ctx, "companies")


@router.post("/crm/companies")
async def create_company(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await create(request, ctx, "companies")


@router.get("/crm/deals")
async def deals(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await list_page(request, ctx, "deals")


@router.post("/crm/deals")
async def create_deal(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await create(request, ctx, "deals")
