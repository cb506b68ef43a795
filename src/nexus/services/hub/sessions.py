"""Browser sessions: an opaque HttpOnly cookie, the IDaaS tokens kept server-side.

The cookie carries a random token; the `hub_sessions` row is keyed by its SHA-256 and
holds the access and refresh tokens sealed with the installation's secret. An access
token about to expire is refreshed with the refresh token (rotation), one refresh at a
time per session in this process. A failed refresh ends the session.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from sqlalchemy import delete

from nexus.kernel.crypto import constant_time_equals, seal, token_hash, unseal
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Problem
from nexus.services.hub import api
from nexus.services.hub.models import HubSession

COOKIE = "nexus_hub"
PRE_COOKIE = "nexus_hub_pre"  # before login: the login form's CSRF pair, the MFA step
SEAL_PURPOSE = "hub.session.tokens"
MFA_PURPOSE = "hub.login.mfa"
SESSION_TTL = dt.timedelta(hours=12)
REFRESH_MARGIN = dt.timedelta(seconds=30)
MFA_TTL_S = 300

_locks: dict[str, asyncio.Lock] = {}


class NeedLogin(Exception):
    """No valid session: the page sends the browser to the login form."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Tokens:
    access: str
    refresh: str | None
    expires_in: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> Tokens:
        return cls(body["access_token"], body.get("refresh_token"), int(body["expires_in"]))


def _db(request: Request) -> Any:
    return request.app.state.runtime.db("hub")


def _secret(request: Request) -> str:
    return request.app.state.runtime.settings.secret()  # type: ignore[no-any-return]


def scope_of(access_token: str) -> list[str]:
    """The permissions in a token we just got from IDaaS (display only: the APIs check)."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return []
    scope = claims.get("scope", "")
    granted = scope.split() if isinstance(scope, str) else []
    conditional = claims.get("cg") or []  # e.g. a rep's own deals: shown, the API narrows
    return granted + [g["p"] for g in conditional if isinstance(g, dict) and "p" in g]


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )


# -- before login: CSRF pair and the MFA step -------------------------------------------
def pre_cookie(request: Request) -> str:
    """The random pre-session cookie the login forms' CSRF tokens are bound to."""
    pre = request.cookies.get(PRE_COOKIE) or ""
    return pre if 32 <= len(pre) <= 100 else secrets.token_urlsafe(32)


def login_csrf(pre: str) -> str:
    return token_hash(f"hub-login-csrf:{pre}")


def check_pre_token(request: Request, submitted: str) -> bool:
    pre = request.cookies.get(PRE_COOKIE) or ""
    return 32 <= len(pre) <= 100 and constant_time_equals(login_csrf(pre), submitted)


def seal_mfa(request: Request, mfa_token: str, email: str) -> str:
    data = {"t": mfa_token, "e": email, "at": int(utcnow().timestamp())}
    return seal(_secret(request), MFA_PURPOSE, json.dumps(data))


def open_mfa(request: Request, sealed: str | None) -> dict[str, Any] | None:
    if not sealed:
        return None
    try:
        data = json.loads(unseal(_secret(request), MFA_PURPOSE, sealed))
    except ValueError:
        return None
    if utcnow().timestamp() - int(data.get("at", 0)) > MFA_TTL_S:
        return None
    return data  # type: ignore[no-any-return]


# -- sessions ------------------------------------------------------------------------------
async def start(request: Request, tokens: Tokens) -> tuple[str, HubSession]:
    """Store a session for fresh tokens; returns the cookie value."""
    response = await api.call(request, "idaas", "GET", "/me", token=tokens.access)
    if response.status_code != 200:
        raise api.ApiError.of("idaas", response)
    me = response.json()
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    secret = _secret(request)
    row = HubSession(
        id=token_hash(cookie),
        org_id=me["org"]["id"],
        user_id=me["user"]["id"],
        email=me["user"]["email"],
        name=me["user"]["name"] or "",
        org_name=me["org"]["name"],
        permissions=sorted(set(me["permissions"]) | set(scope_of(tokens.access))),
        mfa_enabled=bool(me["mfa_enabled"]),
        access_sealed=seal(secret, SEAL_PURPOSE, tokens.access),
        refresh_sealed=seal(secret, SEAL_PURPOSE, tokens.refresh) if tokens.refresh else None,
        access_expires_at=now + dt.timedelta(seconds=tokens.expires_in),
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_TTL,
    )
    async with _db(request).transaction() as session:
        session.add(row)
    return cookie, row


