"""The token endpoint: authorization_code (with PKCE), refresh_token, client_credentials.

Access tokens are the ordinary IDaaS access tokens (every service verifies them), with
`client_id` set and a scope narrowed to what was asked for and is held: the OIDC scope
values, and the requested permissions that the user holds (for a client acting as its
service account: that the client was allowed). A token session (`Session` with the
client's id) is started per code; refresh tokens rotate through `TokenIssuer.refresh`,
which also detects reuse. A code presented twice revokes the session it produced.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from nexus.kernel.crypto import constant_time_equals, token_hash
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Unauthorized
from nexus.kernel.ratelimit import client_ip, enforce
from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas
from nexus.services.idaas.models import AuthorizationCode, OAuthClient, RefreshToken, Session, User
from nexus.services.idaas.oidc import scopes
from nexus.services.idaas.oidc.clients import (
    GRANT_TYPES,
    Presented,
    authenticate,
    find_client,
    presented,
    single,
)
from nexus.services.idaas.oidc.errors import (
    NO_STORE,
    OAuthError,
    invalid_grant,
    invalid_request,
)
from nexus.services.idaas.roles import grants_for

log = structlog.get_logger("nexus.idaas.oidc")

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


@dataclass
class Ctx:
    request: Request
    idaas: Idaas
    form: FormData

    @property
    def origin(self) -> audit.Origin:
        return audit.Origin.of(self.request)


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid_request("Send the parameters as application/x-www-form-urlencoded.")
    try:
        return await request.form(max_files=0, max_fields=100)
    except Exception:
        raise invalid_request("The form body could not be read.") from None


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _half_hash(token: str) -> str:
    """`at_hash`: the left half of the SHA-256 of the access token (ES256)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


async def scoped_access_token(
    session: AsyncSession,
    idaas: Idaas,
    user: User,
    *,
    sid: str | None,
    client_id: str,
    scope: list[str],
) -> tuple[str, str]:
    """An access token carrying the OIDC values of `scope` and the permissions in it that
    the user holds now; returns (token, granted scope)."""
    grants = await grants_for(session, user)
    held = scopes.permissions_held(scope, grants.permissions)
    oidc = [v for v in scope if not scopes.is_permission(v)]
    return await idaas.issuer.access_token(
        session,
        user,
        sid=sid,
        client_id=client_id,
        extra_scope=scopes.join(oidc + held),
        limit_to=set(),
    )


async def id_token(
    idaas: Idaas,
    *,
    user: User,
    client_id: str,
    scope: list[str],
    sid: str,
    auth_time: int,
    nonce: str | None,
    access_token: str,
    mfa: bool,
) -> str:
    now = int(utcnow().timestamp())
    claims: dict[str, Any] = {
        "iss": idaas.settings.issuer(),
        "sub": user.id,
        "aud": client_id,
        "iat": now,
        "exp": now + idaas.idaas.access_token_ttl_s,
        "auth_time": auth_time,
        "sid": sid,
        "at_hash": _half_hash(access_token),
        "amr": ["pwd", "mfa"] if mfa else ["pwd"],
        "org_id": user.org_id,
    }
    if nonce:
        claims["nonce"] = nonce
    claims.update(user_claims(user, scope))
    return await idaas.keys.sign(claims, typ="JWT")


def user_claims(user: User, scope: list[str]) -> dict[str, Any]:
    """The claims about the user that the scope values release."""
    claims: dict[str, Any] = {}
    if "email" in scope:
        # IDaaS has no e-mail verification yet: nothing proves the address is the user's.
        claims.update(email=user.email, email_verified=False)
    if "profile" in scope:
        claims.update(name=user.name or None, org_id=user.org_id)
    return {k: v for k, v in claims.items() if v is not None}


def _body(access: str, scope: str, idaas: Idaas) -> dict[str, Any]:
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": idaas.idaas.access_token_ttl_s,
        "scope": scope,
    }


# -- grants -----------------------------------------------------------------------------------
# A grant returns the response body, or an OAuthError to answer after its transaction
# commits (a replayed code or refresh token revokes tokens: that must stick); it raises
# an OAuthError to answer with nothing changed.
Outcome = dict[str, Any] | OAuthError
Grant = Callable[[Ctx, AsyncSession, OAuthClient], Awaitable[Outcome]]


