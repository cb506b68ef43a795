"""Token introspection (RFC 7662) and revocation (RFC 7009), which agree with each other.

An access token is active when its signature and claims verify, its session (`sid`) is
live, its client is not revoked, and it was not revoked itself. Revoking an access token
ends its session when it has one (with every token of it, as RFC 7009 allows) and, for
tokens without a session (client credentials), puts its `jti` on a deny list until it
expires: in Redis when configured (shared by every process), else in this process. A
refresh token is active while it is unused and its session is live; revoking it ends
its session. A client sees only tokens of its own org; a refresh token only its own.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import TokenVerifier
from nexus.kernel.crypto import token_hash
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Unauthorized
from nexus.kernel.ratelimit import client_ip, enforce
from nexus.kernel.runtime import Runtime
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas
from nexus.services.idaas.keys import LocalKeys
from nexus.services.idaas.models import OAuthClient, RefreshToken, Session, User
from nexus.services.idaas.oidc.clients import authenticate, find_client, presented, single
from nexus.services.idaas.oidc.errors import NO_STORE, OAuthError
from nexus.services.idaas.oidc.grants import read_form
from nexus.services.idaas.tokens import REFRESH_PREFIX

INACTIVE: dict[str, Any] = {"active": False}


class RevokedTokens:
    """Revoked access-token ids until the tokens would have expired anyway."""

    def __init__(self, redis: Any = None, prefix: str = "nexus:idaas:revoked-jti") -> None:
        self.redis, self.prefix = redis, prefix
        self._local: dict[str, float] = {}

    async def add(self, jti: str, exp: float) -> None:
        ttl = int(exp - time.time()) + 60  # + the verifier's leeway
        if ttl <= 0:
            return
        if self.redis is not None:
            await self.redis.set(f"{self.prefix}:{jti}", "1", ex=ttl)
            return
        now = time.time()
        self._local = {k: v for k, v in self._local.items() if v > now}
        self._local[jti] = now + ttl

    async def contains(self, jti: str | None) -> bool:
        if not jti:
            return False
        if self.redis is not None:
            return bool(await self.redis.exists(f"{self.prefix}:{jti}"))
        return self._local.get(jti, 0) > time.time()


def revoked_tokens(runtime: Runtime) -> RevokedTokens:
    found = runtime.state.get("idaas_revoked_tokens")
    if found is None:
        found = runtime.state["idaas_revoked_tokens"] = RevokedTokens(runtime.redis)
    return found  # type: ignore[no-any-return]


def verifier(idaas: Idaas) -> TokenVerifier:
    """Verifies IDaaS's own access tokens (and nothing another issuer signed). No leeway:
    the issuer's own clock decides when its tokens expire."""
    found = idaas.runtime.state.get("idaas_oidc_verifier")
    if found is None:
        found = idaas.runtime.state["idaas_oidc_verifier"] = TokenVerifier(
            LocalKeys(idaas.keys),
            issuer=idaas.settings.issuer(),
            audience=idaas.settings.jwt_audience,
            leeway_s=0,
        )
    return found  # type: ignore[no-any-return]


async def access_claims(idaas: Idaas, token: str) -> dict[str, Any] | None:
    """The claims of a valid, unrevoked IDaaS access token (signature and claims only)."""
    if token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        claims = await verifier(idaas).verify(token)
    except Unauthorized:
        return None
    if await revoked_tokens(idaas.runtime).contains(claims.get("jti")):
        return None
    return claims


async def session_live(session: AsyncSession, sid: str | None, org_id: str) -> bool:
    if not sid:
        return True
    login = await session.get(Session, sid)
    return (
        login is not None
        and login.org_id == org_id
        and login.revoked_at is None
        and login.expires_at > utcnow()
    )


async def access_active(session: AsyncSession, claims: dict[str, Any]) -> bool:
    """Still good beyond its signature: live session, client and account."""
    org_id = str(claims["org_id"])
    if not await session_live(session, claims.get("sid"), org_id):
        return False
    client_id = claims.get("client_id")
    if client_id and await find_client(session, str(client_id)) is None:
        return False
    if not claims.get("sid"):  # no session to end: the account itself must be active
        user = await session.get(User, str(claims["sub"]))
        if user is None or user.status != "active" or user.org_id != org_id:
            return False
    return True


