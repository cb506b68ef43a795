"""/api/v1/groups and their members."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import insert_ignore
from nexus.kernel.errors import Conflict, NotFound
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas, get_idaas, in_org, origin
from nexus.services.idaas.models import Group, GroupMember, RoleBinding, User
from nexus.services.idaas.schemas import GroupIn, GroupOut, MembersIn, UserOut

router = APIRouter(prefix="/groups", tags=["groups"])


async def _get(session: AsyncSession, group_id: str) -> Group:
    group = await session.get(Group, group_id)
    if group is None:
        raise NotFound(f"No group {group_id}.")
    return group


@router.get("", response_model=list[GroupOut])
async def list_groups(
    request: Request,
    principal: Principal = require("idaas:group:read"),
    idaas: Idaas = Depends(get_idaas),
) -> list[Group]:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return list((await session.scalars(select(Group).order_by(Group.name))).all())


@router.post("", response_model=GroupOut, status_code=201)
async def create_group(
    body: GroupIn,
    request: Request,
    principal: Principal = require("idaas:group:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> Group:
    try:
        async with in_org(idaas, request, principal) as (session, org_id):
            group = Group(org_id=org_id, name=body.name, description=body.description)
            session.add(group)
            await session.flush()
            audit.record(
                session,
                "group.created",
                org_id=org_id,
                origin=origin(request),
                actor=principal,
                target_type="group",
                target_id=group.id,
            )
    except IntegrityError:
        raise Conflict(f"A group named {body.name!r} exists.") from None
    return group


@router.get("/{group_id}", response_model=GroupOut)
async def get_group(
    group_id: str,
    request: Request,
    principal: Principal = require("idaas:group:read"),
    idaas: Idaas = Depends(get_idaas),
) -> Group:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return await _get(session, group_id)


@router.delete("/{group_id}", status_code=204)
async def delete_group(
    group_id: str,
    request: Request,
    principal: Principal = require("idaas:group:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        group = await _get(session, group_id)
        await session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
        await session.execute(
            delete(RoleBinding).where(
                RoleBinding.subject_type == "group", RoleBinding.subject_id == group.id
            )
        )
        await session.delete(group)
        audit.record(
            session,
            "group.deleted",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="group",
            target_id=group_id,
        )


@router.get("/{group_id}/members", response_model=list[UserOut])
async def list_members(
    group_id: str,
    request: Request,
    principal: Principal = require("idaas:group:read"),
    idaas: Idaas = Depends(get_idaas),
) -> list[User]:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        await _get(session, group_id)
        return list(
            (
                await session.scalars(
                    select(User)
                    .join(GroupMember, GroupMember.user_id == User.id)
                    .where(GroupMember.group_id == group_id)
                    .order_by(User.email)
                )
            ).all()
        )


@router.post("/{group_id}/members", status_code=204, summary="Add users to a group")
async def add_members(
    group_id: str,
    body: MembersIn,
    request: Request,
    principal: Principal = require("idaas:group:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        await _get(session, group_id)
        found = set(
            (await session.scalars(select(User.id).where(User.id.in_(body.user_ids)))).all()
        )
        missing = sorted(set(body.user_ids) - found)
        if missing:
            raise NotFound(f"No user {', '.join(missing)}.")
        await insert_ignore(
            session,
            GroupMember,
            [{"org_id": org_id, "group_id": group_id, "user_id": uid} for uid in sorted(found)],
        )
        audit.record(
            session,
            "group.members.added",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="group",
            target_id=group_id,
            users=sorted(found),
        )


@router.delete("/{group_id}/members/{user_id}", status_code=204)
async def remove_member(
    group_id: str,
    user_id: str,
    request: Request,
    principal: Principal = require("idaas:group:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        await _get(session, group_id)
        result = await session.execute(
            delete(GroupMember).where(
                GroupMember.group_id == group_id, GroupMember.user_id == user_id
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"User {user_id} is not in the group.")
        audit.record(
            session,
            "group.members.removed",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="group",
            target_id=group_id,
            users=[user_id],
        )
