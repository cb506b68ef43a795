"""API keys for service accounts: `nxk_<id>_<secret>`, stored hashed, scoped, revocable.

A key acts as its service account with the key's permissions (never more than its
creator holds). Every service accepts them through the kernel's authenticator:
`Authorization: Bearer nxk_...` or `X-API-Key: nxk_...`.
"""

from __future__ import annotations

import datetime as dt
import secrets

from fastapi import Request
from sqlalchemy import select, update

from nexus.kernel.auth import Principal
from nexus.kernel.crypto import constant_time_equals, token_hash
from nexus.kernel.db import Database, utcnow
from nexus.kernel.errors import Unauthorized
from nexus.services.idaas.models import ApiKey, Org, User

PREFIX = "nxk_"
_TOUCH_EVERY = dt.timedelta(minutes=1)


def new_key() -> tuple[str, str, str]:
    """(full key, public prefix, secret hash)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    prefix = f"{PREFIX}{key_id}"
    return f"{prefix}_{secret}", prefix, token_hash(secret)


def presented_key(request: Request) -> str | None:
    header = request.headers.get("x-api-key")
    if header:
        return header.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith(PREFIX):
        return value.strip()
    return None


class ApiKeyAuthenticator:
    """The kernel strategy that turns an API key into a Principal.

    Every request reads the key's row (one indexed lookup), so a revocation takes effect
    at once in every process that runs IDaaS; processes without IDaaS ask it and cache
    the answer briefly (`RemoteApiKeys` in the kernel).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, request: Request) -> Principal | None:
        key = presented_key(request)
        if key is None:
            return None
        principal = await self._lookup(key)
        if principal is None:
            raise Unauthorized("The API key is not valid.")
        return principal

    async def _lookup(self, key: str) -> Principal | None:
        if not key.startswith(PREFIX):
            return None
        key_id, _, secret = key.removeprefix(PREFIX).partition("_")  # the secret may hold "_"
        prefix = f"{PREFIX}{key_id}"
        if not key_id or not secret:
            return None
        now = utcnow()
        async with self.db.read() as session:
            found = (
                await session.execute(
                    select(ApiKey, User)
                    .join(User, User.id == ApiKey.user_id)
                    .join(Org, Org.id == ApiKey.org_id)
                    .where(ApiKey.prefix == prefix, Org.status == "active")
                )
            ).first()
            if found is None:
                return None
            row, user = found
            if not constant_time_equals(row.secret_hash, token_hash(secret)):
                return None
            if row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
                return None
            if user.status != "active":
                return None
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
            async with self.db.transaction() as session:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
                )
        return Principal(
            subject=user.id,
            org_id=row.org_id,
            kind="service_account",
            permissions=frozenset(row.permissions),
            roles=(),
            token_id=row.id,
            claims={"api_key": row.prefix, "attrs": user.attributes},
        )