async def _refresh_row(session: AsyncSession, token: str) -> tuple[RefreshToken, Session] | None:
    if not token.startswith(REFRESH_PREFIX) or len(token) > 200:
        return None
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash(token))
    )
    if row is None:
        return None
    login = await session.get(Session, row.session_id)
    return (row, login) if login is not None else None


async def introspect(
    session: AsyncSession, idaas: Idaas, client: OAuthClient, token: str
) -> dict[str, Any]:
    claims = await access_claims(idaas, token)
    if claims is not None:
        if claims.get("org_id") != client.org_id or not await access_active(session, claims):
            return INACTIVE
        out = {
            "active": True,
            "token_type": "Bearer",
            "scope": claims.get("scope", ""),
            "client_id": claims.get("client_id"),
            "sub": claims.get("sub"),
            "aud": claims.get("aud"),
            "iss": claims.get("iss"),
            "exp": claims.get("exp"),
            "iat": claims.get("iat"),
            "jti": claims.get("jti"),
            "org_id": claims.get("org_id"),
            "sid": claims.get("sid"),
        }
        user = await session.get(User, str(claims["sub"]))
        if user is not None and user.kind == "user":
            out["username"] = user.email
        return {k: v for k, v in out.items() if v is not None}
    found = await _refresh_row(session, token)
    if found is None:
        return INACTIVE
    row, login = found
    now = utcnow()
    if (
        login.client_id != client.client_id  # a refresh token is its client's business only
        or row.used_at is not None
        or row.expires_at <= now
        or login.revoked_at is not None
        or login.expires_at <= now
    ):
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": login.scope,
        "client_id": login.client_id,
        "sub": login.user_id,
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.created_at.timestamp()),
        "org_id": login.org_id,
        "sid": login.id,
    }


async def revoke(
    session: AsyncSession, idaas: Idaas, client: OAuthClient, token: str, origin: audit.Origin
) -> None:
    """Revoke a token of this client; anything else is quietly ignored (RFC 7009 §2.2)."""
    claims = await access_claims(idaas, token)
    if claims is not None:
        if claims.get("client_id") != client.client_id or claims.get("org_id") != client.org_id:
            return
        sid = claims.get("sid")
        await revoked_tokens(idaas.runtime).add(str(claims.get("jti")), float(claims["exp"]))
        if sid:
            login = await session.get(Session, sid)
            if login is not None and login.client_id == client.client_id:
                await idaas.issuer.revoke_session(session, login, reason="token_revoked")
        _audit(session, client, origin, "access_token", sid)
        return
    found = await _refresh_row(session, token)
    if found is None:
        return
    _row, login = found
    if login.client_id != client.client_id:
        return
    await idaas.issuer.revoke_session(session, login, reason="token_revoked")
    _audit(session, client, origin, "refresh_token", login.id)


def _audit(
    session: AsyncSession,
    client: OAuthClient,
    origin: audit.Origin,
    kind: str,
    sid: str | None,
) -> None:
    audit.record(
        session,
        "oauth.token.revoked",
        org_id=client.org_id,
        origin=origin,
        actor_id=client.client_id,
        actor_type="client",
        target_type="session" if sid else "oauth_client",
        target_id=sid or client.client_id,
        token_kind=kind,
    )


# -- the endpoints ----------------------------------------------------------------------------
async def _client_request(request: Request, idaas: Idaas, name: str) -> tuple[str, Any]:
    form = await read_form(request)
    creds = presented(request, form)
    await enforce(
        request,
        f"idaas.oauth.{name}",
        f"{(creds.client_id or '-')[:64]}|{client_ip(request)}",
        limit=idaas.idaas.token_rate_per_minute,
        per_s=60,
    )
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required.")
    return token, creds


async def introspection_endpoint(request: Request, idaas: Idaas) -> Response:
    try:
        token, creds = await _client_request(request, idaas, "introspect")
        async with idaas.db.read() as session:
            client = await authenticate(session, creds, allow_public=False)
            body = await introspect(session, idaas, client, token)
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


async def revocation_endpoint(request: Request, idaas: Idaas) -> Response:
    try:
        token, creds = await _client_request(request, idaas, "revoke")
        async with idaas.db.transaction() as session:
            client = await authenticate(session, creds, allow_public=True)
            await revoke(session, idaas, client, token, audit.Origin.of(request))
    except OAuthError as exc:
        return exc.response()
    return Response(status_code=200, headers=NO_STORE)
