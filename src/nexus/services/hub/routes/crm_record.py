"""A deal's, a contact's and a company's page over CRM's API: fields (custom ones too),
related records, the timeline (activities, stage changes, messages sent and received,
newest first, followed live while a message is on its way or awaiting a reply), and what
can be done there: log a note, task or call, complete a task, move or close the deal,
text the contact through VAS, merge a duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.crm import (
    REFUSED,
    Refused,
    board_page,
    custom_fields,
    names_of,
    owner_names,
    owner_param,
    pipelines_of,
    records_of,
    safe_back,
    text,
    totals,
)
from nexus.services.hub.routes.messaging import FINAL
from nexus.services.hub.web import (
    SECURITY_HEADERS,
    Ctx,
    HubRoute,
    redirect,
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


def _not_found(request: Request, ctx: Ctx) -> Response:
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
        return _not_found(request, ctx)
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


# -- actions -------------------------------------------------------------------------------
def _wants_json(request: Request) -> bool:
    return "application/json" in (request.headers.get("accept") or "")


@router.post("/crm/deals/{deal_id}/stage")
async def move_deal(deal_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    """Move a deal to another stage: from a dragged card (the board's script, answered in
    JSON with the columns' new counts and totals), or from a stage list (a form)."""
    form = await request.form()
    back = safe_back(text(form, "back", 500), f"/crm/deals/{deal_id}")
    change = {"stage_id": text(form, "stage_id", 36)}
    try:
        moved = await ctx.call("crm", "PATCH", f"/crm/deals/{deal_id}", json=change)
    except ApiError as exc:
        if _wants_json(request):
            return JSONResponse({"ok": False, "error": exc.detail}, headers=SECURITY_HEADERS)
        if exc.status not in REFUSED:
            raise
        if back.startswith("/crm/board"):
            return await board_page(request, ctx, error=exc.detail)
        return await deal_page(deal_id, request, ctx, Refused(exc.detail))
    if not _wants_json(request):
        return redirect(back, request)
    summary = await ctx.get(
        "crm",
        f"/crm/pipelines/{moved['pipeline_id']}/board",
        per_stage=0,
        owner_id=owner_param(ctx, text(form, "owner", 36)),
    )
    columns = {
        c["stage"]["id"]: {"count": c["count"], "total": totals(c["amount"])}
        for c in summary["stages"]
    }
    return JSONResponse({"ok": True, "columns": columns}, headers=SECURITY_HEADERS)


@router.post("/crm/deals/{deal_id}/status")
async def close_deal(deal_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    """Won, lost (with the reason) or open again."""
    form = await request.form()
    change = {"status": text(form, "status", 10)}
    if change["status"] == "lost":
        change["lost_reason"] = text(form, "lost_reason", 500) or None  # type: ignore[assignment]
    try:
        await ctx.call("crm", "PATCH", f"/crm/deals/{deal_id}", json=change)
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await deal_page(deal_id, request, ctx, Refused.of(exc, change))
    return redirect(f"/crm/deals/{deal_id}", request)


@router.post("/crm/{kind}/{record_id}/activities")
async def log_activity(
    kind: str, record_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    """A note, a task (with a due time) or a call on the record's timeline."""
    if kind not in SINGULAR:
        return _not_found(request, ctx)
    form = await request.form()
    values = {n: text(form, n, 20_000) for n in ("kind", "subject", "body", "due_at", "key")}
    body: dict[str, Any] = {
        "kind": values["kind"] if values["kind"] in ACTIVITY_KINDS else "note",
        f"{SINGULAR[kind]}_id": record_id,
        "subject": values["subject"] or None,
        "body": values["body"] or None,
    }
    if values["due_at"] and body["kind"] == "task":  # datetime-local: no zone, UTC
        body["due_at"] = values["due_at"] + (":00+00:00" if len(values["due_at"]) <= 16 else "")
    try:
        await ctx.call(
            "crm",
            "POST",
            "/crm/activities",
            json=body,
            headers={"Idempotency-Key": f"hub:{ctx.row.user_id}:{values['key'][:64]}"},
        )
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await PAGES[kind](record_id, request, ctx, Refused.of(exc, values))
    return redirect(f"/crm/{kind}/{record_id}?done=logged", request)


@router.post("/crm/activities/{activity_id}/done")
async def complete_task(
    activity_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    form = await request.form()
    back = safe_back(text(form, "back", 500), "/crm/board")
    await ctx.call("crm", "PATCH", f"/crm/activities/{activity_id}", json={"done": True})
    return redirect(back, request)


@router.post("/crm/contacts/{contact_id}/messages")
async def message_contact(
    contact_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    """Text, WhatsApp or e-mail the contact through VAS; from a deal it is on the deal's
    timeline too."""
    form = await request.form()
    values = {n: text(form, n, 100_000) for n in ("channel", "body", "subject", "deal_id", "key")}
    deal_id = values["deal_id"][:36]
    body: dict[str, Any] = {
        "channel": values["channel"] if values["channel"] in CHANNELS else "sms",
        "body": values["body"],
        "subject": values["subject"] or None,
        "deal_id": deal_id or None,
    }
    try:
        await ctx.call(
            "crm",
            "POST",
            f"/crm/contacts/{contact_id}/messages",
            json=body,
            headers={"Idempotency-Key": f"hub:{ctx.row.user_id}:{values['key'][:64]}"},
        )
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        if deal_id:
            return await deal_page(deal_id, request, ctx, Refused.of(exc, values))
        return await contact_page(contact_id, request, ctx, Refused.of(exc, values))
    back = f"/crm/deals/{deal_id}" if deal_id else f"/crm/contacts/{contact_id}"
    return redirect(f"{back}?done=sent#timeline", request)


@router.post("/crm/contacts/{contact_id}/merge")
async def merge_contact(
    contact_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    """Merge a duplicate into this contact (both histories kept)."""
    form = await request.form()
    other = text(form, "other_id", 36)
    try:
        await ctx.post("crm", f"/crm/contacts/{contact_id}/merge", {"other_id": other})
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await contact_page(contact_id, request, ctx, Refused(exc.detail))
    return redirect(f"/crm/contacts/{contact_id}?done=merged", request)