async def authorization_code(ctx: Ctx, session: AsyncSession, client: OAuthClient) -> Outcome:
    code = single(ctx.form, "code")
    redirect_uri = single(ctx.form, "redirect_uri")
    verifier = single(ctx.form, "code_verifier")
    if not code:
        raise invalid_request("code is required.")
    row = await session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == token_hash(code))
    )
    if row is None or row.client_id != client.client_id:
        raise invalid_grant("The code is not valid.")
    now = utcnow()
    claimed = await session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        return await _replayed(ctx, session, client, row)
    # From here on the code is spent, whatever the outcome.
    if row.expires_at <= now:
        return invalid_grant("The code has expired.")
    if redirect_uri != row.redirect_uri:
        return invalid_grant("redirect_uri does not match the authorization request.")
    if not verifier or not VERIFIER.match(verifier):
        return invalid_grant("A code_verifier (43 to 128 characters) is required.")
    if not constant_time_equals(s256(verifier), row.code_challenge):
        return invalid_grant("The code_verifier does not match the code_challenge (PKCE).")
    browser = await session.get(Session, row.session_id) if row.session_id else None
    if browser is None or browser.revoked_at is not None or browser.expires_at <= now:
        return invalid_grant("The sign-in session has ended.")
    user = await session.get(User, row.user_id)
    if user is None or user.status != "active" or user.org_id != client.org_id:
        return invalid_grant("The account is not active.")
    granted = scopes.split(row.scope)
    pair = await ctx.idaas.issuer.start_session(
        session,
        user,
        origin=ctx.origin,
        mfa=browser.mfa,
        client_id=client.client_id,
        scope=row.scope,
    )
    await session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == row.id)
        .values(issued_session_id=pair.session_id)
        .execution_options(synchronize_session=False)
    )
    access, scope = await scoped_access_token(
        session, ctx.idaas, user, sid=pair.session_id, client_id=client.client_id, scope=granted
    )
    body = _body(access, scope, ctx.idaas)
    if "offline_access" in granted and "refresh_token" in client.grant_types:
        body["refresh_token"] = pair.refresh_token
    else:  # the session's first refresh token is not handed out: spend it
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id == pair.session_id)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
    if "openid" in granted:
        body["id_token"] = await id_token(
            ctx.idaas,
            user=user,
            client_id=client.client_id,
            scope=granted,
            sid=pair.session_id,
            auth_time=int(browser.created_at.timestamp()),
            nonce=row.nonce,
            access_token=access,
            mfa=browser.mfa,
        )
    audit.record(
        session,
        "oauth.token.issued",
        org_id=client.org_id,
        origin=ctx.origin,
        actor_id=user.id,
        actor_type="user",
        target_type="oauth_client",
        target_id=client.client_id,
        grant_type="authorization_code",
        session_id=pair.session_id,
    )
    return body


async def _replayed(
    ctx: Ctx, session: AsyncSession, client: OAuthClient, row: AuthorizationCode
) -> OAuthError:
    """A spent code again: only a thief or a replay does this; end what it gave."""
    issued = await session.scalar(
        select(AuthorizationCode.issued_session_id).where(AuthorizationCode.id == row.id)
    )
    if issued:
        login = await session.get(Session, issued)
        if login is not None:
            await ctx.idaas.issuer.revoke_session(session, login, reason="code_reuse")
    audit.record(
        session,
        "oauth.code.reused",
        org_id=client.org_id,
        origin=ctx.origin,
        actor_id=client.client_id,
        actor_type="client",
        target_type="session",
        target_id=issued,
        result="failure",
    )
    return invalid_grant("The code was already used; the tokens issued for it are revoked.")


