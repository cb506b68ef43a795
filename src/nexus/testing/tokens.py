"""A throwaway signing key that mints access tokens the kernel accepts (tests, benchmarks).

IDaaS issues the real tokens; this lets kernel tests and benchmarks exercise the same
verification path without it.
"""

from __future__ import annotations

import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from nexus.kernel.auth import StaticKeys, TokenVerifier
from nexus.kernel.ids import new_id
from nexus.kernel.runtime import Runtime


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = "http://nexus.test", audience: str = "nexus") -> None:
        self.issuer, self.audience = issuer, audience
        self.key = ECKey.generate_key("P-256", parameters={"kid": new_id(), "use": "sig"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def install(self, runtime: Runtime) -> None:
        """Make `runtime` accept this issuer's tokens."""
        runtime.authenticator.verifier = TokenVerifier(
            StaticKeys(self.jwks()), issuer=self.issuer, audience=self.audience
        )

    def token(
        self,
        *,
        org_id: str = "org-1",
        sub: str = "user-1",
        permissions: list[str] | tuple[str, ...] = ("*",),
        ttl_s: int = 900,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "org_id": org_id,
            "iat": now,
            "exp": now + ttl_s,
            "jti": new_id(),
            "scope": " ".join(permissions),
            **claims,
        }
        header = {"alg": "ES256", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, body, self.key)

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}