async def load(request: Request) -> HubSession | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie or len(cookie) > 100:
        return None
    async with _db(request).read() as session:
        row = await session.get(HubSession, token_hash(cookie))
    if row is None or row.expires_at <= utcnow():
        return None
    return row


async def forget(request: Request, row: HubSession) -> None:
    async with _db(request).transaction() as session:
        await session.execute(delete(HubSession).where(HubSession.id == row.id))
    _locks.pop(row.id, None)


async def access_token(request: Request, row: HubSession, *, force: bool = False) -> str:
    """A valid access token for the session, refreshed when (nearly) expired."""
    if not force and row.access_expires_at - REFRESH_MARGIN > utcnow():
        return unseal(_secret(request), SEAL_PURPOSE, row.access_sealed)
    lock = _locks.setdefault(row.id, asyncio.Lock())
    async with lock:
        async with _db(request).read() as session:
            current = await session.get(HubSession, row.id)
        if current is None:
            raise NeedLogin("Your session has ended. Please log in again.")
        if current.access_sealed != row.access_sealed:  # refreshed meanwhile
            _copy(current, row)
            return unseal(_secret(request), SEAL_PURPOSE, row.access_sealed)
        if not row.refresh_sealed:
            await forget(request, row)
            raise NeedLogin("Your session has expired. Please log in again.")
        refresh = unseal(_secret(request), SEAL_PURPOSE, row.refresh_sealed)
        response = await api.call(
            request, "idaas", "POST", "/auth/refresh", json={"refresh_token": refresh}
        )
        if response.status_code != 200:
            await forget(request, row)
            raise NeedLogin("Your session has expired. Please log in again.")
        tokens = Tokens.of(response.json())
        secret = _secret(request)
        async with _db(request).transaction() as session:
            stored = await session.get(HubSession, row.id)
            if stored is None:
                raise NeedLogin("Your session has ended. Please log in again.")
            stored.access_sealed = seal(secret, SEAL_PURPOSE, tokens.access)
            if tokens.refresh:
                stored.refresh_sealed = seal(secret, SEAL_PURPOSE, tokens.refresh)
            stored.access_expires_at = utcnow() + dt.timedelta(seconds=tokens.expires_in)
            stored.permissions = sorted(scope_of(tokens.access)) or stored.permissions
            _copy(stored, row)
        return tokens.access


async def update(request: Request, row: HubSession, **values: Any) -> None:
    """Change display fields of the session (e.g. after enrolling MFA)."""
    async with _db(request).transaction() as session:
        stored = await session.get(HubSession, row.id)
        if stored is not None:
            for key, value in values.items():
                setattr(stored, key, value)
    for key, value in values.items():
        setattr(row, key, value)


def _copy(source: HubSession, target: HubSession) -> None:
    for name in ("access_sealed", "refresh_sealed", "access_expires_at", "permissions"):
        setattr(target, name, getattr(source, name))


def check_csrf(row: HubSession, submitted: str | None) -> None:
    if not submitted or not constant_time_equals(row.csrf, submitted):
        raise Problem(
            "This form has expired or did not come from this page. Reload the page and try again.",
            status=403,
            slug="csrf",
        )


async def purge_expired(request: Request) -> None:
    async with _db(request).transaction() as session:
        await session.execute(delete(HubSession).where(HubSession.expires_at <= utcnow()))
