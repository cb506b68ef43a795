"""The provider's public paths: discovery and /oauth2/*."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from nexus.kernel.auth import Principal, all_permissions, current_principal
from nexus.kernel.errors import Forbidden, Unauthorized
from nexus.services.idaas.deps import Idaas, get_idaas
from nexus.services.idaas.models import User
from nexus.services.idaas.oidc import authorize as authz
from nexus.services.idaas.oidc import scopes
from nexus.services.idaas.oidc.browser import Browser
from nexus.services.idaas.oidc.clients import GRANT_TYPES
from nexus.services.idaas.oidc.errors import NO_STORE
from nexus.services.idaas.oidc.grants import token_endpoint, user_claims
from nexus.services.idaas.oidc.introspection import (
    introspection_endpoint,
    revocation_endpoint,
    revoked_tokens,
    session_live,
)
from nexus.services.idaas.oidc.logout import logout

router = APIRouter(tags=["oidc"])

FORM_LIMITS: dict[str, Any] = {"max_files": 0, "max_fields": 100}
CLAIMS = "iss sub aud exp iat auth_time nonce sid at_hash amr email email_verified name org_id"
CLAIMS_SUPPORTED = CLAIMS.split()


def _browser(request: Request, idaas: Idaas) -> Browser:
    secure = request.url.scheme == "https" or idaas.settings.issuer().startswith("https://")
    return Browser(request, idaas.secret, secure=secure, ttl_s=idaas.idaas.session_ttl_s)


def _multi(items: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in items:
        out.setdefault(key, []).append(value if isinstance(value, str) else "")
    return out


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Connect discovery",
    response_model=None,
)
async def discovery(idaas: Idaas = Depends(get_idaas)) -> JSONResponse:
    issuer = idaas.settings.issuer()
    permissions = sorted(all_permissions(idaas.runtime.services))
    auth_methods = ["client_secret_basic", "client_secret_post"]
    body = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        "scopes_supported": [*scopes.OIDC_SCOPES, *permissions],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": sorted(authz.PROMPTS),
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


@router.get(
    "/oauth2/authorize",
    summary="Authorization endpoint (code + PKCE S256), with login and consent pages",
    response_class=Response,
)
async def authorize(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    return await _authorize(request, idaas)


@router.post(
    "/oauth2/authorize",
    summary="Authorization request as a form post; the login, MFA and consent forms",
    response_class=Response,
)
async def authorize_post(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    return await _authorize(request, idaas)


async def _authorize(request: Request, idaas: Idaas) -> Response:
    browser = _browser(request, idaas)
    try:
        if request.method == "POST":
            form = await request.form(**FORM_LIMITS)
            if "step" in form:  # one of our own forms: login, MFA, consent
                flow, step = await authz.resume(request, idaas, browser, form)
                return await authz.STEPS[step](flow, form)
            params = _multi(form.multi_items())
        else:
            params = _multi(request.query_params.multi_items())
        async with idaas.db.read() as session:
            req, client, org = await authz.parse(session, params)
        flow = authz.Flow(request, idaas, browser, req, client, org)
        return await authz.proceed(flow, await authz.signed_in(idaas, browser), fresh=False)
    except authz.ShowError as exc:
        return browser.apply(authz.show(exc))
    except authz.RedirectError as exc:
        return browser.apply(authz.error_redirect(request, idaas.settings.issuer(), exc))


@router.post(
    "/oauth2/token",
    summary="Token endpoint: authorization_code, refresh_token, client_credentials",
    response_class=Response,
)
async def token(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    return await token_endpoint(request, idaas)


async def _userinfo(principal: Principal, idaas: Idaas) -> JSONResponse:
    claims = principal.claims
    granted = scopes.split(claims.get("scope") if isinstance(claims.get("scope"), str) else "")
    oauth = bool(claims.get("client_id"))
    if principal.kind != "user" or (oauth and "openid" not in granted):
        raise Forbidden(
            "This token does not allow reading the user's profile (scope openid).",
            slug="insufficient-scope",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'},
        )
    invalid = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if await revoked_tokens(idaas.runtime).contains(principal.token_id):
        raise Unauthorized("The access token was revoked.", headers=invalid)
    async with idaas.db.read() as session:
        user = await session.get(User, principal.subject)
        live = await session_live(session, principal.session_id, principal.org_id)
    if user is None or user.org_id != principal.org_id or user.status != "active" or not live:
        raise Unauthorized("The session of this token has ended.", headers=invalid)
    body: dict[str, Any] = {"sub": user.id}
    body.update(user_claims(user, granted if oauth else ["email", "profile"]))
    return JSONResponse(body, headers=NO_STORE)


@router.get("/oauth2/userinfo", summary="Claims about the signed-in user", response_model=None)
async def userinfo(
    principal: Principal = Depends(current_principal), idaas: Idaas = Depends(get_idaas)
) -> JSONResponse:
    return await _userinfo(principal, idaas)


@router.post("/oauth2/userinfo", include_in_schema=False, response_model=None)
async def userinfo_post(
    principal: Principal = Depends(current_principal), idaas: Idaas = Depends(get_idaas)
) -> JSONResponse:
    return await _userinfo(principal, idaas)


@router.post(
    "/oauth2/introspect", summary="Token introspection (RFC 7662)", response_class=Response
)
async def introspect(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    return await introspection_endpoint(request, idaas)


@router.post("/oauth2/revoke", summary="Token revocation (RFC 7009)", response_class=Response)
async def revoke(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    return await revocation_endpoint(request, idaas)


@router.get("/oauth2/logout", summary="RP-initiated logout", response_class=Response)
async def end_session(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    params = _multi(request.query_params.multi_items())
    return await logout(request, idaas, _browser(request, idaas), params)


@router.post("/oauth2/logout", summary="RP-initiated logout (form post)", response_class=Response)
async def end_session_post(request: Request, idaas: Idaas = Depends(get_idaas)) -> Response:
    params = _multi((await request.form(**FORM_LIMITS)).multi_items())
    return await logout(request, idaas, _browser(request, idaas), params)
