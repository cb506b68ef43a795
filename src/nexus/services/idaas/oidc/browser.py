"""The provider's browser state: its session cookie, CSRF tokens, remembered consent.

- The session cookie holds the id of an IDaaS `Session` row, sealed (authenticated
  encryption with a key derived from the process secret), HttpOnly, SameSite=Lax, and
  Secure with the `__Host-` prefix whenever the issuer is https. The row decides whether
  the session is still alive; the cookie only points at it.
- Forms carry a CSRF token: an HMAC of a random per-browser value (its own cookie) and
  of the session the form was shown in, so a token works only in the browser, and for
  the session, that it was made for.
- Consent is remembered in a sealed cookie per browser: user, and per client the scope
  values the user approved.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from fastapi import Request
from starlette.responses import Response

from nexus.kernel.crypto import constant_time_equals, seal, unseal

SSO_PURPOSE = "idaas.oidc.sso"
CONSENT_PURPOSE = "idaas.oidc.consent"
MAX_REMEMBERED_CLIENTS = 20


def seal_json(secret: str, purpose: str, data: dict[str, Any], ttl_s: int) -> str:
    return seal(secret, purpose, json.dumps({**data, "exp": int(time.time()) + ttl_s}))


def unseal_json(secret: str, purpose: str, token: str | None) -> dict[str, Any] | None:
    """The sealed data, or None when it is missing, forged, or past its lifetime."""
    if not token or len(token) > 8192:
        return None
    try:
        data = json.loads(unseal(secret, purpose, token))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
        return None
    return data


class Browser:
    """The provider's cookies on one request, and the changes to send back."""

    def __init__(self, request: Request, secret: str, *, secure: bool, ttl_s: int) -> None:
        self.request, self.secret, self.secure, self.ttl_s = request, secret, secure, ttl_s
        prefix = "__Host-" if secure else ""
        self.sso_name = f"{prefix}nexus_sso"
        self.csrf_name = f"{prefix}nexus_csrf"
        self.consent_name = f"{prefix}nexus_consent"
        self._set: dict[str, tuple[str, int]] = {}
        self._delete: set[str] = set()
        self._csrf_key = hmac.new(secret.encode(), b"nexus idaas.oidc.csrf", "sha256").digest()

    # -- the provider's session ---------------------------------------------------------
    def session_id(self) -> str | None:
        if self.sso_name in self._delete:
            return None
        if self.sso_name in self._set:
            token = self._set[self.sso_name][0]
        else:
            token = self.request.cookies.get(self.sso_name)
        data = unseal_json(self.secret, SSO_PURPOSE, token)
        sid = data.get("sid") if data else None
        return sid if isinstance(sid, str) else None

    def start(self, session_id: str) -> None:
        self._delete.discard(self.sso_name)
        token = seal_json(self.secret, SSO_PURPOSE, {"sid": session_id}, self.ttl_s)
        self._set[self.sso_name] = (token, self.ttl_s)

    def end(self) -> None:
        self._set.pop(self.sso_name, None)
        self._delete.add(self.sso_name)

    # -- CSRF ------------------------------------------------------------------------------
    def _seed(self, *, create: bool) -> str | None:
        if self.csrf_name in self._set:
            return self._set[self.csrf_name][0]
        seed = self.request.cookies.get(self.csrf_name)
        if seed and 20 <= len(seed) <= 100:
            return seed
        if not create:
            return None
        seed = secrets.token_urlsafe(32)
        self._set[self.csrf_name] = (seed, self.ttl_s)
        return seed

    def _mac(self, seed: str, session_id: str | None) -> str:
        digest = hmac.new(
            self._csrf_key, f"{seed}|{session_id or ''}".encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def csrf_token(self, session_id: str | None) -> str:
        seed = self._seed(create=True)
        assert seed is not None
        return self._mac(seed, session_id)

    def csrf_ok(self, token: str | None, session_id: str | None) -> bool:
        seed = self._seed(create=False)
        if not token or seed is None:
            return False
        return constant_time_equals(token, self._mac(seed, session_id))

    # -- consent ---------------------------------------------------------------------------
    def _consents(self, user_id: str) -> dict[str, list[str]]:
        if self.consent_name in self._set:
            token: str | None = self._set[self.consent_name][0]
        else:
            token = self.request.cookies.get(self.consent_name)
        data = unseal_json(self.secret, CONSENT_PURPOSE, token)
        if not data or data.get("u") != user_id or not isinstance(data.get("c"), dict):
            return {}
        return {k: list(v) for k, v in data["c"].items() if isinstance(v, list)}

    def consented(self, user_id: str, client_id: str, scope: list[str]) -> bool:
        approved = set(self._consents(user_id).get(client_id, ()))
        return set(scope) <= approved

    def remember_consent(self, user_id: str, client_id: str, scope: list[str]) -> None:
        consents = self._consents(user_id)
        merged = sorted(set(consents.pop(client_id, [])) | set(scope))
        consents[client_id] = merged  # most recent last
        while len(consents) > MAX_REMEMBERED_CLIENTS:
            consents.pop(next(iter(consents)))
        token = seal_json(self.secret, CONSENT_PURPOSE, {"u": user_id, "c": consents}, 365 * 86400)
        self._set[self.consent_name] = (token, 365 * 86400)

    # -- the response ----------------------------------------------------------------------
    def apply(self, response: Response) -> Response:
        for name in self._delete:
            response.delete_cookie(
                name, path="/", secure=self.secure, httponly=True, samesite="lax"
            )
        for name, (value, max_age) in self._set.items():
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path="/",
                secure=self.secure,
                httponly=True,
                samesite="lax",
            )
        return response