async def refresh_token(ctx: Ctx, session: AsyncSession, client: OAuthClient) -> Outcome:
    presented_token = single(ctx.form, "refresh_token")
    if not presented_token:
        raise invalid_request("refresh_token is required.")
    try:
        outcome = await ctx.idaas.issuer.refresh(
            session, presented_token, origin=ctx.origin, client_id=client.client_id
        )
    except Unauthorized as exc:
        raise invalid_grant(exc.detail) from None
    if isinstance(outcome, Unauthorized):  # reuse: the family is revoked, keep that
        return invalid_grant(outcome.detail)
    login = await session.get(Session, outcome.session_id)
    assert login is not None
    user = await session.get(User, login.user_id)
    if user is None or user.org_id != client.org_id:
        raise invalid_grant("The refresh token is not valid.")
    granted = scopes.split(login.scope)
    asked = scopes.split(single(ctx.form, "scope"))
    if asked:
        beyond = [v for v in asked if v not in granted]
        if beyond:
            raise OAuthError("invalid_scope", f"Not granted before: {' '.join(beyond[:10])}.")
        granted = asked
    access, scope = await scoped_access_token(
        session, ctx.idaas, user, sid=login.id, client_id=client.client_id, scope=granted
    )
    body = _body(access, scope, ctx.idaas)
    body["refresh_token"] = outcome.refresh_token
    return body


async def client_credentials(ctx: Ctx, session: AsyncSession, client: OAuthClient) -> Outcome:
    allowed = [v for v in client.scopes if scopes.is_permission(v)]
    asked = scopes.split(single(ctx.form, "scope"))
    if asked:
        refused = [
            v for v in asked if not scopes.is_permission(v) or not scopes.allowed(v, allowed)
        ]
        if refused:
            raise OAuthError("invalid_scope", f"Not allowed: {' '.join(refused[:10])}.")
    granted = asked or allowed
    account = await session.get(User, client.service_user_id) if client.service_user_id else None
    if account is None or account.status != "active" or account.org_id != client.org_id:
        raise OAuthError("unauthorized_client", "This client has no active service account.")
    access, scope = await ctx.idaas.issuer.access_token(
        session,
        account,
        sid=None,
        client_id=client.client_id,
        extra_scope=scopes.join(granted),
        limit_to=set(),
    )
    audit.record(
        session,
        "oauth.token.issued",
        org_id=client.org_id,
        origin=ctx.origin,
        actor_id=client.client_id,
        actor_type="client",
        target_type="oauth_client",
        target_id=client.client_id,
        grant_type="client_credentials",
    )
    return _body(access, scope, ctx.idaas)


GRANTS: dict[str, Grant] = {
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    "client_credentials": client_credentials,
}


# -- the endpoint -----------------------------------------------------------------------------
async def token_endpoint(request: Request, idaas: Idaas) -> Response:
    creds: Presented | None = None
    grant_type: str | None = None
    try:
        form = await read_form(request)
        creds = presented(request, form)
        await enforce(
            request,
            "idaas.oauth.token",
            f"{(creds.client_id or '-')[:64]}|{client_ip(request)}",
            limit=idaas.idaas.token_rate_per_minute,
            per_s=60,
        )
        grant_type = single(form, "grant_type")
        if grant_type is None:
            raise invalid_request("grant_type is required.")
        if grant_type not in GRANT_TYPES:
            raise OAuthError("unsupported_grant_type", f"{grant_type[:50]} is not supported.")
        ctx = Ctx(request, idaas, form)
        async with idaas.db.transaction() as session:
            client = await authenticate(
                session, creds, allow_public=grant_type != "client_credentials"
            )
            if grant_type not in client.grant_types:
                raise OAuthError(
                    "unauthorized_client", f"This client may not use the {grant_type} grant."
                )
            outcome = await GRANTS[grant_type](ctx, session, client)
    except OAuthError as exc:
        outcome = exc
    if isinstance(outcome, OAuthError):
        await _record_failure(request, idaas, creds, grant_type, outcome)
        return outcome.response()
    return JSONResponse(outcome, headers=NO_STORE)


async def _record_failure(
    request: Request,
    idaas: Idaas,
    creds: Presented | None,
    grant_type: str | None,
    error: OAuthError,
) -> None:
    """Audit a refused token request of a known client (in its org's log)."""
    log.info(
        "oidc.token.refused",
        error=error.error,
        grant_type=grant_type,
        client_id=creds.client_id if creds else None,
    )
    if creds is None or not creds.client_id:
        return
    async with idaas.db.transaction() as session:
        client = await find_client(session, creds.client_id)
        if client is None:
            return
        audit.record(
            session,
            "oauth.token.failed",
            org_id=client.org_id,
            origin=audit.Origin.of(request),
            actor_id=client.client_id,
            actor_type="client",
            target_type="oauth_client",
            target_id=client.client_id,
            result="failure",
            grant_type=grant_type,
            error=error.error,
            reason=error.description,
        )
