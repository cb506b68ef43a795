"""Who is calling, and may they: principals, permission matching, token verification.

Access tokens are JWTs signed by IDaaS with an asymmetric key (`kid` in the header);
every service verifies them locally against a cached JWKS, with no call to IDaaS per
request. Other credentials (API keys) are checked by `Authenticator` strategies that
a service such as IDaaS registers at start-up.

Routes declare what they need with `require("vas:message:send")`; the dependency
returns the `Principal` and binds its org to the request's logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi import Depends, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from nexus.kernel.errors import Forbidden, Unauthorized

log = structlog.get_logger("nexus.auth")

ALGORITHMS = ["ES256", "EdDSA", "Ed25519"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller acting in one org."""

    subject: str
    org_id: str
    kind: str = "user"  # user | service_account | client
    permissions: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    session_id: str | None = None
    token_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def can(self, permission: str) -> bool:
        return any(permission_matches(granted, permission) for granted in self.permissions)


def permission_matches(granted: str, wanted: str) -> bool:
    """`vas:*:send` grants `vas:message:send`; `*` alone grants everything."""
    if granted in {"*", wanted}:
        return True
    g, w = granted.split(":"), wanted.split(":")
    if len(g) != len(w):
        return (
            len(g) < len(w)
            and g[-1] == "*"
            and all(a in {"*", b} for a, b in zip(g, w, strict=False))
        )
    return all(a in {"*", b} for a, b in zip(g, w, strict=True))


# -- keys --------------------------------------------------------------------------------
class KeyProvider:
    """Where the verifier gets public keys: a static set, or a JWKS URL with a cache."""

    async def keyset(self, kid: str | None) -> KeySet:
        raise NotImplementedError


