"""/api/v1/api-keys: keys for service accounts, shown once."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Forbidden, NotFound
from nexus.services.idaas import audit
from nexus.services.idaas.apikeys import new_key
from nexus.services.idaas.deps import Idaas, get_idaas, in_org, origin
from nexus.services.idaas.models import ApiKey, User
from nexus.services.idaas.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.get("", response_model=list[ApiKeyOut])
async def list_keys(
    request: Request,
    principal: Principal = require("idaas:apikey:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> list[ApiKey]:
    async with in_org(idaas, request, principal, write=False) as (session, _org_id):
        return list(
            (await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc()))).all()
        )


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=201,
    summary="Create a key and its service account (the key is shown once)",
)
async def create_key(
    body: ApiKeyIn,
    request: Request,
    principal: Principal = require("idaas:apikey:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> ApiKeyCreated:
    beyond = [p for p in body.permissions if not principal.can(p) and p != "*"] or (
        ["*"] if "*" in body.permissions and not principal.can("*") else []
    )
    if beyond:
        raise Forbidden(f"A key cannot have permissions you do not hold: {', '.join(beyond)}.")
    key, prefix, secret_hash = new_key()
    async with in_org(idaas, request, principal) as (session, org_id):
        account = User(
            org_id=org_id,
            email=f"{prefix}@service-accounts.nexus.invalid",
            name=body.name,
            kind="service_account",
            status="active",
        )
        session.add(account)
        await session.flush()
        row = ApiKey(
            org_id=org_id,
            name=body.name,
            prefix=prefix,
            secret_hash=secret_hash,
            user_id=account.id,
            permissions=body.permissions,
            created_by=principal.subject,
            expires_at=utcnow() + dt.timedelta(days=body.expires_in_days)
            if body.expires_in_days
            else None,
        )
        session.add(row)
        await session.flush()
        audit.record(
            session,
            "apikey.created",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="apikey",
            target_id=row.id,
            prefix=prefix,
            permissions=body.permissions,
        )
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(row).model_dump(), "key": key})


@router.delete("/{key_id}", status_code=204, summary="Revoke a key (at once)")
async def revoke_key(
    key_id: str,
    request: Request,
    principal: Principal = require("idaas:apikey:manage"),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with in_org(idaas, request, principal) as (session, org_id):
        row = await session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            raise NotFound(f"No active API key {key_id}.")
        row.revoked_at = utcnow()
        account = await session.get(User, row.user_id)
        if account is not None:
            account.status = "deactivated"
        audit.record(
            session,
            "apikey.revoked",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="apikey",
            target_id=row.id,
            prefix=row.prefix,
        )
