"""Administration pages over IDaaS's API: roles, API keys, OAuth clients, the audit log and
the org's settings (users and groups: admin_users.py). Every change is the API's, with its
checks."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub import sessions
from nexus.services.hub.api import ApiError
from nexus.services.hub.routes import admin_users
from nexus.services.hub.routes.forms import done, text
from nexus.services.hub.web import Ctx, HubRoute, form_errors, redirect, render, signed_in

router = APIRouter(prefix="/admin", route_class=HubRoute, include_in_schema=False)
router.include_router(admin_users.router)
DONE = {
    "role-created": "The role is created. Grant it from the API or when adding users.",
    "role-deleted": "The role is deleted.",
    "key-revoked": "The key is revoked. It stopped working at once.",
    "client-revoked": "The client is revoked.",
    "org-saved": "The settings are saved.",
}
NEW_CLIENT = {"client_type": "confidential", "grant_types": ["authorization_code", "refresh_token"]}
AUDIT_RESULTS = ("success", "failure")


def by_service(permissions: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for name, description in sorted(permissions.items()):
        grouped.setdefault(name.split(":", 1)[0], []).append((name, description))
    return grouped


# -- roles ---------------------------------------------------------------------------------
@router.get("/roles")
async def roles(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _roles(request, ctx)


async def _roles(
    request: Request,
    ctx: Ctx,
    *,
    error: str = "",
    values: dict[str, Any] | None = None,
) -> Response:
    items = await ctx.get("idaas", "/roles")
    permissions = await ctx.get("idaas", "/permissions")
    return render(
        request,
        "admin/roles.html",
        ctx,
        roles=items,
        permissions=by_service(permissions),
        values=values or {"permissions": []},
        error=error,
        flash=done(request, DONE),
    )


@router.post("/roles")
async def create_role(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values = {
        "name": text(form, "name", 100),
        "description": text(form, "description"),
        "permissions": [p for p in form.getlist("permissions") if isinstance(p, str)][:500],
    }
    try:
        await ctx.post("idaas", "/roles", values)
    except ApiError as exc:
        if exc.status not in {400, 403, 409, 422}:
            raise
        detail = exc.detail
        if exc.status == 422 and not values["permissions"]:
            detail = "Choose at least one permission."
        return await _roles(request, ctx, error=detail, values=values)
    return redirect("/admin/roles?done=role-created", request)


@router.post("/roles/{role_id}/delete")
async def delete_role(role_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.call("idaas", "DELETE", f"/roles/{role_id}")
    return redirect("/admin/roles?done=role-deleted", request)


# -- API keys ------------------------------------------------------------------------------
@router.get("/api-keys")
async def api_keys(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _api_keys(request, ctx)


async def _api_keys(
    request: Request,
    ctx: Ctx,
    *,
    error: str = "",
    created: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    keys = await ctx.get("idaas", "/api-keys")
    declared = await ctx.get("idaas", "/permissions")
    grantable = {p: d for p, d in declared.items() if ctx.can(p)}
    return render(
        request,
        "admin/api_keys.html",
        ctx,
        keys=keys,
        permissions=by_service(grantable),
        created=created,
        values=values or {"permissions": []},
        error=error,
        flash=done(request, DONE),
    )


@router.post("/api-keys")
async def create_api_key(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        "name": text(form, "name", 200),
        "permissions": [p for p in form.getlist("permissions") if isinstance(p, str)][:200],
    }
    days = text(form, "expires_in_days", 5)
    body = dict(values)
    if days:
        if not days.isdigit():
            return await _api_keys(request, ctx, error="Expiry is a number of days.", values=values)
        body["expires_in_days"] = int(days)
    if not values["permissions"]:
        return await _api_keys(request, ctx, error="Choose at least one permission.", values=values)
    try:
        created = await ctx.post("idaas", "/api-keys", body)
    except ApiError as exc:
        if exc.status not in {400, 403, 409, 422}:
            raise
        return await _api_keys(request, ctx, error=exc.detail, values=values)
    return await _api_keys(request, ctx, created=created)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.call("idaas", "DELETE", f"/api-keys/{key_id}")
    return redirect("/admin/api-keys?done=key-revoked", request)


# -- OAuth clients -------------------------------------------------------------------------
@router.get("/oauth-clients")
async def oauth_clients(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _clients(request, ctx)


async def _clients(
    request: Request,
    ctx: Ctx,
    *,
    error: str = "",
    created: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    page = await ctx.get("idaas", "/oauth-clients", limit=100)
    return render(
        request,
        "admin/oauth_clients.html",
        ctx,
        clients=page["items"],
        created=created,
        values=values or NEW_CLIENT,
        error=error,
        flash=done(request, DONE),
    )


@router.post("/oauth-clients")
async def create_oauth_client(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        "name": text(form, "name", 200),
        "client_type": text(form, "client_type", 20) or "confidential",
        "redirect_uris": [u for u in text(form, "redirect_uris", 10_000).split() if u][:20],
        "grant_types": [g for g in form.getlist("grant_types") if isinstance(g, str)][:3],
        "require_consent": form.get("require_consent") == "on",
    }
    try:
        created = await ctx.post("idaas", "/oauth-clients", values)
    except ApiError as exc:
        if exc.status not in {400, 403, 409, 422}:
            raise
        return await _clients(request, ctx, error=exc.detail, values=values)
    return await _clients(request, ctx, created=created)


@router.post("/oauth-clients/{client_id}/revoke")
async def revoke_oauth_client(
    client_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    await ctx.call("idaas", "DELETE", f"/oauth-clients/{client_id}")
    return redirect("/admin/oauth-clients?done=client-revoked", request)


# -- audit log -----------------------------------------------------------------------------
@router.get("/audit")
async def audit(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    filters = {
        name: (request.query_params.get(name) or "").strip()[:100]
        for name in ("type", "result", "actor_id", "target_id", "since", "until")
    }
    filters = {k: v for k, v in filters.items() if v}
    params = dict(filters)
    if params.get("result") not in (None, *AUDIT_RESULTS):
        params.pop("result")
    if "type" in params and not params["type"].endswith("*") and "." not in params["type"]:
        params["type"] += "*"  # a word like "user" means every user.* event
    for name in ("since", "until"):
        if name in params and len(params[name]) <= 16:
            params[name] += ":00+00:00"
    cursor = request.query_params.get("cursor") or None
    page, people = await asyncio.gather(
        ctx.get("idaas", "/audit-events", **params, cursor=cursor, limit=50), _people(ctx)
    )
    return render(
        request,
        "admin/audit.html",
        ctx,
        events=page["items"],
        people=people,
        filters=filters,
        results=AUDIT_RESULTS,
        next_url="/admin/audit?" + urlencode({**filters, "cursor": page["next_cursor"]})
        if page["next_cursor"]
        else None,
    )


async def _people(ctx: Ctx) -> dict[str, str]:
    """User id -> e-mail for naming actors (the first 500 users; others show their id)."""
    if not ctx.can("idaas:user:read"):
        return {}
    try:
        page = await ctx.get("idaas", "/users", limit=500)
    except ApiError:
        return {}
    return {u["id"]: u["email"] for u in page["items"]}


# -- org settings --------------------------------------------------------------------------
@router.get("/org")
async def org(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _org(request, ctx)


async def _org(
    request: Request,
    ctx: Ctx,
    *,
    error: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    current = await ctx.get("idaas", f"/orgs/{ctx.row.org_id}")
    children = [o for o in await ctx.get("idaas", "/orgs") if o["id"] != ctx.row.org_id]
    return render(
        request,
        "admin/org.html",
        ctx,
        org=current,
        values=values or current,
        children=children,
        error=error,
        errors=errors or {},
        flash=done(request, DONE),
    )


@router.post("/org")
async def save_org(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    body = {
        "name": text(form, "name", 200),
        "default_region": text(form, "default_region", 2).upper() or None,
    }
    try:
        await ctx.call("idaas", "PATCH", f"/orgs/{ctx.row.org_id}", json=body)
    except ApiError as exc:
        if exc.status not in {400, 403, 409, 422}:
            raise
        return await _org(request, ctx, error=exc.detail, errors=form_errors(exc), values=body)
    await sessions.update(request, ctx.row, org_name=body["name"] or ctx.row.org_name)
    return redirect("/admin/org?done=org-saved", request)
