"""Sessions, access tokens and refresh tokens.

Access tokens are short-lived JWTs verified locally by every service. Refresh tokens are
opaque, stored hashed, and rotate on use; presenting one that was already used revokes
its whole session (the token family), because only a thief or a replay does that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import permission_matches
from nexus.kernel.config import Settings
from nexus.kernel.crypto import random_token, token_hash
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Unauthorized
from nexus.kernel.ids import new_id
from nexus.services.idaas import audit
from nexus.services.idaas.keys import KeyStore
from nexus.services.idaas.models import Org, RefreshToken, Session, User
from nexus.services.idaas.roles import grants_for
from nexus.services.idaas.settings import IdaasSettings

REFRESH_PREFIX = "nxr_"


@dataclass
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None
    session_id: str
    scope: str

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


class TokenIssuer:
    def __init__(self, keys: KeyStore, settings: Settings, idaas: IdaasSettings) -> None:
        self.keys, self.settings, self.idaas = keys, settings, idaas

    async def access_token(
        self,
        session: AsyncSession,
        user: User,
        *,
        sid: str | None,
        client_id: str | None = None,
        extra_scope: str = "",
        limit_to: set[str] | None = None,
        audience: str | None = None,
    ) -> tuple[str, str]:
        """A signed access token for `user`; returns (token, scope).

        With `limit_to` (a third-party client's requested permissions) the token carries
        only those of them the user holds (wildcard grants included), and no role names,
        attributes or conditional grants: the client gets what was consented, no more."""
        grants = await grants_for(session, user)
        if limit_to is None:
            permissions = set(grants.permissions)
        else:
            permissions = {
                p for p in limit_to if any(permission_matches(g, p) for g in grants.permissions)
            }
        scope = " ".join(sorted(permissions | set(extra_scope.split()) - {""}))
        now = int(utcnow().timestamp())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer(),
            "sub": user.id,
            "aud": audience or self.settings.jwt_audience,
            "iat": now,
            "exp": now + self.idaas.access_token_ttl_s,
            "jti": new_id(),
            "org_id": user.org_id,
            "roles": grants.roles if limit_to is None else [],
            "scope": scope,
            "kind": user.kind,
        }
        if sid:
            claims["sid"] = sid
        if client_id:
            claims["client_id"] = client_id
        if grants.conditional and limit_to is None:
            claims["cg"] = [g.to_claim() for g in grants.conditional]
        if user.attributes and limit_to is None:
            claims["attrs"] = user.attributes
        return await self.keys.sign(claims, typ="at+jwt"), scope

    async def start_session(
        self,
        session: AsyncSession,
        user: User,
        *,
        origin: audit.Origin,
        mfa: bool,
        client_id: str | None = None,
        scope: str = "",
    ) -> TokenPair:
        now = utcnow()
        login = Session(
            org_id=user.org_id,
            user_id=user.id,
            client_id=client_id,
            ip=origin.ip,
            user_agent=origin.user_agent,
            mfa=mfa,
            scope=scope,
            expires_at=now + dt.timedelta(seconds=self.idaas.session_ttl_s),
        )
        session.add(login)
        await session.flush()
        user.last_login_at = now
        return await self._pair(session, user, login)

    async def _pair(self, session: AsyncSession, user: User, login: Session) -> TokenPair:
        refresh = random_token(REFRESH_PREFIX)
        session.add(
            RefreshToken(
                org_id=user.org_id,
                token_hash=token_hash(refresh),
                session_id=login.id,
                expires_at=min(
                    login.expires_at,
                    utcnow() + dt.timedelta(seconds=self.idaas.refresh_token_ttl_s),
                ),
            )
        )
        access, scope = await self.access_token(
            session, user, sid=login.id, client_id=login.client_id, extra_scope=login.scope
        )
        return TokenPair(access, self.idaas.access_token_ttl_s, refresh, login.id, scope)

    async def refresh(
        self,
        session: AsyncSession,
        presented: str,
        *,
        origin: audit.Origin,
        client_id: str | None = None,
    ) -> TokenPair | Unauthorized:
        """Rotate a refresh token. A reused one revokes its family (the revocation must be
        committed, so the refusal is returned for the caller to raise after commit)."""
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash(presented))
        )
        if row is None:
            raise Unauthorized("The refresh token is not valid.", slug="invalid-grant")
        login = await session.get(Session, row.session_id)
        assert login is not None
        now = utcnow()
        if login.client_id != client_id:  # first-party (None) and each client keep to their own
            raise Unauthorized(
                "The refresh token was issued to another client.", slug="invalid-grant"
            )
        if login.revoked_at is not None:  # logged out or revoked: ended, not stolen
            raise Unauthorized("The session has ended; log in again.", slug="invalid-grant")
        org = await session.get(Org, login.org_id)
        if org is None or org.status != "active":
            raise Unauthorized("The organization is suspended.", slug="invalid-grant")
        claimed = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 0:  # type: ignore[attr-defined]
            await self.revoke_session(session, login, reason="refresh_token_reuse")
            audit.record(
                session,
                "auth.refresh.reuse_detected",
                org_id=login.org_id,
                origin=origin,
                actor_id=login.user_id,
                actor_type="user",
                target_type="session",
                target_id=login.id,
                result="failure",
            )
            return ReuseDetected("The refresh token was already used; the session is revoked.")
        if login.revoked_at is not None or login.expires_at <= now or row.expires_at <= now:
            raise Unauthorized("The session has ended; log in again.", slug="invalid-grant")
        user = await session.get(User, login.user_id)
        if user is None or user.status != "active":
            raise Unauthorized("The account is not active.", slug="invalid-grant")
        login.last_seen_at = now
        return await self._pair(session, user, login)

    async def revoke_session(self, session: AsyncSession, login: Session, *, reason: str) -> None:
        if login.revoked_at is None:
            login.revoked_at = utcnow()
            login.revoked_reason = reason
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id == login.id, RefreshToken.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )


class ReuseDetected(Unauthorized):
    slug = "refresh-token-reused"
