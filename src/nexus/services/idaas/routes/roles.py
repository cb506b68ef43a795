"""/api/v1/roles, /api/v1/role-bindings and /api/v1/authz/check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal, current_principal, require
from nexus.kernel.errors import Conflict, Forbidden, NotFound, Problem
from nexus.kernel.policy import Grant, authorize, decide
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas, get_idaas, in_org, origin
from nexus.services.idaas.models import Group, Role, RoleBinding, User
from nexus.services.idaas.roles import grants_for
from nexus.services.idaas.schemas import (
    AuthzCheckIn,
    AuthzCheckOut,
    BindingIn,
    BindingOut,
    RoleIn,
    RoleOut,
    RolePatch,
)

router = APIRouter(tags=["roles"])


async def _role(session: AsyncSession, ref: str) -> Role:
    role = await session.scalar(select(Role).where(or_(Role.id == ref, Role.name == ref)))
    if role is None:
        raise NotFound(f"No role {ref}.")
    return role


@router.get("/roles", response_model=list[RoleOut])
async def list_roles(
    request: Request,
    principal: Principal = require("idaas:role:read"),
    idaas: Idaas = Depends(get_idaas),
) -> list[Role]:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return list(
            (await session.scalars(select(Role).order_by(Role.builtin.desc(), Role.name))).all()
        )


@router.post("/roles", response_model=RoleOut, status_code=201, summary="Create a custom role")
async def create_role(
    body: RoleIn,
    request: Request,
    principal: Principal = require("idaas:role:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> Role:
    try:
        async with in_org(idaas, request, principal) as (session, org_id):
            role = Role(
                org_id=org_id,
                name=body.name,
                description=body.description,
                permissions=body.permissions,
            )
            session.add(role)
            await session.flush()
            audit.record(
                session,
                "role.created",
                org_id=org_id,
                origin=origin(request),
                actor=principal,
                target_type="role",
                target_id=role.id,
                permissions=body.permissions,
            )
    except IntegrityError:
        raise Conflict(f"A role named {body.name!r} exists.") from None
    return role


@router.get("/roles/{role_id}", response_model=RoleOut)
async def get_role(
    role_id: str,
    request: Request,
    principal: Principal = require("idaas:role:read"),
    idaas: Idaas = Depends(get_idaas),
) -> Role:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return await _role(session, role_id)


@router.patch("/roles/{role_id}", response_model=RoleOut)
async def update_role(
    role_id: str,
    body: RolePatch,
    request: Request,
    principal: Principal = require("idaas:role:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> Role:
    async with in_org(idaas, request, principal) as (session, org_id):
        role = await _role(session, role_id)
        if role.builtin:
            raise Conflict("Built-in roles cannot be changed; create a custom role.")
        for key, value in body.model_dump(exclude_unset=True).items():
            setattr(role, key, value)
        audit.record(
            session,
            "role.updated",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="role",
            target_id=role.id,
            permissions=role.permissions,
        )
        return role


@router.delete("/roles/{role_id}", status_code=204)
async def delete_role(
    role_id: str,
    request: Request,
    principal: Principal = require("idaas:role:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        role = await _role(session, role_id)
        if role.builtin:
            raise Conflict("Built-in roles cannot be deleted.")
        await session.execute(delete(RoleBinding).where(RoleBinding.role_id == role.id))
        await session.delete(role)
        audit.record(
            session,
            "role.deleted",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="role",
            target_id=role_id,
        )


@router.get("/role-bindings", response_model=list[BindingOut])
async def list_bindings(
    request: Request,
    user_id: str | None = None,
    group_id: str | None = None,
    principal: Principal = require("idaas:role:read"),
    idaas: Idaas = Depends(get_idaas),
) -> list[RoleBinding]:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        stmt = select(RoleBinding).order_by(RoleBinding.id)
        if user_id:
            stmt = stmt.where(RoleBinding.subject_type == "user", RoleBinding.subject_id == user_id)
        if group_id:
            stmt = stmt.where(
                RoleBinding.subject_type == "group", RoleBinding.subject_id == group_id
            )
        return list((await session.scalars(stmt)).all())


@router.post(
    "/role-bindings",
    response_model=BindingOut,
    status_code=201,
    summary="Grant a role to a user or group, optionally on one resource or under conditions",
)
async def create_binding(
    body: BindingIn,
    request: Request,
    principal: Principal = require("idaas:role:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> RoleBinding:
    if (body.user_id is None) == (body.group_id is None):
        raise Problem(
            "Give exactly one of user_id and group_id.", status=422, slug="validation-error"
        )
    async with in_org(idaas, request, principal) as (session, org_id):
        role = await _role(session, body.role)
        if role.name == "owner" and "owner" not in principal.roles:
            raise Forbidden("Only an owner can grant the owner role.")
        subject_type, subject_id = (
            ("user", body.user_id) if body.user_id else ("group", body.group_id)
        )
        model: Any = User if subject_type == "user" else Group
        if await session.get(model, subject_id) is None:
            raise NotFound(f"No {subject_type} {subject_id}.")
        binding = RoleBinding(
            org_id=org_id,
            role_id=role.id,
            subject_type=subject_type,
            subject_id=subject_id,
            resource=body.resource,
            conditions=body.conditions,
            created_by=principal.subject,
        )
        session.add(binding)
        await session.flush()
        audit.record(
            session,
            "role.granted",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type=subject_type,
            target_id=subject_id,
            role=role.name,
            resource=body.resource,
            conditions=body.conditions,
        )
        return binding


@router.delete("/role-bindings/{binding_id}", status_code=204, summary="Revoke a role binding")
async def delete_binding(
    binding_id: str,
    request: Request,
    principal: Principal = require("idaas:role:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        binding = await session.get(RoleBinding, binding_id)
        if binding is None:
            raise NotFound(f"No role binding {binding_id}.")
        role = await session.get(Role, binding.role_id)
        if role is not None and role.name == "owner" and "owner" not in principal.roles:
            raise Forbidden("Only an owner can revoke the owner role.")
        await session.delete(binding)
        audit.record(
            session,
            "role.revoked",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type=binding.subject_type,
            target_id=binding.subject_id,
            role=role.name if role else binding.role_id,
        )


@router.post(
    "/authz/check",
    response_model=AuthzCheckOut,
    tags=["authz"],
    summary="Would this be allowed, and why (explain)",
)
async def check(
    body: AuthzCheckIn,
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> AuthzCheckOut:
    """Decides with the same policy function every service uses. Checking someone else
    needs `idaas:role:read`."""
    if body.principal in (None, principal.subject):
        decision = authorize(principal, body.permission, body.resource)
        return AuthzCheckOut(allowed=decision.allowed, reason=decision.reason, grant=decision.grant)
    if not principal.can("idaas:role:read"):
        raise Forbidden("Checking another principal needs the permission idaas:role:read.")
    async with idaas.db.read(org_id=principal.org_id) as session:
        user = await session.get(User, body.principal)
        if user is None:
            raise NotFound(f"No user {body.principal}.")
        grants = await grants_for(session, user)
    if user.status != "active":
        return AuthzCheckOut(allowed=False, reason=f"the user is {user.status}")
    if body.resource is not None and body.resource.get("org_id") not in (None, user.org_id):
        return AuthzCheckOut(allowed=False, reason="the resource belongs to another org")
    all_grants = [Grant(p, source="role") for p in sorted(grants.permissions)] + grants.conditional
    decision = decide(
        all_grants,
        body.permission,
        user={
            "id": user.id,
            "org_id": user.org_id,
            "attributes": user.attributes,
            "roles": grants.roles,
        },
        resource=body.resource,
    )
    return AuthzCheckOut(allowed=decision.allowed, reason=decision.reason, grant=decision.grant)


@router.get("/permissions", tags=["authz"], summary="Every permission the services declare")
async def permissions(
    principal: Principal = Depends(current_principal),
    service: str | None = Query(None, max_length=40),
) -> dict[str, str]:
    from nexus.kernel.service import available_services, load_services

    out: dict[str, str] = {}
    for svc in load_services(list(available_services())):
        if service is None or svc.name == service:
            out.update(svc.permissions)
    return dict(sorted(out.items()))
