"""Home (app launcher, notifications), universal search, and the static assets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from nexus.services.hub.api import ApiError
from nexus.services.hub.nav import SECTIONS, launcher, visible
from nexus.services.hub.web import HERE, Ctx, HubRoute, htmx_file, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
STATIC = HERE / "static"
TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
FINAL = {"delivered", "read", "undelivered", "failed", "rejected", "expired", "canceled"}


def _assets() -> dict[str, Path]:
    found = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}
    found["htmx.min.js"] = htmx_file()
    return found


ASSETS = _assets()  # a fixed set: no path from the URL ever reaches the file system


@router.get("/static/hub/{name}")
async def static(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path,
        media_type=TYPES[path.suffix],
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


async def _quietly(coro: Any, default: Any = None) -> Any:
    """A home-page panel that cannot load must not break the page."""
    try:
        return await coro
    except ApiError:
        return default


@router.get("/")
async def home(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    notices: list[tuple[str, str, str | None]] = []  # kind, text, link
    recent: list[dict[str, Any]] = []
    tasks: dict[str, Any] = {}
    if ctx.running("vas") and ctx.can("vas:message:read"):
        tasks["recent"] = _quietly(ctx.get("vas", "/messages", limit=8), {"items": []})
    if ctx.running("vas") and ctx.can("vas:provider:read"):
        tasks["providers"] = _quietly(ctx.get("vas", "/providers/health"), [])
    results = dict(zip(tasks, await asyncio.gather(*tasks.values()), strict=True))
    recent = (results.get("recent") or {}).get("items", [])
    for provider in results.get("providers") or []:
        if provider["enabled"] and (not provider["healthy"] or provider["circuit"] == "open"):
            notices.append(
                (
                    "warn",
                    f"Provider {provider['name']} is not healthy: {provider['detail']}",
                    "/providers",
                )
            )
    if not ctx.row.mfa_enabled:
        notices.append(("info", "Protect your account: turn on two-step verification.", "/me#mfa"))
    failed = [m for m in recent if m["status"] in {"failed", "undelivered", "rejected"}]
    if failed:
        notices.append(
            (
                "warn",
                f"{len(failed)} of your latest messages did not get through.",
                f"/messages?status={failed[0]['status']}",
            )
        )
    return render(
        request,
        "home.html",
        ctx,
        apps=launcher(ctx),
        notices=notices,
        recent=recent,
    )


CRM_RECORDS = {"contact": "contacts", "company": "companies", "deal": "deals"}  # type -> path


@router.get("/search")
async def search(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    q = (request.query_params.get("q") or "").strip()[:200]
    pages, users, messages, records = [], [], [], []
    if q:
        low = q.lower()
        pages = [
            p
            for s in SECTIONS
            for p in s.pages
            if visible(ctx, p) and (low in p.title.lower() or low in p.blurb.lower())
        ]
        tasks: dict[str, Any] = {}
        if ctx.running("idaas") and ctx.can("idaas:user:read"):
            tasks["users"] = _quietly(ctx.get("idaas", "/users", q=q, limit=10), {"items": []})
        if ctx.running("vas") and ctx.can("vas:message:read"):
            if len(q) == 36 and q.count("-") == 4:  # a message id
                tasks["message"] = _quietly(ctx.get("vas", f"/messages/{q}"), None)
            tasks["messages"] = _quietly(ctx.get("vas", "/messages", to=q, limit=10), {"items": []})
        if ctx.running("crm") and any(ctx.can(f"crm:{t}:read") for t in CRM_RECORDS):
            tasks["records"] = _quietly(ctx.get("crm", "/crm/search", q=q, limit=10), {"items": []})
        results = dict(zip(tasks, await asyncio.gather(*tasks.values()), strict=True))
        users = (results.get("users") or {}).get("items", [])
        records = [
            {**hit, "url": f"/crm/{CRM_RECORDS[hit['type']]}/{hit['id']}"}
            for hit in (results.get("records") or {}).get("items", [])
            if hit.get("type") in CRM_RECORDS
        ]
        messages = (results.get("messages") or {}).get("items", [])
        if results.get("message"):
            messages.insert(0, results["message"])
    return render(
        request,
        "search.html",
        ctx,
        q=q,
        pages=pages,
        users=users,
        messages=messages,
        records=records,
    )
