"""CRM pages over CRM's API: the pipeline board (drag a card to move the deal, or pick
its stage from a list), moving a deal, and the forecast. Shared helpers for the other
CRM page modules (records, record pages) live here too."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.web import Ctx, HubRoute, env, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
PER_STAGE = 25  # cards per column; the column's count and totals stay exact
REFUSED = {400, 404, 409, 422}  # answers shown next to the form, with what was typed kept
COMPANY_PAGE = 100  # company ids a call (the most CRM's list takes)
FORM_NAMES = {"emails": "email", "phones": "phone", "contact_ids": "contact_id"}  # API -> form


# -- helpers shared by the CRM pages --------------------------------------------------------
def text(form: Any, name: str, limit: int = 300) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def amount(value: Any) -> str:
    """'12,500' from '12500.00' (cents only when there are some)."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.2f}"


def totals(per_currency: dict[str, Any]) -> str:
    """'12,500 USD · 900 EUR'; '0' for an empty column."""
    if not per_currency:
        return "0"
    return " · ".join(f"{amount(v)} {c}" for c, v in sorted(per_currency.items()))


env.filters.update(amount=amount, totals=totals)


async def owner_names(ctx: Ctx) -> dict[str, str]:
    """User id -> name, for owners on cards and in lists (only yourself without the right
    to read users)."""
    names = {ctx.row.user_id: ctx.row.name or ctx.row.email}
    if ctx.can("idaas:user:read"):
        try:
            users = await ctx.get("idaas", "/users", limit=500)
        except ApiError:
            return names
        names |= {u["id"]: u.get("name") or u["email"] for u in users["items"]}
    return names


