"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

With a valid `id_token_hint` (signed by us; it may have expired) for the signed-in user,
the provider session ends at once, together with the token session the hint names.
Without one, the user is asked first (a form with a CSRF token), so a link alone cannot
sign anyone out. `post_logout_redirect_uri` must be one of the client's registered
redirect URIs, else the user stays on the provider's "signed out" page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from nexus.services.idaas import audit
from nexus.services.idaas.deps import Idaas
from nexus.services.idaas.models import OAuthClient, Session
from nexus.services.idaas.oidc.authorize import SignedIn, redirect, redirect_url, signed_in
from nexus.services.idaas.oidc.browser import Browser, seal_json, unseal_json
from nexus.services.idaas.oidc.clients import find_client
from nexus.services.idaas.oidc.pages import error_page, render

PURPOSE = "idaas.oidc.logout"
ACTION = "/oauth2/logout"


async def hint_claims(idaas: Idaas, token: str) -> dict[str, Any] | None:
    """The claims of an ID token we issued (expired is fine for a hint), else None."""
    if token.count(".") != 2 or len(token) > 8192:
        return None
    try:
        keyset = KeySet.import_key_set(await idaas.keys.jwks())  # type: ignore[arg-type]
        decoded = jwt.decode(token, keyset, algorithms=["ES256"])
    except (JoseError, ValueError):
        return None
    claims = decoded.claims
    if decoded.header.get("typ") == "at+jwt":  # an access token is not an ID token
        return None
    if claims.get("iss") != idaas.settings.issuer() or not claims.get("sub"):
        return None
    aud = claims.get("aud")
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else None
    if not isinstance(aud, str):
        return None
    return {**claims, "aud": aud}


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if len(values) == 1 and values[0] else None


async def logout(
    request: Request, idaas: Idaas, browser: Browser, params: Mapping[str, list[str]]
) -> Response:
    if request.method == "POST" and _one(params, "step") == "confirm":
        return await _confirmed(request, idaas, browser, params)
    claims = None
    hint = _one(params, "id_token_hint")
    if hint is not None:
        claims = await hint_claims(idaas, hint)
        if claims is None:
            return error_page("Sign-out refused", "The id_token_hint is not a valid ID token.")
    client_id = _one(params, "client_id")
    if claims is not None and client_id is not None and claims["aud"] != client_id:
        return error_page("Sign-out refused", "client_id does not match the id_token_hint.")
    client_id = client_id or (claims["aud"] if claims else None)
    client = None
    if client_id is not None:
        async with idaas.db.read() as session:
            client = await find_client(session, client_id)
        if client is None:
            return error_page("Sign-out refused", "No active application has this client_id.")
    uri = _one(params, "post_logout_redirect_uri")
    if uri is not None and (client is None or uri not in client.redirect_uris):
        return error_page(
            "Sign-out refused",
            "The address to return to after signing out is not registered for the application.",
        )
    state = _one(params, "state")
    who = await signed_in(idaas, browser)
    if claims is not None and (who is None or who.user.id == claims["sub"]):
        return await _finish(request, idaas, browser, who, client, uri, state, claims)
    if who is None:
        return await _finish(request, idaas, browser, None, client, uri, state, None)
    sealed = seal_json(
        idaas.secret, PURPOSE, {"client_id": client_id, "uri": uri, "state": state}, 1800
    )
    response = render(
        "logout.html",
        confirm=True,
        action=ACTION,
        email=who.user.email,
        client_name=client.name if client else None,
        request_token=sealed,
        csrf=browser.csrf_token(who.login.id),
    )
    return browser.apply(response)


async def _confirmed(
    request: Request, idaas: Idaas, browser: Browser, params: Mapping[str, list[str]]
) -> Response:
    data = unseal_json(idaas.secret, PURPOSE, _one(params, "request"))
    if data is None:
        return error_page("This page expired", "Start signing out again from the application.")
    who = await signed_in(idaas, browser)
    if not browser.csrf_ok(_one(params, "csrf"), who.login.id if who else None):
        return error_page("Request refused", "The form expired or did not come from this site.")
    client = None
    if data.get("client_id"):
        async with idaas.db.read() as session:
            client = await find_client(session, data["client_id"])
    uri = data.get("uri")
    if client is None or uri not in client.redirect_uris:
        uri = None
    return await _finish(request, idaas, browser, who, client, uri, data.get("state"), None)


async def _finish(
    request: Request,
    idaas: Idaas,
    browser: Browser,
    who: SignedIn | None,
    client: OAuthClient | None,
    uri: str | None,
    state: str | None,
    claims: dict[str, Any] | None,
) -> Response:
    origin = audit.Origin.of(request)
    async with idaas.db.transaction() as session:
        if who is not None:
            login = await session.get(Session, who.login.id)
            if login is not None:
                await idaas.issuer.revoke_session(session, login, reason="logout")
            audit.record(
                session,
                "oauth.logout",
                org_id=who.user.org_id,
                origin=origin,
                actor_id=who.user.id,
                actor_type="user",
                target_type="session",
                target_id=who.login.id,
                client_id=client.client_id if client else None,
            )
        sid = claims.get("sid") if claims else None
        if claims is not None and client is not None and isinstance(sid, str):
            tokens = await session.get(Session, sid)
            if (
                tokens is not None
                and tokens.client_id == client.client_id
                and tokens.user_id == claims["sub"]
            ):
                await idaas.issuer.revoke_session(session, tokens, reason="logout")
    browser.end()
    if uri is not None:
        return browser.apply(redirect(request, redirect_url(uri, {"state": state})))
    return browser.apply(render("logout.html", confirm=False))
