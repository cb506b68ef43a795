"""A deal's, a contact's and a company's page over CRM's API: fields (custom ones too),
related records, the lead score, duplicates, and the timeline (activities, stage
changes, messages sent and received, newest first, followed live while a message is on
its way or awaiting a reply). What the pages' forms do is in `crm_actions`."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.crm import (
    Refused,
    custom_fields,
    names_of,
    owner_names,
    pipelines_of,
    records_of,
)
from nexus.services.hub.routes.messaging import FINAL
from nexus.services.hub.web import (
    Ctx,
    HubRoute,
    render,
    signed_in,
)

router = APIRouter(route_class=HubRoute, include_in_schema=False)
TIMELINE_SIZE = 50
AWAIT_REPLY = dt.timedelta(minutes=2)  # the timeline keeps looking for an answer this long
ACTIVITY_KINDS = ("note", "task", "call")
CHANNELS = ("sms", "whatsapp", "email")
SINGULAR = {"deals": "deal", "contacts": "contact", "companies": "company"}
DONE = {
    "created": "Saved.",
    "logged": "Added to the timeline.",
    "sent": "Message accepted. The timeline follows it until it is delivered and shows the reply.",
    "merged": "Merged: both histories are on this contact now.",
}


def not_found(request: Request, ctx: Ctx) -> Response:
    return render(request, "error.html", ctx, status=404, status_code=404, message="No such page.")


# -- the timeline --------------------------------------------------------------------------
def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _live(activities: list[dict[str, Any]]) -> bool:
    """Poll while a sent message is not final, or a reply may still come soon."""
    messages = [a for a in activities if a["kind"] == "message"]
    if any(a["direction"] == "outbound" and a["status"] not in FINAL for a in messages):
        return True
    latest = messages[0] if messages else None
    return bool(
        latest
        and latest["direction"] == "outbound"
        and dt.datetime.now(dt.UTC) - _at(latest["occurred_at"]) < AWAIT_REPLY
    )


async def _timeline(ctx: Ctx, kind: str, record_id: str) -> dict[str, Any]:
    """The record's activities (and a deal's stage changes), newest first."""
    page = await ctx.get("crm", f"/crm/{kind}/{record_id}/timeline", limit=TIMELINE_SIZE)
    entries = [{"type": "activity", "at": _at(a["occurred_at"]), "a": a} for a in page["items"]]
    if kind == "deals":
        history, pipelines = await asyncio.gather(
            ctx.get("crm", f"/crm/deals/{record_id}/history"), pipelines_of(ctx)
        )
        stages = {s["id"]: s["name"] for p in pipelines for s in p["stages"]}
        entries += [
            {"type": "stage", "at": _at(h["at"]), "h": h, "stages": stages} for h in history
        ]
    entries.sort(key=lambda e: e["at"], reverse=True)
    return {
        "entries": entries,
        "live": _live(page["items"]),
        "more": bool(page["next_cursor"]),
        "timeline_url": f"/crm/{kind}/{record_id}/timeline",
        "record_url": f"/crm/{kind}/{record_id}",
    }


@router.get("/crm/{kind}/{record_id}/timeline")
async def timeline(
    kind: str, record_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    """The timeline alone, polled by the page while a message is under way."""
    if kind not in SINGULAR:
        return not_found(request, ctx)
    line, people = await asyncio.gather(_timeline(ctx, kind, record_id), owner_names(ctx))
    return render(request, "crm/_timeline.html", ctx, owners=people, **line)


# -- the pages -----------------------------------------------------------------------------
def _form_state(refused: Refused | None, request: Request) -> dict[str, Any]:
    refused = refused or Refused()
    refused.values.setdefault("key", secrets.token_urlsafe(16))
    return {
        "error": refused.error,
        "errors": refused.errors,
        "values": refused.values,
        "flash": DONE.get(request.query_params.get("done", "")),
        "back": request.url.path,
    }


async def _score(ctx: Ctx, contact_id: str | None) -> dict[str, Any] | None:
    if not contact_id:
        return None
    try:
        return await ctx.get("crm", f"/crm/contacts/{contact_id}/score")  # type: ignore[no-any-return]
    except ApiError:
        return None


async def deal_page(
    deal_id: str,
    request: Request,
    ctx: Ctx,
    refused: Refused | None = None,
) -> Response:
    deal = await ctx.get("crm", f"/crm/deals/{deal_id}")
    contact_id = deal["contact_ids"][0] if deal["contact_ids"] else None
    pipelines, people, fields, line, companies, contacts, score = await asyncio.gather(
        pipelines_of(ctx),
        owner_names(ctx),
        custom_fields(ctx, "deal"),
        _timeline(ctx, "deals", deal_id),
        names_of(ctx, "companies", {deal["company_id"] or ""}),
        records_of(ctx, "contacts", set(deal["contact_ids"])),
        _score(ctx, contact_id),
    )
    pipeline = next(p for p in pipelines if p["id"] == deal["pipeline_id"])
    return render(
        request,
        "crm/deal.html",
        ctx,
        d=deal,
        pipeline=pipeline,
        stage={s["id"]: s["name"] for s in pipeline["stages"]}.get(deal["stage_id"], "\u2013"),
        owners=people,
        fields=fields,
        company=companies.get(deal["company_id"] or ""),
        contacts=contacts,
        score=score,
        channels=CHANNELS,
        kinds=ACTIVITY_KINDS,
        **line,
        **_form_state(refused, request),
    )


async def _list(ctx: Ctx, path: str, permission: str, **params: Any) -> list[dict[str, Any]]:
    if not ctx.can(permission):
        return []
    return (await ctx.get("crm", path, limit=TIMELINE_SIZE, **params))["items"]  # type: ignore[no-any-return]


async def _duplicates(ctx: Ctx, contact_id: str) -> list[dict[str, Any]]:
    try:
        return await ctx.get("crm", f"/crm/contacts/{contact_id}/duplicates")  # type: ignore[no-any-return]
    except ApiError:
        return []


async def contact_page(
    contact_id: str,
    request: Request,
    ctx: Ctx,
    refused: Refused | None = None,
) -> Response:
    contact = await ctx.get("crm", f"/crm/contacts/{contact_id}")
    people, fields, line, companies, deals, duplicates, score, pipelines = await asyncio.gather(
        owner_names(ctx),
        custom_fields(ctx, "contact"),
        _timeline(ctx, "contacts", contact_id),
        names_of(ctx, "companies", {contact["company_id"] or ""}),
        _list(ctx, "/crm/deals", "crm:deal:read", contact_id=contact_id),
        _duplicates(ctx, contact_id),
        _score(ctx, contact_id),
        pipelines_of(ctx) if ctx.can("crm:deal:read") else asyncio.sleep(0, []),
    )
    return render(
        request,
        "crm/contact.html",
        ctx,
        c=contact,
        owners=people,
        fields=fields,
        company=companies.get(contact["company_id"] or ""),
        deals=deals,
        stages={s["id"]: s["name"] for p in pipelines for s in p["stages"]},
        duplicates=duplicates,
        score=score,
        channels=CHANNELS,
        kinds=ACTIVITY_KINDS,
        **line,
        **_form_state(refused, request),
    )


async def company_page(
    company_id: str,
    request: Request,
    ctx: Ctx,
    refused: Refused | None = None,
) -> Response:
    company = await ctx.get("crm", f"/crm/companies/{company_id}")
    people, fields, line, contacts, deals, pipelines = await asyncio.gather(
        owner_names(ctx),
        custom_fields(ctx, "company"),
        _timeline(ctx, "companies", company_id),
        _list(ctx, "/crm/contacts", "crm:contact:read", company_id=company_id),
        _list(ctx, "/crm/deals", "crm:deal:read", company_id=company_id),
        pipelines_of(ctx) if ctx.can("crm:deal:read") else asyncio.sleep(0, []),
    )
    return render(
        request,
        "crm/company.html",
        ctx,
        co=company,
        owners=people,
        fields=fields,
        contacts=contacts,
        deals=deals,
        stages={s["id"]: s["name"] for p in pipelines for s in p["stages"]},
        kinds=ACTIVITY_KINDS,
        **line,
        **_form_state(refused, request),
    )


PAGES = {"deals": deal_page, "contacts": contact_page, "companies": company_page}


@router.get("/crm/deals/{record_id}")
async def deal(record_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await deal_page(record_id, request, ctx)


@router.get("/crm/contacts/{record_id}")
async def contact(record_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await contact_page(record_id, request, ctx)


@router.get("/crm/companies/{record_id}")
async def company(record_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await company_page(record_id, request, ctx)
