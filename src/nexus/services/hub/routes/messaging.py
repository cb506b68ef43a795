"""Messaging pages over VAS's API: compose with a live preview, the message log with live
status, a message's history with its routing decisions; the provider pages (providers.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes import providers
from nexus.services.hub.web import Ctx, HubRoute, form_errors, is_htmx, redirect, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
router.include_router(providers.router)

CHANNELS = ("sms", "whatsapp", "telegram", "messenger", "email")
STATUSES = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "rejected",
    "expired",
    "canceled",
)
FINAL = {"delivered", "read", "undelivered", "failed", "rejected", "expired", "canceled"}
FILTERS = ("channel", "status", "provider_id", "to", "direction", "since", "until")
PAGE_SIZE = 50


def _form_value(form: Any, name: str, limit: int = 100_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


# -- compose -------------------------------------------------------------------------------
@router.get("/messages/new")
async def compose(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    values = {
        "channel": request.query_params.get("channel", "sms"),
        "to": request.query_params.get("to", ""),
        "body": "",
    }
    return _compose(request, ctx, values)


def _compose(
    request: Request,
    ctx: Ctx,
    values: dict[str, str],
    *,
    errors: dict[str, str] | None = None,
    error: str = "",
) -> Response:
    values.setdefault("key", secrets.token_urlsafe(16))
    return render(
        request,
        "compose.html",
        ctx,
        values=values,
        errors=errors or {},
        error=error,
        channels=CHANNELS,
    )


@router.post("/messages/preview")
async def preview(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    channel = _form_value(form, "channel", 20)
    body = {
        "channel": channel if channel in CHANNELS else "sms",
        "to": _form_value(form, "to", 320) or None,
        "body": _form_value(form, "body"),
    }
    result = await ctx.post("vas", "/messages/preview", body)
    return render(request, "_preview.html", ctx, p=result)


@router.post("/messages/new")
async def send(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values = {
        name: _form_value(form, name)
        for name in ("channel", "to", "body", "from", "subject", "send_at", "key")
    }
    payload: dict[str, Any] = {"channel": values["channel"], "to": values["to"].strip()}
    for name in ("body", "from", "subject"):
        if values[name].strip():
            payload[name] = values[name]
    if values["send_at"]:
        try:
            payload["send_at"] = (
                dt.datetime.fromisoformat(values["send_at"]).replace(tzinfo=dt.UTC).isoformat()
            )
        except ValueError:
            return _compose(
                request,
                ctx,
                values,
                errors={"send_at": "Give a date and time, or leave it empty to send now."},
            )
    if not payload["to"]:
        return _compose(request, ctx, values, errors={"to": "Who should get this message?"})
    try:
        message = await ctx.call(
            "vas",
            "POST",
            "/messages/send",
            json=payload,
            headers={"Idempotency-Key": f"hub:{ctx.row.user_id}:{values['key'][:64]}"},
        )
    except ApiError as exc:
        if exc.status not in {400, 409, 422}:
            raise
        return _compose(request, ctx, values, errors=form_errors(exc), error=exc.detail)
    return redirect(f"/messages/{message['id']}?sent=1", request)


# -- the log -------------------------------------------------------------------------------
def _filters(request: Request) -> dict[str, str]:
    out = {}
    for name in FILTERS:
        value = (request.query_params.get(name) or "").strip()[:320]
        if value:
            out[name] = value
    return out


def _api_params(filters: dict[str, str]) -> dict[str, str]:
    params = dict(filters)
    for name in ("since", "until"):  # <input type="datetime-local"> gives no zone: UTC
        if name in params and len(params[name]) <= 16:
            params[name] += ":00+00:00"
    return params


@router.get("/messages")
async def log(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    page, providers = await asyncio.gather(
        ctx.get("vas", "/messages", **_api_params(filters), cursor=cursor, limit=PAGE_SIZE),
        providers_of(ctx),
    )
    values = {
        "items": page["items"],
        "next_cursor": page["next_cursor"],
        "live": any(m["status"] not in FINAL for m in page["items"]),
        "rows_url": "/messages/rows?"
        + urlencode({**filters, **({"cursor": cursor} if cursor else {})}),
        "next_url": "/messages?" + urlencode({**filters, "cursor": page["next_cursor"] or ""}),
    }
    return render(
        request,
        "log.html",
        ctx,
        filters=filters,
        channels=CHANNELS,
        statuses=STATUSES,
        providers=providers,
        paged=bool(cursor),
        **values,
    )


@router.get("/messages/rows")
async def log_rows(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    """The log's rows alone, polled while some message is on its way."""
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    page = await ctx.get("vas", "/messages", **_api_params(filters), cursor=cursor, limit=PAGE_SIZE)
    return render(
        request,
        "_log_rows.html",
        ctx,
        items=page["items"],
        live=any(m["status"] not in FINAL for m in page["items"]),
        rows_url=str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
    )


# -- one message ---------------------------------------------------------------------------
def _steps(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message.get("history") or [])


@router.get("/messages/{message_id}")
async def detail(message_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    message, providers = await asyncio.gather(
        ctx.get("vas", f"/messages/{message_id}"), providers_of(ctx)
    )
    names = {p["id"]: p["name"] for p in providers}
    values = {"m": message, "steps": _steps(message), "names": names, "final": FINAL}
    if is_htmx(request):
        return render(request, "_message_live.html", ctx, **values)
    return render(
        request,
        "message.html",
        ctx,
        flash="Message accepted. This page follows it until it is delivered."
        if request.query_params.get("sent")
        else None,
        **values,
    )


@router.post("/messages/{message_id}/cancel")
async def cancel(message_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.post("vas", f"/messages/{message_id}/cancel")
    return redirect(f"/messages/{message_id}", request)


async def providers_of(ctx: Ctx) -> list[dict[str, Any]]:
    """The org's provider accounts, for names and filters (none without the permission)."""
    if not ctx.can("vas:provider:read"):
        return []
    try:
        return await ctx.get("vas", "/providers")  # type: ignore[no-any-return]
    except ApiError:
        return []