class StaticKeys(KeyProvider):
    def __init__(self, jwks: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        self._jwks = jwks

    async def keyset(self, kid: str | None) -> KeySet:
        data = self._jwks() if callable(self._jwks) else self._jwks
        return KeySet.import_key_set(data)  # type: ignore[arg-type]


class RemoteJWKS(KeyProvider):
    """Fetches a JWKS URL, keeps it `ttl_s`, and refetches early (at most every
    `min_refresh_s`) when a token names a key it has not seen, e.g. after rotation."""

    def __init__(self, url: str, *, ttl_s: float = 300, min_refresh_s: float = 10) -> None:
        self.url, self.ttl_s, self.min_refresh_s = url, ttl_s, min_refresh_s
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def keyset(self, kid: str | None) -> KeySet:
        now = time.monotonic()
        stale = self._keys is None or now - self._fetched > self.ttl_s
        unknown = (
            kid is not None and kid not in self._kids and now - self._fetched > self.min_refresh_s
        )
        if stale or unknown:
            async with self._lock:
                if self._keys is None or time.monotonic() - self._fetched > self.min_refresh_s:
                    await self._fetch()
        assert self._keys is not None
        return self._keys

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            data = response.json()
        self._keys = KeySet.import_key_set(data)
        self._kids = {k.get("kid") for k in data.get("keys", []) if k.get("kid")}
        self._fetched = time.monotonic()


class TokenVerifier:
    """Verifies access tokens locally; verified tokens are cached until they expire."""

    def __init__(
        self,
        keys: KeyProvider,
        *,
        issuer: str | None,
        audience: str | None,
        leeway_s: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        self.keys, self.issuer, self.audience, self.leeway_s = keys, issuer, audience, leeway_s
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> dict[str, Any]:
        cache_key = hashlib.blake2b(token.encode(), digest_size=20).hexdigest()
        hit = self._cache.get(cache_key)
        now = time.time()
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(cache_key)
            return hit[1]
        try:
            kid = _peek_kid(token)
            keyset = await self.keys.keyset(kid)
            decoded = jwt.decode(token, keyset, algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise Unauthorized(f"The access token is not valid ({_reason(exc)}).") from None
        except httpx.HTTPError:
            raise Unauthorized("The token's signing keys could not be fetched.") from None
        claims = decoded.claims
        self._check_claims(claims, now)
        self._cache[cache_key] = (float(claims["exp"]), claims)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + self.leeway_s < now:
            raise Unauthorized("The access token has expired.")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - self.leeway_s > now:
            raise Unauthorized("The access token is not valid yet.")
        if self.issuer and claims.get("iss") != self.issuer:
            raise Unauthorized("The access token was issued by someone else.")
        if self.audience:
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if self.audience not in audiences:
                raise Unauthorized("The access token is for another audience.")
        if not claims.get("sub") or not claims.get("org_id"):
            raise Unauthorized("The access token has no subject or org.")

    def forget(self) -> None:
        self._cache.clear()


def _peek_kid(token: str) -> str | None:
    import base64
    import json

    header = token.split(".", 1)[0]
    padded = header + "=" * (-len(header) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded)).get("kid")
    except Exception:
        raise ValueError("malformed token") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "description", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")[:120]


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope") or ""
    perms = scope.split() if isinstance(scope, str) else list(scope)
    return Principal(
        subject=str(claims["sub"]),
        org_id=str(claims["org_id"]),
        kind=str(claims.get("typ_principal") or claims.get("kind") or "user"),
        permissions=frozenset(p for p in perms if ":" in p or p == "*"),
        roles=tuple(claims.get("roles") or ()),
        session_id=claims.get("sid"),
        token_id=claims.get("jti"),
        claims=claims,
    )


class RemoteApiKeys:
    """API keys checked by the IDaaS of another process (`NEXUS_IDAAS_URL`): the key asks
    IDaaS who it is (`GET /api/v1/me`); answers are cached for `ttl_s`."""

    def __init__(self, idaas_url: str, *, ttl_s: float = 5) -> None:
        self.url = idaas_url.rstrip("/") + "/api/v1/me"
        self.ttl_s = ttl_s
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()

    async def __call__(self, request: Request) -> Principal | None:
        key = request.headers.get("x-api-key") or ""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if not key and scheme.lower() == "bearer" and value.strip().startswith("nxk_"):
            key = value.strip()
        if not key:
            return None
        cache_key = hashlib.blake2b(key.encode(), digest_size=20).hexdigest()
        hit = self._cache.get(cache_key)
        if hit is None or hit[0] < time.monotonic():
            hit = (time.monotonic() + self.ttl_s, await self._ask(key))
            self._cache[cache_key] = hit
            if len(self._cache) > 10_000:
                self._cache.popitem(last=False)
        if hit[1] is None:
            raise Unauthorized("The API key is not valid.")
        return hit[1]

    async def _ask(self, key: str) -> Principal | None:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(self.url, headers={"x-api-key": key})
        except httpx.HTTPError:
            raise Unauthorized(
                "Identity service unreachable; the API key cannot be checked."
            ) from None
        if response.status_code != 200:
            return None
        me = response.json()
        user = me["user"]
        return Principal(
            subject=user["id"],
            org_id=user["org_id"],
            kind=user.get("kind", "service_account"),
            permissions=frozenset(me.get("permissions", [])),
            roles=tuple(me.get("roles", [])),
            claims={"attrs": user.get("attributes", {})},
        )


# -- authentication of requests -------------------------------------------------------------
Strategy = Callable[[Request], Awaitable[Principal | None]]


class Authenticator:
    """Tries bearer JWTs first, then the strategies services registered (API keys...)."""

    def __init__(self, verifier: TokenVerifier | None = None) -> None:
        self.verifier = verifier
        self.strategies: list[Strategy] = []

    def add_strategy(self, strategy: Strategy) -> None:
        self.strategies.append(strategy)

    async def authenticate(self, request: Request) -> Principal:
        cached = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        principal: Principal | None = None
        auth = request.headers.get("authorization", "")
        scheme, _, credentials = auth.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials.count(".") == 2 and self.verifier:
            principal = principal_from_claims(await self.verifier.verify(credentials))
        else:
            for strategy in self.strategies:
                principal = await strategy(request)
                if principal is not None:
                    break
        if principal is None:
            if auth or request.headers.get("x-api-key"):
                raise Unauthorized("The credentials were not accepted.")
            raise Unauthorized()
        request.state.principal = principal
        structlog.contextvars.bind_contextvars(org_id=principal.org_id)
        return principal


def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.runtime.authenticator  # type: ignore[no-any-return]


async def current_principal(request: Request) -> Principal:
    return await get_authenticator(request).authenticate(request)


def require(*permissions: str) -> Any:
    """A dependency: the caller must be authenticated and hold every permission named."""

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        missing = [p for p in permissions if not principal.can(p)]
        if missing:
            raise Forbidden(f"This needs the permission {', '.join(missing)}.", missing=missing)
        return principal

    dependency.__name__ = "require_" + "_".join(p.replace(":", "_") for p in permissions)
    return Depends(dependency)


def all_permissions(services: Iterable[Any]) -> dict[str, str]:
    """Every permission the given services declare, with its description."""
    out: dict[str, str] = {}
    for service in services:
        out.update(service.permissions)
    return out
