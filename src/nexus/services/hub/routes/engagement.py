"""Engagement pages over VAS's API: contacts (with CSV import, its progress bar and
per-row errors), templates with a preview, and campaigns with live progress and A/B
results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from nexus.kernel.http import large_body
from nexus.services.hub import api, sessions
from nexus.services.hub.api import ApiError
from nexus.services.hub.web import Ctx, HubRoute, form_errors, redirect, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
CHANNELS = ("sms", "whatsapp", "telegram", "messenger", "email")
FINAL_IMPORT = {"completed", "failed", "canceled"}
LIVE_CAMPAIGN = {"scheduled", "running", "sending", "pausing"}
MAX_UPLOAD = 2 * 1024**3
DONE = {
    "contact-created": "The contact is added.",
    "template-created": "The template is saved.",
    "campaign-created": "The campaign is saved as a draft. Start it when ready.",
}


def _text(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()][:50]


# -- contacts ------------------------------------------------------------------------------
@router.get("/contacts")
async def contacts(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _contacts(request, ctx)


async def _contacts(
    request: Request,
    ctx: Ctx,
    *,
    error: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    q = (request.query_params.get("q") or "").strip()[:200]
    tag = (request.query_params.get("tag") or "").strip()[:100]
    cursor = request.query_params.get("cursor") or None
    page, imports = await asyncio.gather(
        ctx.get("vas", "/contacts", q=q, tag=tag, cursor=cursor, limit=50),
        ctx.get("vas", "/contacts/imports", limit=5),
    )
    filters = {k: v for k, v in (("q", q), ("tag", tag)) if v}
    return render(
        request,
        "engagement/contacts.html",
        ctx,
        contacts=page["items"],
        imports=imports["items"],
        filters=filters,
        next_url="/contacts?" + urlencode({**filters, "cursor": page["next_cursor"]})
        if page["next_cursor"]
        else None,
        error=error,
        errors=errors or {},
        values=values or {},
        flash=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/contacts")
async def create_contact(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values = {n: _text(form, n, 320) for n in ("name", "phone", "email", "tags")}
    addresses = {k: values[k] for k in ("phone", "email") if values[k]}
    body: dict[str, Any] = {"name": values["name"] or None, "addresses": addresses}
    if values["tags"]:
        body["tags"] = _tags(values["tags"])
    try:
        await ctx.post("vas", "/contacts", body)
    except ApiError as exc:
        if exc.status not in {400, 409, 422}:
            raise
        return await _contacts(
            request, ctx, error=exc.detail, errors=form_errors(exc), values=values
        )
    return redirect("/contacts?done=contact-created", request)


@router.post("/contacts/import")
@large_body(MAX_UPLOAD)
async def import_contacts(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return await _contacts(request, ctx, error="Choose a CSV file to import.")
    params: dict[str, Any] = {"filename": upload.filename[:300]}
    tags = _tags(_text(form, "tags", 500))
    if tags:
        params["tags"] = ",".join(tags)
    if form.get("dry_run") == "on":
        params["dry_run"] = "true"

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(256 * 1024):
            yield chunk

    token = await sessions.access_token(request, ctx.row)
    answer = await api.call(
        request,
        "vas",
        "POST",
        "/contacts/import",
        token=token,
        params=params,
        content=chunks(),
        headers={"content-type": "text/csv"},
    )
    if answer.status_code >= 400:
        return await _contacts(request, ctx, error=ApiError.of("vas", answer).detail)
    return redirect(f"/contacts/imports/{answer.json()['id']}", request)


@router.get("/contacts/imports/{import_id}")
async def import_progress(
    import_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    status = await ctx.get("vas", f"/contacts/imports/{import_id}")
    values = {"imp": status, "final": FINAL_IMPORT, "fraction": _fraction(status)}
    if request.headers.get("hx-request") == "true":
        return render(request, "engagement/_import.html", ctx, **values)
    return render(request, "engagement/import.html", ctx, **values)


def _fraction(status: dict[str, Any]) -> float:
    if status["status"] in FINAL_IMPORT:
        return 1.0
    total = status["total_bytes"] or 0
    return min(1.0, status["byte_offset"] / total) if total else 0.0


@router.get("/contacts/imports/{import_id}/errors.csv")
async def import_errors(
    import_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    token = await sessions.access_token(request, ctx.row)
    answer = await api.call(
        request, "vas", "GET", f"/contacts/imports/{import_id}/errors", token=token
    )
    if answer.status_code >= 400:
        raise ApiError.of("vas", answer)

    async def body() -> AsyncIterator[bytes]:
        yield answer.content

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )


# -- templates -----------------------------------------------------------------------------
@router.get("/templates")
async def templates(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _templates(request, ctx)


async def _templates(
    request: Request, ctx: Ctx, *, error: str = "", values: dict[str, str] | None = None
) -> Response:
    page = await ctx.get("vas", "/templates", limit=100)
    return render(
        request,
        "engagement/templates.html",
        ctx,
        templates=page["items"],
        channels=CHANNELS,
        error=error,
        values=values or {"channel": "sms"},
        flash=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/templates")
async def create_template(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values = {
        "name": _text(form, "name", 200),
        "channel": _text(form, "channel", 20) or "sms",
        "subject": _text(form, "subject", 1000),
        "body": _text(form, "body", 20_000),
    }
    body = {k: v for k, v in values.items() if v or k == "body"}
    try:
        await ctx.post("vas", "/templates", body)
    except ApiError as exc:
        if exc.status not in {400, 409, 422}:
            raise
        return await _templates(request, ctx, error=exc.detail, values=values)
    return redirect("/templates?done=template-created", request)


@router.get("/templates/{template_id}")
async def template(template_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    item = await ctx.get("vas", f"/templates/{template_id}")
    preview = await ctx.post("vas", f"/templates/{template_id}/preview", {"variables": {}})
    return render(request, "engagement/template.html", ctx, t=item, preview=preview)


@router.post("/templates/{template_id}/preview")
async def template_preview(
    template_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    form = await request.form()
    variables = {
        key[4:]: value[:1000]
        for key, value in form.items()
        if key.startswith("var:") and isinstance(value, str) and value
    }
    contact_id = _text(form, "contact_id", 64) or None
    body: dict[str, Any] = {"variables": variables}
    if contact_id:
        body["contact_id"] = contact_id
    preview = await ctx.post("vas", f"/templates/{template_id}/preview", body)
    return render(request, "engagement/_template_preview.html", ctx, preview=preview)


# -- campaigns -----------------------------------------------------------------------------
@router.get("/campaigns")
async def campaigns(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _campaigns(request, ctx)


async def _campaigns(
    request: Request, ctx: Ctx, *, error: str = "", values: dict[str, Any] | None = None
) -> Response:
    page, tpl = await asyncio.gather(
        ctx.get("vas", "/campaigns", limit=100),
        ctx.get("vas", "/templates", limit=100),
    )
    return render(
        request,
        "engagement/campaigns.html",
        ctx,
        campaigns=page["items"],
        templates=tpl["items"],
        channels=CHANNELS,
        error=error,
        values=values or {"channel": "sms", "percent_a": "50"},
        flash=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/campaigns")
async def create_campaign(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values = {
        n: _text(form, n, 200)
        for n in ("name", "channel", "tags", "everyone", "template_a", "template_b", "percent_a")
    }
    variants = [{"name": "A", "template_id": values["template_a"], "percent": 100.0}]
    if values["template_b"]:
        try:
            share = min(99.0, max(1.0, float(values["percent_a"] or 50)))
        except ValueError:
            return await _campaigns(
                request, ctx, error="The split is a percentage, like 50.", values=values
            )
        variants = [
            {"name": "A", "template_id": values["template_a"], "percent": share},
            {"name": "B", "template_id": values["template_b"], "percent": 100.0 - share},
        ]
    audience: dict[str, Any] = (
        {"everyone": True} if values["everyone"] == "on" else {"tags": _tags(values["tags"])}
    )
    body = {
        "name": values["name"],
        "channel": values["channel"] or "sms",
        "audience": audience,
        "variants": variants,
    }
    try:
        created = await ctx.post("vas", "/campaigns", body)
    except ApiError as exc:
        if exc.status not in {400, 409, 422}:
            raise
        return await _campaigns(request, ctx, error=exc.detail, values=values)
    return redirect(f"/campaigns/{created['id']}?done=campaign-created", request)


@router.get("/campaigns/{campaign_id}")
async def campaign(campaign_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    item, stats = await asyncio.gather(
        ctx.get("vas", f"/campaigns/{campaign_id}"),
        ctx.get("vas", f"/campaigns/{campaign_id}/stats"),
    )
    values = {"c": item, "stats": stats, "live": item["status"] in LIVE_CAMPAIGN}
    if request.headers.get("hx-request") == "true":
        return render(request, "engagement/_campaign.html", ctx, **values)
    return render(
        request,
        "engagement/campaign.html",
        ctx,
        flash=DONE.get(request.query_params.get("done", "")),
        **values,
    )


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: str, action: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    if action not in {"start", "pause", "resume", "cancel"}:
        return render(
            request, "error.html", ctx, status=404, status_code=404, message="No such action."
        )
    await ctx.post("vas", f"/campaigns/{campaign_id}/{action}")
    return redirect(f"/campaigns/{campaign_id}", request)
