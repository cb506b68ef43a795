"""/api/v1/oauth-clients: the OAuth clients of the OpenID Connect provider.

A confidential client's secret is shown once (at creation and when rotated). A client
that may use client_credentials gets a service account, which its tokens act as; the
permission scopes a client may have are limited to those its creator holds, as for API
keys. Deleting a client revokes it: its secret stops working, its token sessions end and
its service account is deactivated; the row stays for the audit trail.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict, Forbidden, NotFound, Problem
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas, acting_org, get_idaas, origin
from nexus.services.idaas.models import OAuthClient, Session, User
from nexus.services.idaas.oidc import scopes
from nexus.services.idaas.oidc.clients import (
    check_redirect_uri,
    is_public,
    new_client_id,
    new_secret,
)

router = APIRouter(prefix="/oauth-clients", tags=["oauth clients"])

GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
PERMISSION = "idaas:client:manage"


def _uris(cls: Any, value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for uri in value:
        try:
            check_redirect_uri(uri)
        except ValueError as exc:
            raise ValueError(f"redirect URI {uri[:100]!r} {exc}") from None
    return list(dict.fromkeys(value))


def _scope_values(cls: Any, value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    bad = [v for v in value if not scopes.is_valid(v)]
    if bad:
        raise ValueError(
            "not OpenID Connect scopes (openid, profile, email, offline_access) or "
            f"<service>:<resource>:<action> permissions: {', '.join(bad[:10])}"
        )
    return list(dict.fromkeys(value))


class OAuthClientIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    client_type: Literal["confidential", "public"] = Field(
        "confidential",
        description="public: a browser or native app that cannot keep a secret (PKCE only).",
    )
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    grant_types: list[GrantType] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"], min_length=1
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "offline_access"],
        max_length=scopes.MAX_SCOPE_VALUES,
        description="Scope values the client may ask for: OIDC scopes and permissions "
        "(patterns such as notes:*:read allowed).",
    )
    require_consent: bool = True

    _check_uris = field_validator("redirect_uris")(_uris)
    _check_scopes = field_validator("scopes")(_scope_values)

    @model_validator(mode="after")
    def _consistent(self) -> OAuthClientIn:
        _check_combination(self.client_type, self.grant_types, self.redirect_uris)
        return self


class OAuthClientPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    redirect_uris: list[str] | None = Field(None, max_length=20)
    grant_types: list[GrantType] | None = Field(None, min_length=1)
    scopes: list[str] | None = Field(None, max_length=scopes.MAX_SCOPE_VALUES)
    require_consent: bool | None = None

    _check_uris = field_validator("redirect_uris")(_uris)
    _check_scopes = field_validator("scopes")(_scope_values)


def _check_combination(client_type: str, grant_types: list[str], redirect_uris: list[str]) -> None:
    if client_type == "public" and "client_credentials" in grant_types:
        raise ValueError("a public client cannot use client_credentials (it has no secret)")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValueError("authorization_code needs at least one redirect URI")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise ValueError("refresh_token comes with authorization_code")


class OAuthClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    client_id: str
    name: str
    client_type: Literal["confidential", "public"]
    redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    require_consent: bool
    service_user_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, client: OAuthClient) -> OAuthClientOut:
        data: dict[str, Any] = {
            name: getattr(client, name) for name in cls.model_fields if name != "client_type"
        }
        data["client_type"] = "public" if is_public(client) else "confidential"
        return cls.model_validate(data)


class OAuthClientCreated(OAuthClientOut):
    client_secret: str | None = Field(
        None, description="Shown once, for confidential clients. Store it now."
    )


class SecretOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once. The previous secret stops working.")


def _beyond(principal: Principal, values: list[str]) -> list[str]:
    """Permission scopes the caller does not hold (a client gets no more than its maker)."""
    return [v for v in values if scopes.is_permission(v) and not principal.can(v)]


async def _get(session: AsyncSession, id_or_client_id: str) -> OAuthClient:
    client = await session.scalar(
        select(OAuthClient).where(
            (OAuthClient.id == id_or_client_id) | (OAuthClient.client_id == id_or_client_id)
        )
    )  # the session is scoped to the acting org: other orgs' clients are invisible
    if client is None:
        raise NotFound(f"No OAuth client {id_or_client_id}.")
    return client


def _active(client: OAuthClient) -> None:
    if client.revoked_at is not None:
        raise Conflict("This client is revoked; create a new one.")


async def _service_account(
    session: AsyncSession, client: OAuthClient, *, active: bool
) -> User | None:
    """The service account of a client_credentials client (made when first needed)."""
    account = await session.get(User, client.service_user_id) if client.service_user_id else None
    if account is None and active:
        account = User(
            org_id=client.org_id,
            email=f"{client.client_id}@oauth-clients.nexus.invalid",
            name=client.name,
            kind="service_account",
            status="active",
        )
        session.add(account)
        await session.flush()
        client.service_user_id = account.id
    if account is not None:
        account.status = "active" if active else "deactivated"
    return account


@router.get("", response_model=Page[OAuthClientOut], summary="List OAuth clients")
async def list_clients(
    request: Request,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    include_revoked: bool = Query(False, description="Also list revoked clients."),
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> Page[OAuthClientOut]:
    async with idaas.db.read() as session:
        session.info["org_id"] = await acting_org(request, session, principal)
        stmt = select(OAuthClient)
        if not include_revoked:
            stmt = stmt.where(OAuthClient.revoked_at.is_(None))
        rows = list((await session.scalars(paginate(stmt, OAuthClient.id, cursor, limit))).all())
    items, next_cursor = page_of(rows, limit)
    return Page(items=[OAuthClientOut.of(c) for c in items], next_cursor=next_cursor)


@router.post(
    "",
    response_model=OAuthClientCreated,
    status_code=201,
    summary="Register a client (a confidential client's secret is shown once)",
)
async def create_client(
    body: OAuthClientIn,
    request: Request,
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> OAuthClientCreated:
    beyond = _beyond(principal, body.scopes)
    if beyond:
        raise Forbidden(f"A client cannot have permissions you do not hold: {', '.join(beyond)}.")
    secret, secret_hash = new_secret() if body.client_type == "confidential" else (None, None)
    async with idaas.db.transaction() as session:
        org_id = await acting_org(request, session, principal)
        session.info["org_id"] = org_id
        client = OAuthClient(
            org_id=org_id,
            client_id=new_client_id(),
            name=body.name,
            secret_hash=secret_hash,
            redirect_uris=body.redirect_uris,
            grant_types=list(dict.fromkeys(body.grant_types)),
            scopes=body.scopes,
            require_consent=body.require_consent,
        )
        session.add(client)
        await session.flush()
        if "client_credentials" in client.grant_types:
            await _service_account(session, client, active=True)
        audit.record(
            session,
            "oauth_client.created",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="oauth_client",
            target_id=client.client_id,
            client_type=body.client_type,
            grant_types=client.grant_types,
            scopes=client.scopes,
            redirect_uris=client.redirect_uris,
        )
    out = OAuthClientOut.of(client).model_dump()
    return OAuthClientCreated.model_validate({**out, "client_secret": secret})


@router.get("/{client_ref}", response_model=OAuthClientOut, summary="One OAuth client")
async def get_client(
    client_ref: str,
    request: Request,
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> OAuthClientOut:
    async with idaas.db.read() as session:
        session.info["org_id"] = await acting_org(request, session, principal)
        return OAuthClientOut.of(await _get(session, client_ref))


@router.patch("/{client_ref}", response_model=OAuthClientOut, summary="Change a client")
async def update_client(
    client_ref: str,
    body: OAuthClientPatch,
    request: Request,
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> OAuthClientOut:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in changes):
        raise Problem("Fields cannot be set to null.", status=422, slug="validation-error")
    beyond = _beyond(principal, changes.get("scopes") or [])
    if beyond:
        raise Forbidden(f"A client cannot have permissions you do not hold: {', '.join(beyond)}.")
    async with idaas.db.transaction() as session:
        org_id = await acting_org(request, session, principal)
        session.info["org_id"] = org_id
        client = await _get(session, client_ref)
        _active(client)
        grant_types = list(dict.fromkeys(changes.get("grant_types", client.grant_types)))
        try:
            _check_combination(
                "public" if is_public(client) else "confidential",
                grant_types,
                changes.get("redirect_uris", client.redirect_uris),
            )
        except ValueError as exc:
            raise Problem(f"The client would be inconsistent: {exc}.", status=422) from None
        for name, value in changes.items():
            setattr(client, name, grant_types if name == "grant_types" else value)
        await _service_account(session, client, active="client_credentials" in client.grant_types)
        audit.record(
            session,
            "oauth_client.updated",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="oauth_client",
            target_id=client.client_id,
            changed=sorted(changes),
        )
    return OAuthClientOut.of(client)


@router.post(
    "/{client_ref}/secret",
    response_model=SecretOut,
    summary="Rotate a confidential client's secret (shown once)",
)
async def rotate_secret(
    client_ref: str,
    request: Request,
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> SecretOut:
    async with idaas.db.transaction() as session:
        org_id = await acting_org(request, session, principal)
        session.info["org_id"] = org_id
        client = await _get(session, client_ref)
        _active(client)
        if is_public(client):
            raise Conflict("A public client has no secret.")
        secret, client.secret_hash = new_secret()
        audit.record(
            session,
            "oauth_client.secret_rotated",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="oauth_client",
            target_id=client.client_id,
        )
    return SecretOut(client_id=client.client_id, client_secret=secret)


@router.delete(
    "/{client_ref}", status_code=204, summary="Revoke a client, its tokens and service account"
)
async def revoke_client(
    client_ref: str,
    request: Request,
    principal: Principal = require(PERMISSION),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with idaas.db.transaction() as session:
        org_id = await acting_org(request, session, principal)
        session.info["org_id"] = org_id
        client = await _get(session, client_ref)
        if client.revoked_at is not None:
            raise NotFound(f"No active OAuth client {client_ref}.")
        client.revoked_at = utcnow()
        await _service_account(session, client, active=False)
        sessions = (
            await session.scalars(
                select(Session).where(
                    Session.client_id == client.client_id, Session.revoked_at.is_(None)
                )
            )
        ).all()
        for login in sessions:
            await idaas.issuer.revoke_session(session, login, reason="client_revoked")
        audit.record(
            session,
            "oauth_client.revoked",
            org_id=org_id,
            origin=origin(request),
            actor=principal,
            target_type="oauth_client",
            target_id=client.client_id,
            sessions_ended=len(sessions),
        )
