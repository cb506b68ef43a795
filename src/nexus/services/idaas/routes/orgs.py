"""/api/v1/orgs: the caller's org and its children."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nexus.kernel.auth import Principal, require
from nexus.kernel.errors import Conflict, NotFound
from nexus.kernel.events import emit
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas, descendants, get_idaas, origin
from nexus.services.idaas.models import Org
from nexus.services.idaas.roles import builtin_roles
from nexus.services.idaas.schemas import OrgIn, OrgOut, OrgPatch

router = APIRouter(prefix="/orgs", tags=["orgs"])


@router.get("", response_model=list[OrgOut], summary="My org and the orgs below it")
async def list_orgs(
    principal: Principal = require("idaas:org:read"), idaas: Idaas = Depends(get_idaas)
) -> list[Org]:
    async with idaas.db.read() as session:
        ids = await descendants(session, principal.org_id)
        return list(
            (await session.scalars(select(Org).where(Org.id.in_(ids)).order_by(Org.id))).all()
        )


@router.post("", response_model=OrgOut, status_code=201, summary="Create a child org")
async def create_org(
    body: OrgIn,
    request: Request,
    principal: Principal = require("idaas:org:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> Org:
    try:
        async with idaas.db.transaction() as session:
            org = Org(
                name=body.name,
                slug=body.slug,
                parent_id=principal.org_id,
                default_region=body.default_region,
            )
            session.add(org)
            await session.flush()
            session.add_all(builtin_roles(org.id))
            audit.record(
                session,
                "org.created",
                org_id=principal.org_id,
                origin=origin(request),
                actor=principal,
                target_type="org",
                target_id=org.id,
                slug=org.slug,
            )
            emit(
                session,
                "nexus.idaas.org.created",
                {"org_id": org.id, "parent_id": org.parent_id},
                org_id=org.id,
            )
    except IntegrityError:
        raise Conflict(f"The slug {body.slug!r} is taken.") from None
    return org


async def _visible(session: object, principal: Principal, org_id: str) -> Org:
    if org_id not in await descendants(session, principal.org_id):  # type: ignore[arg-type]
        raise NotFound(f"No org {org_id}.")
    org = await session.get(Org, org_id)  # type: ignore[attr-defined]
    assert org is not None
    return org  # type: ignore[no-any-return]


@router.get("/{org_id}", response_model=OrgOut)
async def get_org(
    org_id: str, principal: Principal = require("idaas:org:read"), idaas: Idaas = Depends(get_idaas)
) -> Org:
    async with idaas.db.read() as session:
        return await _visible(session, principal, org_id)


@router.patch("/{org_id}", response_model=OrgOut)
async def update_org(
    org_id: str,
    body: OrgPatch,
    request: Request,
    principal: Principal = require("idaas:org:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> Org:
    async with idaas.db.transaction() as session:
        org = await _visible(session, principal, org_id)
        changes = body.model_dump(exclude_unset=True)
        if changes.get("status") == "suspended" and org_id == principal.org_id:
            raise Conflict("You cannot suspend your own org.")
        for key, value in changes.items():
            setattr(org, key, value)
        audit.record(
            session,
            "org.updated",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="org",
            target_id=org.id,
            changes=sorted(changes),
        )
        return org
