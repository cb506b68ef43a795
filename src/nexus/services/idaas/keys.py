"""Token signing keys: ES256, stored sealed, published as JWKS, rotated without downtime."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import or_, select, update

from nexus.kernel.auth import KeyProvider
from nexus.kernel.crypto import seal, unseal
from nexus.kernel.db import Database, utcnow
from nexus.kernel.ids import new_id
from nexus.services.idaas.models import SigningKey

PURPOSE = "idaas.signing-key"


class KeyStore:
    """The org-independent signing keys of this installation."""

    def __init__(self, db: Database, secret: str) -> None:
        self.db, self.secret = db, secret
        self._active: tuple[str, ECKey] | None = None
        self._jwks: dict[str, Any] | None = None
        self._loaded = 0.0
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        async with self.db.read() as session:
            now = utcnow()
            rows = (
                await session.scalars(
                    select(SigningKey)
                    .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now))
                    .order_by(SigningKey.created_at.desc())
                )
            ).all()
        active = next((r for r in rows if r.retired_at is None), None)
        if active is None:
            # The first key. Nothing is retired: when two processes start together on a
            # new database both make one, both stay published, and all sign with the
            # newest once they reload.
            await self.rotate(retire_after_s=None)
            return
        private = ECKey.import_key(json.loads(unseal(self.secret, PURPOSE, active.private_sealed)))
        self._active = (active.kid, private)
        self._jwks = {"keys": [r.public_jwk for r in rows]}
        self._loaded = time.monotonic()

    async def refresh(self, max_age_s: float = 60) -> None:
        if self._active is None or time.monotonic() - self._loaded > max_age_s:
            async with self._lock:
                if self._active is None or time.monotonic() - self._loaded > max_age_s:
                    await self._load()

    async def signing_key(self) -> tuple[str, ECKey]:
        await self.refresh()
        assert self._active is not None
        return self._active

    async def jwks(self) -> dict[str, Any]:
        await self.refresh()
        assert self._jwks is not None
        return self._jwks

    async def rotate(self, *, retire_after_s: int | None) -> str:
        """Make a new active key; the old ones stay published for `retire_after_s`
        (None: the old ones are not retired at all)."""
        kid = new_id()
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": "ES256"})
        now = utcnow()
        async with self.db.transaction() as session:
            if retire_after_s is not None:
                await session.execute(
                    update(SigningKey)
                    .where(SigningKey.retired_at.is_(None))
                    .values(
                        retired_at=now, publish_until=now + dt.timedelta(seconds=retire_after_s)
                    )
                )
            session.add(
                SigningKey(
                    kid=kid,
                    private_sealed=seal(
                        self.secret, PURPOSE, json.dumps(key.as_dict(private=True))
                    ),
                    public_jwk=key.as_dict(private=False),
                )
            )
        await self._load()
        return kid

    async def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        kid, key = await self.signing_key()
        return jwt.encode({"alg": "ES256", "kid": kid, "typ": typ}, claims, key)


class LocalKeys(KeyProvider):
    """The kernel's verifier reads keys straight from the key store (same process)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def keyset(self, kid: str | None) -> KeySet:
        jwks = await self.store.jwks()
        if kid and not any(k.get("kid") == kid for k in jwks["keys"]):
            await self.store.refresh(max_age_s=5)  # rotated by another process?
            jwks = await self.store.jwks()
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
