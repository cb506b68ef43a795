"""People pages over IDaaS's API: users (add, suspend, reactivate, their roles) and groups
(create, delete, their members). Every change is the API's, with its checks."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.forms import done, field_errors, text
from nexus.services.hub.web import Ctx, HubRoute, redirect, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
DONE = {
    "user-created": "The user is created. They can log in now.",
    "user-suspended": "The user is suspended: they cannot log in and their sessions ended.",
    "user-activated": "The user is active again.",
    "role-granted": "The role is granted.",
    "role-revoked": "The role is revoked.",
    "group-created": "The group is created.",
    "group-deleted": "The group is deleted.",
    "member-added": "The user is in the group now.",
    "member-removed": "The user is no longer in the group.",
}
USER_STATUSES = ("active", "invited", "suspended", "deactivated")
REFUSED = {400, 404, 409, 422}  # a 403 is the error page, with its status


# -- users ---------------------------------------------------------------------------------
@router.get("/users")
async def users(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _users(request, ctx)


async def _users(
    request: Request,
    ctx: Ctx,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
) -> Response:
    q = (request.query_params.get("q") or "").strip()[:200]
    state = request.query_params.get("status") or ""
    cursor = request.query_params.get("cursor") or None
    page = await ctx.get(
        "idaas",
        "/users",
        q=q,
        status=state if state in USER_STATUSES else None,
        cursor=cursor,
        limit=50,
    )
    roles = await ctx.get("idaas", "/roles") if ctx.can("idaas:role:read") else []
    filters = {k: v for k, v in (("q", q), ("status", state)) if v}
    return render(
        request,
        "admin/users.html",
        ctx,
        users=page["items"],
        next_url="/admin/users?" + urlencode({**filters, "cursor": page["next_cursor"]})
        if page["next_cursor"]
        else None,
        filters=filters,
        statuses=USER_STATUSES,
        roles=roles,
        values=values or {"roles": ["member"]},
        errors=errors or {},
        error=error,
        flash=done(request, DONE),
        open_form=bool(errors or error),
    )


@router.post("/users")
async def create_user(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        "email": text(form, "email", 320),
        "name": text(form, "name", 200),
        "roles": [r for r in form.getlist("roles") if isinstance(r, str)][:20],
    }
    body = dict(values)
    password = form.get("password")
    if isinstance(password, str) and password:
        body["password"] = password[:256]
    body["status"] = "active"
    try:
        await ctx.post("idaas", "/users", body)
    except ApiError as exc:
        if exc.status not in {400, 403, 409, 422}:
            raise
        return await _users(request, ctx, values=values, errors=field_errors(exc), error=exc.detail)
    return redirect("/admin/users?done=user-created", request)


@router.post("/users/{user_id}/suspend")
async def suspend_user(user_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.post("idaas", f"/users/{user_id}/suspend")
    return redirect("/admin/users?done=user-suspended", request)


@router.post("/users/{user_id}/activate")
async def activate_user(user_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.call("idaas", "PATCH", f"/users/{user_id}", json={"status": "active"})
    return redirect("/admin/users?done=user-activated", request)


# -- one user and their roles --------------------------------------------------------------
@router.get("/users/{user_id}")
async def user(user_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _user(request, ctx, user_id)


async def _user(
    request: Request, ctx: Ctx, user_id: str, *, chosen: str = "", error: str = ""
) -> Response:
    person = await ctx.get("idaas", f"/users/{user_id}")
    roles: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    if ctx.can("idaas:role:read"):
        roles, bindings = await asyncio.gather(
            ctx.get("idaas", "/roles"), ctx.get("idaas", "/role-bindings", user_id=user_id)
        )
    names = {r["id"]: r["name"] for r in roles}
    plain = {b["role_id"] for b in bindings if not b["resource"] and not b["conditions"]}
    return render(
        request,
        "admin/user.html",
        ctx,
        person=person,
        bindings=[{**b, "role": names.get(b["role_id"], b["role_id"])} for b in bindings],
        grantable=[r for r in roles if r["id"] not in plain],
        chosen=chosen,
        error=error,
        flash=done(request, DONE),
    )


@router.post("/users/{user_id}/roles")
async def grant_role(user_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    role = text(form, "role", 100)
    if not role:
        return await _user(request, ctx, user_id, error="Choose a role to grant.")
    try:
        await ctx.post("idaas", "/role-bindings", {"role": role, "user_id": user_id})
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await _user(request, ctx, user_id, chosen=role, error=exc.detail)
    return redirect(f"/admin/users/{user_id}?done=role-granted", request)


@router.post("/users/{user_id}/roles/{binding_id}/revoke")
async def revoke_role(
    user_id: str, binding_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    try:
        await ctx.call("idaas", "DELETE", f"/role-bindings/{binding_id}")
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await _user(request, ctx, user_id, error=exc.detail)
    return redirect(f"/admin/users/{user_id}?done=role-revoked", request)


# -- groups --------------------------------------------------------------------------------
@router.get("/groups")
async def groups(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _groups(request, ctx)


async def _groups(
    request: Request, ctx: Ctx, *, error: str = "", values: dict[str, str] | None = None
) -> Response:
    items = await ctx.get("idaas", "/groups")
    return render(
        request,
        "admin/groups.html",
        ctx,
        groups=items,
        values=values or {},
        error=error,
        flash=done(request, DONE),
    )


@router.post("/groups")
async def create_group(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    body = {"name": text(form, "name", 200), "description": text(form, "description")}
    try:
        created = await ctx.post("idaas", "/groups", body)
    except ApiError as exc:
        if exc.status not in {400, 409, 422}:
            raise
        return await _groups(request, ctx, error=exc.detail, values=body)
    return redirect(f"/admin/groups/{created['id']}?done=group-created", request)


@router.post("/groups/{group_id}/delete")
async def delete_group(group_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.call("idaas", "DELETE", f"/groups/{group_id}")
    return redirect("/admin/groups?done=group-deleted", request)


# -- one group and its members -------------------------------------------------------------
@router.get("/groups/{group_id}")
async def group(group_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    return await _group(request, ctx, group_id)


async def _group(
    request: Request, ctx: Ctx, group_id: str, *, email: str = "", error: str = ""
) -> Response:
    team, members = await asyncio.gather(
        ctx.get("idaas", f"/groups/{group_id}"), ctx.get("idaas", f"/groups/{group_id}/members")
    )
    candidates: list[str] = []
    if ctx.can("idaas:group:manage", "idaas:user:read"):  # suggestions for the e-mail box
        page = await ctx.get("idaas", "/users", status="active", limit=500)
        inside = {m["id"] for m in members}
        candidates = [u["email"] for u in page["items"] if u["id"] not in inside]
    return render(
        request,
        "admin/group.html",
        ctx,
        group=team,
        members=members,
        candidates=candidates,
        email=email,
        error=error,
        flash=done(request, DONE),
    )


@router.post("/groups/{group_id}/members")
async def add_member(group_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    email = text(form, "email", 320)
    if not email:
        return await _group(request, ctx, group_id, error="Give the e-mail of a user to add.")
    found = await ctx.get("idaas", "/users", q=email, limit=50)
    match = [u for u in found["items"] if u["email"] == email.lower()]
    if not match:
        return await _group(
            request, ctx, group_id, email=email, error=f"No user has the e-mail {email} here."
        )
    try:
        await ctx.post("idaas", f"/groups/{group_id}/members", {"user_ids": [match[0]["id"]]})
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return await _group(request, ctx, group_id, email=email, error=exc.detail)
    return redirect(f"/admin/groups/{group_id}?done=member-added", request)


@router.post("/groups/{group_id}/members/{user_id}/remove")
async def remove_member(
    group_id: str, user_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    await ctx.call("idaas", "DELETE", f"/groups/{group_id}/members/{user_id}")
    return redirect(f"/admin/groups/{group_id}?done=member-removed", request)
