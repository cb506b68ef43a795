"""The OpenID Connect provider, driven by a real OAuth client (Authlib) for the client's
side and by a cookie-keeping httpx client that posts the login and consent forms (with
the CSRF token read from the HTML) for the browser's side."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import select

from nexus.kernel import ratelimit
from nexus.kernel.config import Settings
from nexus.kernel.crypto import token_hash
from nexus.kernel.ratelimit import RateLimiter
from nexus.services.idaas.models import AuditEvent, AuthorizationCode, OAuthClient
from nexus.testing.tokens import TestIssuer
from tests.services.idaas.conftest import PASSWORD, IdaasEnv, Tenant

ISSUER = "http://nexus.test"
CALLBACK = "https://app.example.com/callback"
LOCAL_CALLBACK = "http://127.0.0.1:8765/cb"
AUTHORIZE = f"{ISSUER}/oauth2/authorize"
TOKEN = f"{ISSUER}/oauth2/token"
USERINFO = f"{ISSUER}/oauth2/userinfo"
INTROSPECT = f"{ISSUER}/oauth2/introspect"
REVOKE = f"{ISSUER}/oauth2/revoke"
LOGOUT = f"{ISSUER}/oauth2/logout"


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """In services mode the counters live in a Redis every test (and every concurrent
    run) shares; give this test its own key prefix."""
    prefix = f"nexus:rl:{settings.bus_namespace}:{uuid.uuid4().hex[:8]}"

    def limiter(request: Any) -> RateLimiter:
        runtime = request.app.state.runtime
        if "rate_limiter" not in runtime.state:
            runtime.state["rate_limiter"] = RateLimiter(runtime.redis, prefix=prefix)
        return runtime.state["rate_limiter"]  # type: ignore[no-any-return]

    monkeypatch.setattr(ratelimit, "get_rate_limiter", limiter)


# -- the browser ----------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, list[str]] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", "")))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].buttons.setdefault(a["name"], []).append(a.get("value", ""))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def page_kind(response: httpx.Response) -> str:
    """login | mfa | consent | confirm | redirect | other."""
    if response.is_redirect:
        return "redirect"
    forms = forms_of(response.text)
    return forms[0].fields.get("step", "other") if forms else "other"


class Browser:
    """A user agent that keeps cookies and fills in forms; it never follows redirects
    (a redirect to the client is where the test takes over)."""

    def __init__(self, idaas: IdaasEnv, base_url: str = ISSUER) -> None:
        self.http = httpx.AsyncClient(transport=idaas.client._transport, base_url=base_url)

    async def get(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def submit(self, page: httpx.Response, **values: str) -> httpx.Response:
        form = forms_of(page.text)[0]
        return await self.http.post(form.action, data={**form.fields, **values})

    async def sign_in(
        self,
        url: str,
        email: str,
        password: str = PASSWORD,
        *,
        decision: str = "allow",
    ) -> httpx.Response:
        """Open an authorization URL and go through whatever pages come."""
        page = await self.get(url)
        if page_kind(page) == "login":
            page = await self.submit(page, email=email, password=password)
        if page_kind(page) == "consent":
            page = await self.submit(page, decision=decision)
        return page

    async def aclose(self) -> None:
        await self.http.aclose()


def query_of(response: httpx.Response) -> dict[str, str]:
    assert response.is_redirect, (response.status_code, response.text[:500])
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logout_url(**params: str) -> str:
    return f"{LOGOUT}?{urlencode(params)}"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


# -- clients --------------------------------------------------------------------------------
async def register(idaas: IdaasEnv, tenant: Tenant | None = None, **body: Any) -> dict[str, Any]:
    tenant = tenant or idaas.a
    body.setdefault("name", "Example app")
    body.setdefault("redirect_uris", [CALLBACK, LOCAL_CALLBACK])
    response = await idaas.client.post("/api/v1/oauth-clients", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def oauth(idaas: IdaasEnv, client: dict[str, Any], **kwargs: Any) -> AsyncOAuth2Client:
    secret = client.get("client_secret")
    kwargs.setdefault("scope", "openid profile email offline_access")
    kwargs.setdefault("redirect_uri", CALLBACK)
    return AsyncOAuth2Client(
        client_id=client["client_id"],
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        code_challenge_method="S256",
        transport=idaas.client._transport,
        base_url=ISSUER,
        **kwargs,
    )


def auth_url(client: dict[str, Any], verifier: str = "v" * 43, **params: str) -> str:
    query = {
        "client_id": client["client_id"],
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile email offline_access",
        "state": "st-123",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **params,
    }
    return f"{AUTHORIZE}?{urlencode({k: v for k, v in query.items() if v is not None})}"


async def code_for(
    idaas: IdaasEnv,
    client: dict[str, Any],
    verifier: str = "v" * 43,
    email: str | None = None,
    **params: str,
) -> str:
    browser = Browser(idaas)
    try:
        response = await browser.sign_in(
            auth_url(client, verifier, **params), email or idaas.a.email
        )
    finally:
        await browser.aclose()
    return query_of(response)["code"]


async def exchange(
    idaas: IdaasEnv, client: dict[str, Any], code: str, verifier: str = "v" * 43, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        **extra,
    }
    auth = (client["client_id"], client["client_secret"]) if client.get("client_secret") else None
    if auth is None:
        data["client_id"] = client["client_id"]
    return await idaas.client.post(TOKEN, data={k: v for k, v in data.items() if v}, auth=auth)


async def introspect(idaas: IdaasEnv, client: dict[str, Any], token: str) -> dict[str, Any]:
    response = await idaas.client.post(
        INTROSPECT, data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def audit_types(idaas: IdaasEnv, org_id: str) -> list[str]:
    async with idaas.runtime.db("idaas").read(org_id=org_id) as session:
        return list((await session.scalars(select(AuditEvent.type))).all())


# -- discovery -------------------------------------------------------------------------------
async def test_discovery_document(idaas: IdaasEnv) -> None:
    response = await idaas.client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == AUTHORIZE
    assert doc["token_endpoint"] == TOKEN
    assert doc["userinfo_endpoint"] == USERINFO
    assert doc["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert doc["introspection_endpoint"] == INTROSPECT
    assert doc["revocation_endpoint"] == REVOKE
    assert doc["end_session_endpoint"] == LOGOUT
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    assert {"idaas:user:read", "notes:note:read"} <= set(doc["scopes_supported"])
    assert doc["response_types_supported"] == ["code"]


# -- the authorization code flow -------------------------------------------------------------
async def test_code_flow_with_pkce_then_userinfo_and_refresh(idaas: IdaasEnv) -> None:
    client = await register(
        idaas, scopes=["openid", "profile", "email", "offline_access", "notes:note:read"]
    )
    assert client["client_secret"].startswith("nxs_")
    rp = oauth(idaas, client, scope="openid profile email offline_access notes:note:read")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(AUTHORIZE, code_verifier=verifier, nonce=nonce)

    browser = Browser(idaas)
    login = await browser.get(url)
    assert login.status_code == 200
    assert page_kind(login) == "login"
    assert "Example app" in login.text
    assert "Alpha" in login.text
    assert login.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    consent = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert page_kind(consent) == "consent", consent.text
    assert "notes:note:read" in consent.text
    done = await browser.submit(consent, decision="allow")
    assert done.status_code == 303
    assert done.headers["location"].startswith(CALLBACK + "?")
    assert query_of(done)["state"] == state
    assert query_of(done)["iss"] == ISSUER

    token = await rp.fetch_token(
        TOKEN, authorization_response=done.headers["location"], code_verifier=verifier, state=state
    )
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"].startswith("nxr_")
    # narrowed: the owner holds "*", the token only what was asked for
    assert set(token["scope"].split()) == {
        "openid",
        "profile",
        "email",
        "offline_access",
        "notes:note:read",
    }

    # the ID token verifies against the published keys
    jwks = (await idaas.client.get("/.well-known/jwks.json")).json()
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client["client_id"]},
        sub={"essential": True, "value": idaas.a.owner_id},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
        sid={"essential": True},
    ).validate(id_token.claims)
    assert id_token.claims["email"] == idaas.a.email
    assert id_token.claims["amr"] == ["pwd"]
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert id_token.claims["at_hash"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")

    # the access token works at userinfo, and on the API for exactly what it was given
    info = await rp.get(USERINFO)
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": idaas.a.owner_id,
        "email": idaas.a.email,
        "email_verified": False,
        "name": "Owner",
        "org_id": idaas.a.org_id,
    }
    assert (await rp.get("/api/v1/notes/ping")).status_code == 200
    assert (await rp.get("/api/v1/users")).status_code == 403

    # refresh rotates; the new access token has the same narrowed scope
    old_refresh = token["refresh_token"]
    refreshed = await rp.refresh_token(TOKEN, refresh_token=old_refresh)
    assert refreshed["refresh_token"] != old_refresh
    assert "notes:note:read" in refreshed["scope"].split()
    assert "*" not in refreshed["scope"].split()
    assert (await rp.get(USERINFO)).status_code == 200
    # reuse of the rotated-out refresh token revokes the family
    with pytest.raises(OAuthError) as reuse:
        await rp.refresh_token(TOKEN, refresh_token=old_refresh)
    assert reuse.value.error == "invalid_grant"
    with pytest.raises(OAuthError):
        await rp.refresh_token(TOKEN, refresh_token=refreshed["refresh_token"])

    # SSO: a second authorization in the same browser needs no login and no consent
    verifier2 = secrets.token_urlsafe(48)
    url2, _state2 = rp.create_authorization_url(AUTHORIZE, code_verifier=verifier2)
    again = await browser.get(url2)
    assert again.status_code == 302
    assert "code" in query_of(again)
    await browser.aclose()
    await rp.aclose()
    types = await audit_types(idaas, idaas.a.org_id)
    assert {"auth.login.succeeded", "oauth.consent.granted", "oauth.token.issued"} <= set(types)


async def test_public_client_without_consent(idaas: IdaasEnv) -> None:
    client = await register(
        idaas,
        name="SPA",
        client_type="public",
        redirect_uris=[LOCAL_CALLBACK],
        require_consent=False,
    )
    assert client["client_secret"] is None
    assert client["client_type"] == "public"
    rp = oauth(idaas, client, redirect_uri=LOCAL_CALLBACK, scope="openid email")
    verifier = secrets.token_urlsafe(48)
    url, state = rp.create_authorization_url(AUTHORIZE, code_verifier=verifier)
    browser = Browser(idaas)
    login = await browser.get(url)
    done = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert done.status_code == 303, done.text  # straight back: no consent page
    assert done.headers["location"].startswith(LOCAL_CALLBACK)
    token = await rp.fetch_token(
        TOKEN, authorization_response=done.headers["location"], code_verifier=verifier, state=state
    )
    assert "refresh_token" not in token  # no offline_access asked
    assert (await rp.get(USERINFO)).json() == {
        "sub": idaas.a.owner_id,
        "email": idaas.a.email,
        "email_verified": False,
    }
    await browser.aclose()
    await rp.aclose()


async def test_consent_denied_and_prompt_none(idaas: IdaasEnv) -> None:
    client = await register(idaas)
    browser = Browser(idaas)
    # prompt=none without a session: straight back with login_required
    quiet = await browser.get(auth_url(client, prompt="none"))
    assert query_of(quiet)["error"] == "login_required"
    assert query_of(quiet)["state"] == "st-123"
    denied = await browser.sign_in(auth_url(client), idaas.a.email, decision="deny")
    assert query_of(denied)["error"] == "access_denied"
    assert query_of(denied)["state"] == "st-123"
    # signed in now, but consent not given: prompt=none says so
    quiet = await browser.get(auth_url(client, prompt="none"))
    assert query_of(quiet)["error"] == "consent_required"
    # once allowed, it is remembered for these scopes, and asked again for more
    allowed = await browser.sign_in(auth_url(client, scope="openid email"), idaas.a.email)
    assert "code" in query_of(allowed)
    remembered = await browser.get(auth_url(client, scope="openid email", prompt="none"))
    assert "code" in query_of(remembered)
    more = await browser.get(auth_url(client, scope="openid email profile"))
    assert page_kind(more) == "consent"
    forced = await browser.get(auth_url(client, scope="openid email", prompt="consent"))
    assert page_kind(forced) == "consent"
    relogin = await browser.get(auth_url(client, scope="openid email", prompt="login"))
    assert page_kind(relogin) == "login"
    await browser.aclose()
    assert "oauth.consent.denied" in await audit_types(idaas, idaas.a.org_id)


async def test_login_with_totp_step(idaas: IdaasEnv) -> None:
    import pyotp

    enroll = await idaas.client.post("/api/v1/me/mfa/totp", headers=idaas.a.headers)
    secret = enroll.json()["secret"]
    confirm = await idaas.client.post(
        "/api/v1/me/mfa/totp/confirm",
        json={"code": pyotp.TOTP(secret).now()},
        headers=idaas.a.headers,
    )
    recovery = confirm.json()["recovery_codes"]
    client = await register(idaas, require_consent=False)
    browser = Browser(idaas)
    login = await browser.get(auth_url(client, nonce="n-1"))
    step = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert page_kind(step) == "mfa", step.text
    assert "nxm_" not in step.text  # the challenge token travels sealed
    wrong = await browser.submit(step, code="000000")
    assert wrong.status_code == 401
    assert page_kind(wrong) == "mfa"
    done = await browser.submit(wrong, code=recovery[0])
    code = query_of(done)["code"]
    token = (await exchange(idaas, client, code)).json()
    claims = jwt.decode(
        token["id_token"],
        KeySet.import_key_set((await idaas.client.get("/.well-known/jwks.json")).json()),
    ).claims
    assert claims["amr"] == ["pwd", "mfa"]
    assert claims["nonce"] == "n-1"
    await browser.aclose()


# -- client credentials ------------------------------------------------------------------------
async def test_client_credentials(idaas: IdaasEnv) -> None:
    client = await register(
        idaas,
        name="Batch job",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["idaas:user:read", "notes:*:read"],
    )
    assert client["service_user_id"]
    rp = oauth(idaas, client, scope=None)
    token = await rp.fetch_token(TOKEN, grant_type="client_credentials")
    assert set(token["scope"].split()) == {"idaas:user:read", "notes:*:read"}
    assert "refresh_token" not in token
    assert "id_token" not in token
    users = await rp.get("/api/v1/users")
    assert users.status_code == 200
    assert all(u["org_id"] == idaas.a.org_id for u in users.json()["items"])
    assert (await rp.get("/api/v1/notes/ping")).status_code == 200
    assert (await rp.get("/api/v1/roles")).status_code == 403
    assert (await rp.get(USERINFO)).status_code == 403  # a client is not a user

    narrow = await rp.fetch_token(TOKEN, grant_type="client_credentials", scope="notes:note:read")
    assert narrow["scope"] == "notes:note:read"
    with pytest.raises(OAuthError) as beyond:
        await rp.fetch_token(TOKEN, grant_type="client_credentials", scope="idaas:user:manage")
    assert beyond.value.error == "invalid_scope"
    # client_secret_post works too
    post = await idaas.client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
    )
    assert post.status_code == 200
    assert post.headers["cache-control"] == "no-store"
    # a client may only use the grants it was registered for
    code_grant = await exchange(idaas, client, "nxc_whatever")
    assert code_grant.json()["error"] == "unauthorized_client"
    await rp.aclose()


async def test_public_client_cannot_use_client_credentials(idaas: IdaasEnv) -> None:
    response = await idaas.client.post(
        "/api/v1/oauth-clients",
        json={
            "name": "x",
            "client_type": "public",
            "grant_types": ["client_credentials"],
            "scopes": ["notes:note:read"],
        },
        headers=idaas.a.headers,
    )
    assert response.status_code == 422
    spa = await register(idaas, client_type="public")
    cc = await idaas.client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": spa["client_id"]}
    )
    assert cc.status_code == 400
    assert cc.json()["error"] == "unauthorized_client"


# -- introspection and revocation ---------------------------------------------------------------
async def test_introspection_and_revocation_agree(idaas: IdaasEnv) -> None:
    client = await register(idaas, grant_types=["authorization_code", "refresh_token"])
    other = await register(
        idaas,
        name="Resource server",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scopes=["notes:note:read"],
    )
    tokens = (await exchange(idaas, client, await code_for(idaas, client))).json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]

    seen = await introspect(idaas, client, access)
    assert seen["active"] is True
    assert seen["client_id"] == client["client_id"]
    assert seen["sub"] == idaas.a.owner_id
    assert seen["username"] == idaas.a.email
    assert seen["iss"] == ISSUER
    assert (await introspect(idaas, other, access))["active"] is True  # a resource server
    assert (await introspect(idaas, client, refresh))["active"] is True
    assert (await introspect(idaas, other, refresh)) == {"active": False}  # not its token
    assert (await introspect(idaas, client, "nonsense")) == {"active": False}

    # revoking the refresh token ends the session: both tokens are inactive from now on
    revoked = await idaas.client.post(
        REVOKE,
        data={"token": refresh, "token_type_hint": "refresh_token"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert revoked.status_code == 200
    assert (await introspect(idaas, client, refresh)) == {"active": False}
    assert (await introspect(idaas, client, access)) == {"active": False}
    assert (await idaas.client.get(USERINFO, headers=bearer(access))).status_code == 401
    again = await exchange(idaas, client, "x", grant_type="refresh_token", refresh_token=refresh)
    assert again.json()["error"] == "invalid_grant"

    # unknown tokens: 200 all the same
    unknown = await idaas.client.post(
        REVOKE, data={"token": "nxr_unknown"}, auth=(client["client_id"], client["client_secret"])
    )
    assert unknown.status_code == 200

    # an access token without a session (client credentials) is revoked by its id
    rs = oauth(idaas, other, scope=None)
    cc = await rs.fetch_token(TOKEN, grant_type="client_credentials")
    assert (await introspect(idaas, other, cc["access_token"]))["active"] is True
    await rs.revoke_token(REVOKE, token=cc["access_token"], token_type_hint="access_token")
    assert (await introspect(idaas, other, cc["access_token"])) == {"active": False}
    await rs.aclose()

    # expired, or signed by someone else: inactive
    keys = idaas.runtime.state["idaas"].keys
    claims = {
        "iss": ISSUER,
        "aud": "nexus",
        "sub": idaas.a.owner_id,
        "org_id": idaas.a.org_id,
        "jti": uuid.uuid4().hex,
    }
    now = int(time.time())
    expired = await keys.sign({**claims, "iat": now - 120, "exp": now - 1}, typ="at+jwt")
    assert (await introspect(idaas, client, expired)) == {"active": False}
    alive = await keys.sign({**claims, "iat": now, "exp": now + 60}, typ="at+jwt")
    assert (await introspect(idaas, client, alive))["active"] is True
    foreign = TestIssuer(issuer=ISSUER).token(org_id=idaas.a.org_id, sub=idaas.a.owner_id)
    assert (await introspect(idaas, client, foreign)) == {"active": False}

    # introspection needs a client secret; another org's client sees nothing
    anonymous = await idaas.client.post(INTROSPECT, data={"token": access})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    fresh = (await exchange(idaas, client, await code_for(idaas, client))).json()
    stranger = await register(
        idaas,
        idaas.b,
        name="B's server",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scopes=["notes:note:read"],
    )
    assert (await introspect(idaas, stranger, fresh["access_token"])) == {"active": False}
    assert (await introspect(idaas, client, fresh["access_token"]))["active"] is True
    # a client cannot revoke another client's tokens
    await idaas.client.post(
        REVOKE,
        data={"token": fresh["refresh_token"]},
        auth=(other["client_id"], other["client_secret"]),
    )
    assert (await introspect(idaas, client, fresh["refresh_token"]))["active"] is True


async def test_refresh_tokens_are_bound_to_their_client(idaas: IdaasEnv) -> None:
    mine = await register(idaas, name="Mine")
    theirs = await register(idaas, name="Theirs")
    tokens = (await exchange(idaas, mine, await code_for(idaas, mine))).json()
    grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    other = await idaas.client.post(
        TOKEN, data=grant, auth=(theirs["client_id"], theirs["client_secret"])
    )
    assert other.json()["error"] == "invalid_grant"
    wider = await idaas.client.post(
        TOKEN,
        data={**grant, "scope": "openid notes:note:read"},
        auth=(mine["client_id"], mine["client_secret"]),
    )
    assert wider.json()["error"] == "invalid_scope"
    # neither attempt spent the token; a narrower scope is fine
    narrower = await idaas.client.post(
        TOKEN, data={**grant, "scope": "openid"}, auth=(mine["client_id"], mine["client_secret"])
    )
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "openid"
    # first-party refresh tokens (from /api/v1/auth/login) are no good here
    first_party = await idaas.client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": idaas.a.refresh_token},
        auth=(mine["client_id"], mine["client_secret"]),
    )
    assert first_party.json()["error"] == "invalid_grant"


# -- errors ----------------------------------------------------------------------------------
async def test_authorize_errors_before_and_after_the_redirect_uri_is_trusted(
    idaas: IdaasEnv,
) -> None:
    client = await register(idaas)
    browser = Browser(idaas)

    async def shown(url: str) -> httpx.Response:
        response = await browser.get(url)
        assert response.status_code == 400, response.text
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        return response

    await shown(auth_url({"client_id": "cl_unknown"}))
    await shown(auth_url(client, client_id=None))
    # open-redirect attempts: nothing but an exact registered URI is redirected to
    for evil in (
        "https://evil.example.com/callback",
        "https://app.example.com.evil.example.com/callback",
        "https://app.example.com/callback/../../evil",
        "https://app.example.com/callback?next=https://evil.example.com",
        "https://app.example.com/callback#x",
        "//evil.example.com/callback",
        "HTTPS://APP.EXAMPLE.COM/callback",
        "",
    ):
        page = await shown(auth_url(client, redirect_uri=evil))
        assert "evil.example.com" not in page.text
    await shown(f"{auth_url(client)}&redirect_uri={CALLBACK}")  # two redirect URIs

    async def redirected(url: str, error: str) -> dict[str, str]:
        response = await browser.get(url)
        query = query_of(response)
        assert response.headers["location"].startswith(CALLBACK + "?")
        assert query["error"] == error, query
        assert query["state"] == "st-123"
        assert query["iss"] == ISSUER
        return query

    await redirected(
        auth_url(client, code_challenge=None, code_challenge_method=None), "invalid_request"
    )
    plain = await redirected(
        auth_url(client, code_challenge="p" * 43, code_challenge_method="plain"), "invalid_request"
    )
    assert "S256" in plain["error_description"]
    await redirected(auth_url(client, code_challenge_method=None), "invalid_request")
    await redirected(auth_url(client, code_challenge="short"), "invalid_request")
    await redirected(auth_url(client, response_type="token"), "unsupported_response_type")
    await redirected(auth_url(client, scope="openid idaas:user:manage"), "invalid_scope")
    await redirected(auth_url(client, scope=None), "invalid_scope")
    await redirected(auth_url(client, request="eyJ..."), "request_not_supported")
    await redirected(f"{auth_url(client)}&scope=openid", "invalid_request")  # repeated
    await redirected(auth_url(client, prompt="none login"), "invalid_request")
    await browser.aclose()


async def test_token_errors(idaas: IdaasEnv) -> None:
    client = await register(idaas)
    verifier = secrets.token_urlsafe(48)

    # wrong verifier: refused, and the code is spent
    code = await code_for(idaas, client, verifier)
    wrong = await exchange(idaas, client, code, "w" * 43)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.headers["cache-control"] == "no-store"
    assert (await exchange(idaas, client, code, verifier)).json()["error"] == "invalid_grant"

    # missing verifier
    code = await code_for(idaas, client, verifier)
    assert (await exchange(idaas, client, code, "")).json()["error"] == "invalid_grant"

    # wrong redirect_uri at the token endpoint
    code = await code_for(idaas, client, verifier)
    moved = await exchange(idaas, client, code, verifier, redirect_uri=LOCAL_CALLBACK)
    assert moved.json()["error"] == "invalid_grant"

    # wrong client secret: 401 invalid_client, audited in the client's org
    code = await code_for(idaas, client, verifier)
    bad_secret = await exchange(idaas, {**client, "client_secret": "nxs_wrong"}, code, verifier)
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"
    assert bad_secret.headers["www-authenticate"].startswith("Basic")
    assert "oauth.token.failed" in await audit_types(idaas, idaas.a.org_id)
    # ... and the code was not spent by that
    assert (await exchange(idaas, client, code, verifier)).status_code == 200

    # another client cannot redeem this client's code
    thief = await register(idaas, name="Thief")
    code = await code_for(idaas, client, verifier)
    stolen = await exchange(idaas, thief, code, verifier)
    assert stolen.json()["error"] == "invalid_grant"

    # a code works once; a second use revokes the tokens issued for it
    first = await exchange(idaas, client, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    replay = await exchange(idaas, client, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (await introspect(idaas, client, tokens["access_token"])) == {"active": False}
    refresh = await exchange(
        idaas, client, "x", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert "oauth.code.reused" in await audit_types(idaas, idaas.a.org_id)

    # an expired code
    code = await code_for(idaas, client, verifier)
    async with idaas.runtime.db("idaas").transaction() as session:
        row = await session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == token_hash(code))
        )
        assert row is not None
        assert row.expires_at > row.expires_at.now(row.expires_at.tzinfo)
        row.expires_at = row.expires_at.replace(year=2000)
    assert (await exchange(idaas, client, code, verifier)).json()["error"] == "invalid_grant"

    # malformed requests
    no_grant = await idaas.client.post(TOKEN, data={}, auth=(client["client_id"], "x"))
    assert no_grant.json()["error"] == "invalid_request"
    odd = await idaas.client.post(
        TOKEN, data={"grant_type": "password"}, auth=(client["client_id"], client["client_secret"])
    )
    assert odd.json()["error"] == "unsupported_grant_type"
    as_json = await idaas.client.post(TOKEN, json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    confidential_without_secret = await idaas.client.post(
        TOKEN,
        data={"grant_type": "authorization_code", "code": "x", "client_id": client["client_id"]},
    )
    assert confidential_without_secret.status_code == 401


# -- tenants ---------------------------------------------------------------------------------
async def test_a_client_of_org_b_cannot_sign_in_a_user_of_org_a(idaas: IdaasEnv) -> None:
    client_b = await register(idaas, idaas.b, name="Bravo app")
    client_a = await register(idaas, idaas.a, name="Alpha app")
    browser = Browser(idaas)
    login = await browser.get(auth_url(client_b))
    assert "Bravo" in login.text
    refused = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert refused.status_code == 401
    assert page_kind(refused) == "login"
    assert not any("nexus_sso" in c for c in refused.headers.get_list("set-cookie"))
    # naming org A on B's login page does not help either
    login = await browser.get(auth_url(client_b))
    named = await browser.submit(login, email=idaas.a.email, password=PASSWORD, org=idaas.a.slug)
    assert named.status_code == 401
    assert page_kind(named) == "login"

    # signed in at A's app, the same browser still has to sign in (as a B user) at B's
    done = await browser.sign_in(auth_url(client_a), idaas.a.email)
    assert "code" in query_of(done)
    at_b = await browser.get(auth_url(client_b))
    assert at_b.status_code == 200
    assert page_kind(at_b) == "login"
    assert "needs an account of Bravo" in at_b.text
    as_b = await browser.sign_in(auth_url(client_b), idaas.b.email)
    code = query_of(as_b)["code"]
    tokens = (await exchange(idaas, client_b, code)).json()
    info = await idaas.client.get(USERINFO, headers=bearer(tokens["access_token"]))
    assert info.json()["sub"] == idaas.b.owner_id
    assert info.json()["org_id"] == idaas.b.org_id
    # and B's code is no good to A's client
    code = query_of(await browser.get(auth_url(client_b)))["code"]
    assert (await exchange(idaas, client_a, code)).json()["error"] == "invalid_grant"
    await browser.aclose()


# -- CSRF and cookies --------------------------------------------------------------------------
async def test_forms_need_their_csrf_token(idaas: IdaasEnv) -> None:
    client = await register(idaas)
    browser, attacker = Browser(idaas), Browser(idaas)
    login = await browser.get(auth_url(client))
    forged = await browser.submit(login, email=idaas.a.email, password=PASSWORD, csrf="forged")
    assert forged.status_code == 400
    assert page_kind(forged) == "login"
    # the attacker's own (valid) form does not work in the victim's browser
    theirs = await attacker.get(auth_url(client))
    replayed = await browser.http.post(
        "/oauth2/authorize",
        data={**forms_of(theirs.text)[0].fields, "email": idaas.a.email, "password": PASSWORD},
    )
    assert replayed.status_code == 400
    # consent: a token made for another session is refused
    consent = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert page_kind(consent) == "consent"
    other = await attacker.submit(theirs, email=idaas.a.email, password=PASSWORD)
    stolen_csrf = forms_of(other.text)[0].fields["csrf"]
    refused = await browser.submit(consent, decision="allow", csrf=stolen_csrf)
    assert refused.status_code == 400
    assert "location" not in refused.headers
    # a tampered sealed request is refused
    tampered = await browser.submit(consent, decision="allow", request="x" + "a" * 100)
    assert tampered.status_code == 400
    await browser.aclose()
    await attacker.aclose()


async def test_session_cookie_is_secure_over_https(idaas: IdaasEnv) -> None:
    client = await register(idaas, require_consent=False)
    browser = Browser(idaas, base_url="https://nexus.test")
    login = await browser.get(auth_url(client).replace(ISSUER, "https://nexus.test"))
    done = await browser.submit(login, email=idaas.a.email, password=PASSWORD)
    assert done.status_code == 303
    cookie = next(c for c in done.headers.get_list("set-cookie") if "nexus_sso=" in c)
    assert cookie.startswith("__Host-nexus_sso=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags
    assert idaas.a.owner_id not in cookie  # sealed, not readable
    await browser.aclose()


# -- logout ----------------------------------------------------------------------------------
async def test_rp_initiated_logout(idaas: IdaasEnv) -> None:
    client = await register(idaas, require_consent=False)
    browser = Browser(idaas)
    code = query_of(await browser.sign_in(auth_url(client), idaas.a.email))["code"]
    tokens = (await exchange(idaas, client, code)).json()

    # an unregistered post-logout address is not redirected to
    hint = tokens["id_token"]
    evil = await browser.get(
        logout_url(id_token_hint=hint, post_logout_redirect_uri="https://evil.example.com/")
    )
    assert evil.status_code == 400
    assert "location" not in evil.headers
    forged = await browser.get(logout_url(id_token_hint=tokens["access_token"]))
    assert forged.status_code == 400

    # without a hint, the user is asked first
    ask = await browser.get(logout_url(client_id=client["client_id"]))
    assert page_kind(ask) == "confirm"

    out = await browser.get(
        logout_url(id_token_hint=hint, post_logout_redirect_uri=CALLBACK, state="bye")
    )
    assert out.status_code == 302, out.text
    assert out.headers["location"] == f"{CALLBACK}?state=bye"
    assert (await introspect(idaas, client, tokens["access_token"])) == {"active": False}
    # the provider session is over: the next authorization asks to sign in again
    assert page_kind(await browser.get(auth_url(client))) == "login"
    assert "oauth.logout" in await audit_types(idaas, idaas.a.org_id)

    # confirmed logout without a hint
    await browser.sign_in(auth_url(client), idaas.a.email)
    ask = await browser.get(
        logout_url(client_id=client["client_id"], post_logout_redirect_uri=CALLBACK)
    )
    bye = await browser.submit(ask)
    assert bye.status_code == 303
    assert bye.headers["location"] == CALLBACK
    assert page_kind(await browser.get(auth_url(client))) == "login"
    await browser.aclose()


# -- the admin API ---------------------------------------------------------------------------
async def test_admin_api(idaas: IdaasEnv) -> None:
    api = "/api/v1/oauth-clients"
    created = await register(idaas)
    assert created["client_type"] == "confidential"
    assert created["require_consent"] is True
    secret = created["client_secret"]
    async with idaas.runtime.db("idaas").read() as session:
        row = await session.scalar(
            select(OAuthClient).where(OAuthClient.client_id == created["client_id"])
        )
        assert row is not None
        assert row.secret_hash == token_hash(secret)

    one = await idaas.client.get(f"{api}/{created['id']}", headers=idaas.a.headers)
    assert one.status_code == 200
    assert "client_secret" not in one.json()
    by_client_id = await idaas.client.get(f"{api}/{created['client_id']}", headers=idaas.a.headers)
    assert by_client_id.json()["id"] == created["id"]
    listed = await idaas.client.get(api, headers=idaas.a.headers)
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]

    # org isolation
    assert (
        await idaas.client.get(f"{api}/{created['id']}", headers=idaas.b.headers)
    ).status_code == 404
    assert (await idaas.client.get(api, headers=idaas.b.headers)).json()["items"] == []
    patch_b = await idaas.client.patch(
        f"{api}/{created['id']}", json={"name": "mine"}, headers=idaas.b.headers
    )
    assert patch_b.status_code == 404
    assert (
        await idaas.client.delete(f"{api}/{created['id']}", headers=idaas.b.headers)
    ).status_code == 404

    # validation: problem+json with field paths
    for bad in (
        {"redirect_uris": ["http://app.example.com/cb"]},
        {"redirect_uris": ["javascript:alert(1)"]},
        {"redirect_uris": ["https://*.example.com/cb"]},
        {"redirect_uris": ["https://app.example.com/cb#frag"]},
        {"redirect_uris": ["https://user:pw@app.example.com/cb"]},
        {"redirect_uris": []},
        {"scopes": ["openid", "not a scope"]},
        {"grant_types": ["refresh_token"]},
        {"grant_types": ["implicit"]},
    ):
        response = await idaas.client.post(
            api, json={"name": "bad", "redirect_uris": [CALLBACK], **bad}, headers=idaas.a.headers
        )
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    localhost = await idaas.client.post(
        api,
        json={"name": "dev", "redirect_uris": ["http://localhost:3000/cb", "http://[::1]:3000/cb"]},
        headers=idaas.a.headers,
    )
    assert localhost.status_code == 201, localhost.text

    # patch, then rotate the secret: the old one stops working
    patched = await idaas.client.patch(
        f"{api}/{created['id']}",
        json={
            "name": "Renamed",
            "require_consent": False,
            "grant_types": ["authorization_code", "client_credentials"],
            "scopes": ["openid", "notes:note:read"],
        },
        headers=idaas.a.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Renamed"
    assert patched.json()["service_user_id"]
    rotated = await idaas.client.post(f"{api}/{created['id']}/secret", headers=idaas.a.headers)
    assert rotated.status_code == 200
    new_secret = rotated.json()["client_secret"]
    cc = {"grant_type": "client_credentials"}
    assert (
        await idaas.client.post(TOKEN, data=cc, auth=(created["client_id"], secret))
    ).status_code == 401
    assert (
        await idaas.client.post(TOKEN, data=cc, auth=(created["client_id"], new_secret))
    ).status_code == 200

    # revoke: the secret stops working, the row stays (listed on request)
    gone = await idaas.client.delete(f"{api}/{created['id']}", headers=idaas.a.headers)
    assert gone.status_code == 204
    assert (
        await idaas.client.post(TOKEN, data=cc, auth=(created["client_id"], new_secret))
    ).status_code == 401
    assert (
        await idaas.client.delete(f"{api}/{created['id']}", headers=idaas.a.headers)
    ).status_code == 404
    listed = await idaas.client.get(f"{api}?include_revoked=true", headers=idaas.a.headers)
    assert any(c["id"] == created["id"] and c["revoked_at"] for c in listed.json()["items"])
    assert (await idaas.client.get(f"{api}/{created['id']}", headers=idaas.a.headers)).json()[
        "revoked_at"
    ]
    types = await audit_types(idaas, idaas.a.org_id)
    for kind in ("created", "updated", "secret_rotated", "revoked"):
        assert f"oauth_client.{kind}" in types


async def test_admin_api_permissions(idaas: IdaasEnv) -> None:
    api = "/api/v1/oauth-clients"
    for role in ("member", "admin"):
        email = f"{role}@alpha.example.com"
        made = await idaas.client.post(
            "/api/v1/users",
            json={"email": email, "name": role, "password": PASSWORD, "roles": [role]},
            headers=idaas.a.headers,
        )
        assert made.status_code == 201, made.text
    member = bearer((await idaas.tokens("member@alpha.example.com"))["access_token"])
    admin = bearer((await idaas.tokens("admin@alpha.example.com"))["access_token"])
    assert (await idaas.client.get(api, headers=member)).status_code == 403
    denied = await idaas.client.post(
        api, json={"name": "x", "redirect_uris": [CALLBACK]}, headers=member
    )
    assert denied.status_code == 403
    # an admin may register clients, but not give them more than the admin holds
    assert (await idaas.client.get(api, headers=admin)).status_code == 200
    beyond = await idaas.client.post(
        api, json={"name": "x", "redirect_uris": [CALLBACK], "scopes": ["*"]}, headers=admin
    )
    assert beyond.status_code == 403
    ok = await idaas.client.post(
        api,
        json={"name": "x", "redirect_uris": [CALLBACK], "scopes": ["openid", "idaas:user:read"]},
        headers=admin,
    )
    assert ok.status_code == 201, ok.text


# -- a refresh token of a client is not a first-party refresh token -----------------------------
async def test_oauth_refresh_tokens_are_not_accepted_by_the_first_party_refresh(
    idaas: IdaasEnv,
) -> None:
    client = await register(idaas, scopes=["openid", "offline_access"])
    tokens = (
        await exchange(idaas, client, await code_for(idaas, client, scope="openid offline_access"))
    ).json()
    response = await idaas.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 401
