"""What can be done on the CRM's pages, over CRM's API: move a deal (a dragged card,
answered in JSON, or a stage list), close or reopen it, log a note, task or call,
complete a task, text a contact through VAS, merge a duplicate. A refusal is shown on
the page it came from, with the API's reason and what was typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.crm import (
    REFUSED,
    Refused,
    board_page,
    owner_param,
    post_once,
    safe_back,
    text,
    totals,
)
from nexus.services.hub.routes.crm_record import (
    ACTIVITY_KINDS,
    CHANNELS,
    PAGES,
    SINGULAR,
    contact_page,
    deal_page,
    not_found,
)
from nexus.services.hub.web import SECURITY_HEADERS, Ctx, HubRoute, redirect, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)


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
        return not_found(request, ctx)
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
        await post_once(ctx, "/crm/activities", body, values["key"])
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
        await post_once(ctx, f"/crm/contacts/{contact_id}/messages", body, values["key"])
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
