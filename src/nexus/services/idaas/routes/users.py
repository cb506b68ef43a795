"""/api/v1/users: search, create, update, suspend, deactivate, bulk."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict, NotFound, Problem
from nexus.kernel.events import emit
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas, get_idaas, in_org, origin
from nexus.services.idaas.models import Role, RoleBinding, Session, User
from nexus.services.idaas.passwords import check_policy, hash_password
from nexus.services.idaas.schemas import (
    BulkIn,
    BulkResult,
    BulkUserItem,
    UserIn,
    UserOut,
    UserPatch,
)

router = APIRouter(prefix="/users", tags=["users"])


async def _get(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)  # the session is scoped: other orgs' rows are invisible
    if user is None:
        raise NotFound(f"No user {user_id}.")
    return user


async def _bind_roles(
    session: AsyncSession, org_id: str, user_id: str, names: list[str], principal: Principal
) -> None:
    if not names:
        return
    roles = (
        await session.scalars(select(Role).where(Role.org_id == org_id, Role.name.in_(names)))
    ).all()
    missing = sorted(set(names) - {r.name for r in roles})
    if missing:
        raise Problem(f"No role named {', '.join(missing)}.", status=422, slug="unknown-role")
    if "owner" in names and "owner" not in principal.roles:
        raise Problem("Only an owner can make an owner.", status=403, slug="forbidden")
    for role in roles:
        session.add(
            RoleBinding(
                org_id=org_id,
                role_id=role.id,
                subject_type="user",
                subject_id=user_id,
                created_by=principal.subject,
            )
        )


async def _create(
    session: AsyncSession,
    org_id: str,
    body: UserIn | BulkUserItem,
    principal: Principal,
    request: Request,
) -> User:
    email = str(body.email).lower()
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"A user with e-mail {email} exists in this org.")
    password = getattr(body, "password", None)
    if password:
        check_policy(password, email=email, name=body.name or "")
    user = User(
        org_id=org_id,
        email=email,
        name=body.name or "",
        status=body.status or "active",
        attributes=body.attributes or {},
        password_hash=hash_password(password) if password else None,
        password_changed_at=utcnow() if password else None,
    )
    session.add(user)
    await session.flush()
    await _bind_roles(
        session,
        org_id,
        user.id,
        list(body.roles if body.roles is not None else ["member"]),
        principal,
    )
    audit.record(
        session,
        "user.created",
        org_id=org_id,
        origin=origin(request),
        actor=principal,
        target_type="user",
        target_id=user.id,
    )
    emit(
        session,
        "nexus.idaas.user.created",
        {"user_id": user.id, "email": user.email},
        org_id=org_id,
    )
    return user


async def _update(
    session: AsyncSession,
    user: User,
    changes: dict[str, Any],
    principal: Principal,
    request: Request,
    idaas: Idaas,
) -> User:
    if user.id == principal.subject and changes.get("status") not in (None, "active"):
        raise Conflict("You cannot suspend or deactivate yourself.")
    if "password" in changes:
        password = changes.pop("password")
        if password:
            check_policy(password, email=user.email, name=user.name)
            user.password_hash = hash_password(password)
            user.password_changed_at = utcnow()
    roles = changes.pop("roles", None)
    for key, value in changes.items():
        setattr(user, key, value)
    if roles is not None:  # the user's plain org-wide roles become exactly these
        bindings = (
            await session.scalars(
                select(RoleBinding).where(
                    RoleBinding.subject_type == "user",
                    RoleBinding.subject_id == user.id,
                    RoleBinding.resource.is_(None),
                )
            )
        ).all()
        for binding in bindings:
            if not binding.conditions:  # conditional grants are managed on their own
                await session.delete(binding)
        await session.flush()
        await _bind_roles(session, user.org_id, user.id, list(roles), principal)
        changes["roles"] = roles
    if changes.get("status") in {"suspended", "deactivated"}:
        await _end_sessions(session, user, idaas, reason=f"user_{changes['status']}")
    audit.record(
        session,
        "user.updated",
        org_id=user.org_id,
        origin=origin(request),
        actor=principal,
        target_type="user",
        target_id=user.id,
        changes=sorted(changes),
    )
    emit(
        session,
        "nexus.idaas.user.updated",
        {"user_id": user.id, "changes": sorted(changes)},
        org_id=user.org_id,
    )
    return user


async def _end_sessions(session: AsyncSession, user: User, idaas: Idaas, reason: str) -> None:
    for login in (
        await session.scalars(
            select(Session).where(Session.user_id == user.id, Session.revoked_at.is_(None))
        )
    ).all():
        await idaas.issuer.revoke_session(session, login, reason=reason)


@router.get("", response_model=Page[UserOut], summary="Search users")
async def list_users(
    request: Request,
    q: str | None = Query(None, max_length=200, description="Part of the e-mail or name."),
    status: str | None = Query(None, pattern="^(invited|active|suspended|deactivated)$"),
    kind: str | None = Query(None, pattern="^(user|service_account)$"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("idaas:user:read"),
    idaas: Idaas = Depends(get_idaas),
) -> Page[UserOut]:
    async with in_org(idaas, request, principal, write=False) as (session, org_id):
        stmt = select(User).where(User.org_id == org_id)
        if q:
            like = f"%{q.lower()}%"
            stmt = stmt.where(or_(User.email.like(like), func.lower(User.name).like(like)))
        if status:
            stmt = stmt.where(User.status == status)
        if kind:
            stmt = stmt.where(User.kind == kind)
        rows = list((await session.scalars(paginate(stmt, User.id, cursor, limit))).all())
    items, next_cursor = page_of(rows, limit)
    return Page(items=[UserOut.model_validate(u) for u in items], next_cursor=next_cursor)


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
async def create_user(
    body: UserIn,
    request: Request,
    principal: Principal = require("idaas:user:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> User:
    async with in_org(idaas, request, principal) as (session, org_id):
        return await _create(session, org_id, body, principal, request)


@router.post("/bulk", response_model=list[BulkResult], summary="Create or update many users")
async def bulk_users(
    body: BulkIn,
    request: Request,
    principal: Principal = require("idaas:user:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> list[BulkResult]:
    """Each item is applied on its own: one bad item does not stop the others."""
    results: list[BulkResult] = []
    async with in_org(idaas, request, principal) as (session, org_id):
        for index, item in enumerate(body.items):
            try:
                async with session.begin_nested():
                    if item.id:
                        user = await _get(session, item.id)
                        changes = item.model_dump(exclude_unset=True, exclude={"id", "email"})
                        await _update(session, user, changes, principal, request, idaas)
                        results.append(BulkResult(index=index, status=200, id=user.id))
                    else:
                        if item.email is None:
                            raise Problem("email is required to create a user.", status=422)
                        user = await _create(session, org_id, item, principal, request)
                        results.append(BulkResult(index=index, status=201, id=user.id))
            except Problem as exc:
                results.append(BulkResult(index=index, status=exc.status, error=exc.detail))
    return results


@router.get("/{user_id}", response_model=UserOut)
async def get_user(
    user_id: str,
    request: Request,
    principal: Principal = require("idaas:user:read"),
    idaas: Idaas = Depends(get_idaas),
) -> User:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return await _get(session, user_id)


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: str,
    body: UserPatch,
    request: Request,
    principal: Principal = require("idaas:user:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> User:
    async with in_org(idaas, request, principal) as (session, _org_id):
        user = await _get(session, user_id)
        return await _update(
            session, user, body.model_dump(exclude_unset=True), principal, request, idaas
        )


@router.post(
    "/{user_id}/suspend", response_model=UserOut, summary="Suspend: no login, sessions end"
)
async def suspend_user(
    user_id: str,
    request: Request,
    principal: Principal = require("idaas:user:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> User:
    async with in_org(idaas, request, principal) as (session, _org_id):
        user = await _get(session, user_id)
        return await _update(session, user, {"status": "suspended"}, principal, request, idaas)


@router.delete(
    "/{user_id}", status_code=204, summary="Deactivate a user (kept for the audit trail)"
)
async def delete_user(
    user_id: str,
    request: Request,
    principal: Principal = require("idaas:user:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, _org_id):
        user = await _get(session, user_id)
        await _update(session, user, {"status": "deactivated"}, principal, request, idaas)