async def records_of(ctx: Ctx, kind: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The `kind` records (companies, contacts) a page links to, by id; those the person
    may not read are left out."""

    async def one(record_id: str) -> dict[str, Any] | None:
        try:
            return await ctx.get("crm", f"/crm/{kind}/{record_id}")  # type: ignore[no-any-return]
        except ApiError:
            return None

    found = await asyncio.gather(*(one(i) for i in sorted(i for i in ids if i)))
    return {r["id"]: r for r in found if r}


async def names_of(ctx: Ctx, kind: str, ids: set[str]) -> dict[str, str]:
    return {i: r["name"] or "(no name)" for i, r in (await records_of(ctx, kind, ids)).items()}


async def company_names(ctx: Ctx, ids: set[str]) -> dict[str, str]:
    """Names of the companies on a board or list, `COMPANY_PAGE` ids a call (a company
    the person may not read shows no name)."""
    wanted = sorted(i for i in ids if i)
    if not wanted or not ctx.can("crm:company:read"):
        return {}
    chunks = [wanted[i : i + COMPANY_PAGE] for i in range(0, len(wanted), COMPANY_PAGE)]
    pages = await asyncio.gather(
        *(ctx.get("crm", "/crm/companies", id=chunk, limit=len(chunk)) for chunk in chunks)
    )
    return {c["id"]: c["name"] for page in pages for c in page["items"]}


async def custom_fields(ctx: Ctx, object_type: str) -> list[dict[str, Any]]:
    """The org's custom field definitions for a record type (none without the right)."""
    if not ctx.can("crm:field:read"):
        return []
    try:
        return await ctx.get("crm", "/crm/custom-fields", object_type=object_type)  # type: ignore[no-any-return]
    except ApiError:
        return []


def custom_values(form: Any, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """`cf.<key>` inputs as the API takes them (the API validates and converts)."""
    out: dict[str, Any] = {}
    for f in fields:
        name = f"cf.{f['key']}"
        if f["type"] == "multi_select":
            chosen = [v for v in form.getlist(name) if isinstance(v, str) and v]
            if chosen:
                out[f["key"]] = chosen
        elif f["type"] == "boolean":
            if form.get(name) == "on":
                out[f["key"]] = True
        elif value := text(form, name, 10_000):
            out[f["key"]] = value
    return out


def field_errors(exc: ApiError) -> dict[str, str]:
    """Form field name -> the API's message (`custom.tier` -> `cf.tier`, `emails.0` ->
    `email`), so the message shows next to the input that caused it."""
    out: dict[str, str] = {}
    for error in exc.errors:
        parts = [p for p in error["field"].split(".") if p and not p.isdigit()]
        if not parts:
            continue
        name = f"cf.{parts[1]}" if parts[0] == "custom" and len(parts) > 1 else parts[0]
        name = FORM_NAMES.get(name, name)
        out.setdefault(name, error["message"])
    return out


@dataclass
class Refused:
    """A form shown again after the API said no: its reason, per field, what was typed."""

    error: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: ApiError, values: dict[str, Any] | None = None) -> Refused:
        return cls(exc.detail, field_errors(exc), values or {})


async def post_once(ctx: Ctx, path: str, body: dict[str, Any], key: str) -> Any:
    """POST to the CRM with the form's idempotency key: a form sent twice (a double click,
    a retry) creates one record."""
    headers = {"Idempotency-Key": f"hub:{ctx.row.user_id}:{key[:64]}"}
    return await ctx.call("crm", "POST", path, json=body, headers=headers)


def safe_back(value: str, default: str) -> str:
    """A page of the CRM to return to (never another site)."""
    return value if value.startswith("/crm/") and not value.startswith("//") else default


async def pipelines_of(ctx: Ctx) -> list[dict[str, Any]]:
    return await ctx.get("crm", "/crm/pipelines")  # type: ignore[no-any-return]


def chosen_pipeline(pipelines: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    by_id = {p["id"]: p for p in pipelines}
    if wanted and wanted in by_id:
        return by_id[wanted]
    return next((p for p in pipelines if p["is_default"]), pipelines[0])


def owner_param(ctx: Ctx, value: str) -> str | None:
    """The owner filter: `me`, a user id, or everyone (empty)."""
    return ctx.row.user_id if value == "me" else (value[:36] or None)


# -- the board -----------------------------------------------------------------------------
@router.get("/crm/board")
async def board(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await board_page(request, ctx)


async def board_page(request: Request, ctx: Ctx, *, error: str = "") -> Response:
    owner = (request.query_params.get("owner") or "").strip()[:36]
    pipelines, people = await asyncio.gather(pipelines_of(ctx), owner_names(ctx))
    pipeline = chosen_pipeline(pipelines, request.query_params.get("pipeline"))
    data = await ctx.get(
        "crm",
        f"/crm/pipelines/{pipeline['id']}/board",
        per_stage=PER_STAGE,
        owner_id=owner_param(ctx, owner),
    )
    cards = [d for column in data["stages"] for d in column["deals"]]
    companies = await company_names(ctx, {d["company_id"] or "" for d in cards})
    return render(
        request,
        "crm/board.html",
        ctx,
        pipelines=pipelines,
        pipeline=pipeline,
        columns=data["stages"],
        owner=owner,
        owners=people,
        companies=companies,
        error=error,
        more=lambda stage_id: (
            "/crm/deals?"
            + urlencode(
                {
                    "pipeline_id": pipeline["id"],
                    "stage_id": stage_id,
                    "status": "open",
                    **({"owner": owner} if owner else {}),
                }
            )
        ),
    )


# -- the forecast --------------------------------------------------------------------------
def _date(value: str | None) -> str | None:
    try:
        return dt.date.fromisoformat(value).isoformat() if value else None
    except ValueError:
        return None


@router.get("/crm/forecast")
async def forecast(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    q = request.query_params
    filters = {
        "from": _date(q.get("from")),
        "to": _date(q.get("to")),
        "grain": q.get("grain") if q.get("grain") in {"month", "quarter"} else "month",
        "pipeline_id": (q.get("pipeline") or "")[:36] or None,
        "owner": (q.get("owner") or "")[:36],
    }
    pipelines, people = await asyncio.gather(pipelines_of(ctx), owner_names(ctx))
    error = ""
    try:
        data = await ctx.get(
            "crm",
            "/crm/forecast",
            **{k: v for k, v in filters.items() if k != "owner"},
            owner_id=owner_param(ctx, filters["owner"]),
        )
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        error, data = exc.detail, None
    return render(
        request,
        "crm/forecast.html",
        ctx,
        f=filters,
        data=data,
        error=error,
        pipelines=pipelines,
        owners=people,
    )
