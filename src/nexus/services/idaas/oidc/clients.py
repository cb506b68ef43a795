"""OAuth clients: identifiers, secrets, redirect URIs, and client authentication.

Secrets are shown once and stored as SHA-256 (they are 256-bit random values, so a fast
hash is enough); they are compared in constant time, and an unknown client costs the
same comparison as a wrong secret. A confidential client authenticates with HTTP Basic
(`client_secret_basic`) or form fields (`client_secret_post`); a public client sends
only its `client_id` (`none`) and must use PKCE.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from nexus.kernel.crypto import constant_time_equals, token_hash
from nexus.services.idaas.models import OAuthClient
from nexus.services.idaas.oidc.errors import OAuthError, invalid_client, invalid_request

CLIENT_ID_PREFIX = "cl_"
SECRET_PREFIX = "nxs_"  # noqa: S105 - masked in logs like every nx*_ credential
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
_DUMMY_HASH = token_hash("no such client")


def new_client_id() -> str:
    return f"{CLIENT_ID_PREFIX}{secrets.token_hex(10)}"


def new_secret() -> tuple[str, str]:
    """(secret, its hash)."""
    secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
    return secret, token_hash(secret)


def is_public(client: OAuthClient) -> bool:
    return client.secret_hash is None


def check_redirect_uri(uri: str) -> str:
    """The URI if it may be registered, else ValueError with the reason: https, or http
    on a loopback host; absolute, no fragment, no credentials, no wildcard."""
    if len(uri) > 2000:
        raise ValueError("is longer than 2000 characters")
    if any(c.isspace() for c in uri) or "*" in uri:
        raise ValueError("must not contain spaces or wildcards")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in {"https", "http"} or not host:
        raise ValueError("must be an absolute https URL (or http on localhost)")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError("must use https (http is allowed only for localhost and 127.0.0.1)")
    if parts.fragment or "#" in uri:
        raise ValueError("must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    return uri


async def find_client(session: AsyncSession, client_id: str | None) -> OAuthClient | None:
    """An active client by its public id (in any org: the id says which)."""
    if not client_id or len(client_id) > 64:
        return None
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None or client.revoked_at is not None:
        return None
    return client


@dataclass(frozen=True)
class Presented:
    """The client credentials of a request, before they are checked."""

    client_id: str | None
    secret: str | None
    method: str  # client_secret_basic | client_secret_post | none

    @property
    def basic(self) -> bool:
        return self.method == "client_secret_basic"


def single(form: FormData, name: str) -> str | None:
    """A form parameter that may appear at most once (RFC 6749 §3.2)."""
    values = form.getlist(name)
    if len(values) > 1:
        raise invalid_request(f"The parameter {name} was given more than once.")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise invalid_request(f"The parameter {name} must be text.")
    return value or None


def presented(request: Request, form: FormData) -> Presented:
    form_id, form_secret = single(form, "client_id"), single(form, "client_secret")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        if form_secret is not None:
            raise invalid_request("Use one way to authenticate the client, not two.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client("The Basic credentials are malformed.", basic=True) from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise invalid_client("The Basic credentials are malformed.", basic=True)
        client_id, secret = unquote(raw_id.replace("+", " ")), unquote(raw_secret)
        if form_id is not None and form_id != client_id:
            raise invalid_request("client_id differs from the authenticated client.")
        return Presented(client_id, secret, "client_secret_basic")
    if form_secret is not None:
        return Presented(form_id, form_secret, "client_secret_post")
    return Presented(form_id, None, "none")


async def authenticate(
    session: AsyncSession, creds: Presented, *, allow_public: bool
) -> OAuthClient:
    """The client the credentials prove, or `invalid_client`."""
    if not creds.client_id:
        raise invalid_client("Client authentication is required.", basic=creds.basic)
    client = await find_client(session, creds.client_id)
    if creds.secret is not None:
        stored = client.secret_hash if client is not None else None
        ok = constant_time_equals(stored or _DUMMY_HASH, token_hash(creds.secret))
        if client is None or stored is None or not ok:
            raise invalid_client("The client is unknown or its secret is wrong.", basic=creds.basic)
        return client
    if client is None:
        raise invalid_client("The client is unknown.")
    if not is_public(client):
        raise invalid_client("This client must authenticate with its secret.")
    if not allow_public:
        raise OAuthError(
            "unauthorized_client", "A public client cannot use this endpoint.", status=400
        )
    return client
