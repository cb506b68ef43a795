"""The authorization endpoint: authorization code with PKCE (S256 only, for every client).

Until the client and its redirect URI are known to be right, errors are shown to the
user as a page; after that they go back to the client as `error=` on its redirect URI
(RFC 6749 §4.1.2.1), with the `state` it sent and the issuer (RFC 9207).

Steps: no live provider session (or `prompt=login`, or `max_age` passed) → the login
page, then the TOTP page when the user has MFA (both reuse IDaaS's own login); then the
consent page unless the client needs none or the user approved these scopes before;
then a code (stored hashed, single use, 60 s) bound to the client, redirect URI, PKCE
challenge, nonce, scope and session.

Every form carries the validated request sealed (so the user cannot alter it between
steps, and it is checked again on each step) and a CSRF token.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import all_permissions
from nexus.kernel.crypto import random_token, token_hash
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Problem, RateLimited
from nexus.kernel.ratelimit import client_ip, enforce
from nexus.services.idaas import audit, mfa
from nexus.services.idaas.deps import Idaas
from nexus.services.idaas.login import MfaRequired, check_password, password_login
from nexus.services.idaas.models import AuthorizationCode, OAuthClient, Org, Session, User
from nexus.services.idaas.oidc import scopes
from nexus.services.idaas.oidc.browser import Browser, seal_json, unseal_json
from nexus.services.idaas.oidc.clients import find_client
from nexus.services.idaas.oidc.pages import SECURITY_HEADERS, error_page, render
from nexus.services.idaas.tokens import TokenPair

log = structlog.get_logger("nexus.idaas.oidc")

CODE_TTL_S = 60
CODE_PREFIX = "nxc_"
REQUEST_PURPOSE = "idaas.oidc.request"
REQUEST_TTL_S = 1800  # time to sign in before the form goes stale
MFA_PURPOSE = "idaas.oidc.mfa"
ACTION = "/oauth2/authorize"
PROMPTS = {"none", "login", "consent", "select_account"}
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256(verifier)), no padding


class ShowError(Exception):
    """Tell the user; do not redirect (the client or redirect URI is not trusted)."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


class RedirectError(Exception):
    """Send the browser back to the (validated) redirect URI with `error=`."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None):
        super().__init__(f"{error}: {description}")
        self.redirect_uri, self.error, self.description, self.state = (
            redirect_uri,
            error,
            description,
            state,
        )


@dataclass
class AuthRequest:
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: set[str]
    max_age: int | None
    login_hint: str | None

    def params(self) -> dict[str, str]:
        """The request as parameters again (sealed into the forms, parsed on each step)."""
        out = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": scopes.join(self.scope),
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            "nonce": self.nonce,
            "prompt": " ".join(sorted(self.prompt)) or None,
            "max_age": str(self.max_age) if self.max_age is not None else None,
            "login_hint": self.login_hint,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Flow:
    """One step of the authorization flow: the request, its client, the browser."""

    request: Request
    idaas: Idaas
    browser: Browser
    req: AuthRequest
    client: OAuthClient
    org: Org

    @property
    def origin(self) -> audit.Origin:
        return audit.Origin.of(self.request)

    @property
    def issuer(self) -> str:
        return self.idaas.settings.issuer()


# -- parsing ---------------------------------------------------------------------------------
def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if values and values[0] != "" else None


async def parse(
    session: AsyncSession, params: Mapping[str, list[str]]
) -> tuple[AuthRequest, OAuthClient, Org]:
    """Validate an authorization request (raises ShowError or RedirectError)."""
    client_ids = params.get("client_id") or []
    if len(client_ids) != 1 or not client_ids[0]:
        raise ShowError(
            "Unknown application",
            "The sign-in request names no application (client_id)."
            if not client_ids
            else "The sign-in request names its application more than once.",
        )
    client = await find_client(session, client_ids[0])
    org = await session.get(Org, client.org_id) if client is not None else None
    if client is None or org is None or org.status != "active":
        raise ShowError("Unknown application", "No active application has this client_id.")
    redirect_uris = params.get("redirect_uri") or []
    if len(redirect_uris) != 1 or redirect_uris[0] not in client.redirect_uris:
        log.warning("oidc.authorize.bad_redirect_uri", client_id=client.client_id)
        raise ShowError(
            "Wrong redirect address",
            "The address this sign-in would return to is not registered for "
            f"{client.name}; the request was stopped so you are not sent elsewhere.",
        )
    redirect_uri = redirect_uris[0]
    state = _one(params, "state")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state)

    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise fail("invalid_request", f"Parameters given more than once: {', '.join(repeated)}.")
    if "request" in params:
        raise fail("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported.")
    response_type = _one(params, "response_type")
    if response_type is None:
        raise fail("invalid_request", "response_type is required.")
    if response_type != "code":
        raise fail("unsupported_response_type", "Only response_type=code is supported.")
    if _one(params, "response_mode") not in {None, "query"}:
        raise fail("invalid_request", "Only response_mode=query is supported.")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "This client may not use the authorization code grant.")
    challenge = _one(params, "code_challenge")
    method = _one(params, "code_challenge_method")
    if challenge is None:
        raise fail("invalid_request", "PKCE is required: send code_challenge (S256).")
    if method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256 (plain is refused).")
    if not CHALLENGE.match(challenge):
        raise fail("invalid_request", "code_challenge is not a BASE64URL SHA-256 digest.")
    requested = scopes.split(_one(params, "scope"))
    if not requested:
        raise fail("invalid_scope", "scope is required (for OpenID Connect: openid ...).")
    if len(requested) > scopes.MAX_SCOPE_VALUES:
        raise fail("invalid_scope", "Too many scope values.")
    refused = scopes.not_allowed(requested, client.scopes)
    if refused:
        raise fail("invalid_scope", f"Not allowed for this client: {' '.join(refused[:10])}.")
    if "offline_access" in requested and "refresh_token" not in client.grant_types:
        raise fail("invalid_scope", "offline_access: this client gets no refresh tokens.")
    nonce = _one(params, "nonce")
    if nonce is not None and len(nonce) > 255:
        raise fail("invalid_request", "nonce is longer than 255 characters.")
    prompt = set((_one(params, "prompt") or "").split())
    if not prompt <= PROMPTS:
        unknown = " ".join(sorted(prompt - PROMPTS))
        raise fail("invalid_request", f"Unknown prompt value: {unknown}.")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values.")
    raw_max_age = _one(params, "max_age")
    max_age = None
    if raw_max_age is not None:
        if not raw_max_age.isdigit() or len(raw_max_age) > 9:
            raise fail("invalid_request", "max_age must be a number of seconds.")
        max_age = int(raw_max_age)
    login_hint = _one(params, "login_hint")
    req = AuthRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=requested,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=login_hint[:320] if login_hint else None,
    )
    return req, client, org


def redirect_url(uri: str, params: dict[str, str | None]) -> str:
    """`uri` with `params` added to its query (its own query is kept)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redirect(request: Request, url: str) -> RedirectResponse:
    status = 303 if request.method == "POST" else 302
    headers = {k: v for k, v in SECURITY_HEADERS.items() if not k.startswith("Content-Security")}
    return RedirectResponse(url, status_code=status, headers=headers)


def error_redirect(request: Request, issuer: str, exc: RedirectError) -> RedirectResponse:
    url = redirect_url(
        exc.redirect_uri,
        {
            "error": exc.error,
            "error_description": exc.description,
            "state": exc.state,
            "iss": issuer,
        },
    )
    return redirect(request, url)


# -- the provider's browser session ----------------------------------------------------------
@dataclass
class SignedIn:
    login: Session
    user: User


async def signed_in(idaas: Idaas, browser: Browser) -> SignedIn | None:
    """The live provider session the browser's cookie names, if any."""
    sid = browser.session_id()
    if sid is None:
        return None
    async with idaas.db.read() as session:
        login = await session.get(Session, sid)
        if (
            login is None
            or login.client_id is not None
            or login.revoked_at is not None
            or login.expires_at <= utcnow()
        ):
            return None
        user = await session.get(User, login.user_id)
    if user is None or user.status != "active" or user.org_id != login.org_id:
        return None
    return SignedIn(login, user)


# -- steps ----------------------------------------------------------------------------------
async def proceed(flow: Flow, who: SignedIn | None, *, fresh: bool) -> Response:
    """Login if needed, then consent if needed, then the code."""
    req = flow.req
    notice = None
    if who is not None and who.user.org_id != flow.client.org_id:
        notice = f"{flow.client.name} needs an account of {flow.org.name}."
        who = None
    if who is not None and not fresh:
        if "login" in req.prompt or "select_account" in req.prompt:
            who = None
        elif req.max_age is not None:
            age = (utcnow() - who.login.created_at).total_seconds()
            if age > req.max_age:
                who = None
    if who is None:
        if "none" in req.prompt:
            raise RedirectError(
                req.redirect_uri, "login_required", "The user is not signed in.", req.state
            )
        return login_page(flow, notice=notice)
    needs_consent = "consent" in req.prompt or (
        flow.client.require_consent
        and not flow.browser.consented(who.user.id, flow.client.client_id, req.scope)
    )
    if needs_consent:
        if "none" in req.prompt:
            raise RedirectError(
                req.redirect_uri, "consent_required", "The user has not approved this.", req.state
            )
        return consent_page(flow, who)
    return await issue_code(flow, who)


def _request_token(flow: Flow) -> str:
    return seal_json(flow.idaas.secret, REQUEST_PURPOSE, flow.req.params(), REQUEST_TTL_S)


def login_page(
    flow: Flow,
    *,
    error: str | None = None,
    notice: str | None = None,
    email: str | None = None,
    org: str = "",
    status: int = 200,
) -> Response:
    response = render(
        "login.html",
        status=status,
        action=ACTION,
        client_name=flow.client.name,
        org_name=flow.org.name,
        org_slug=flow.org.slug,
        notice=notice,
        error=error,
        email=email if email is not None else flow.req.login_hint or "",
        org=org,
        request_token=_request_token(flow),
        csrf=flow.browser.csrf_token(None),
    )
    return flow.browser.apply(response)


def mfa_page(
    flow: Flow, mfa_token: str, *, error: str | None = None, status: int = 200
) -> Response:
    sealed = seal_json(
        flow.idaas.secret, MFA_PURPOSE, {"t": mfa_token}, flow.idaas.idaas.mfa_challenge_ttl_s
    )
    response = render(
        "mfa.html",
        status=status,
        action=ACTION,
        error=error,
        mfa=sealed,
        request_token=_request_token(flow),
        csrf=flow.browser.csrf_token(None),
    )
    return flow.browser.apply(response)


def consent_page(flow: Flow, who: SignedIn) -> Response:
    known = all_permissions(flow.idaas.runtime.services)
    items = [
        {
            "value": value,
            "text": scopes.describe(value, known),
            "permission": scopes.is_permission(value),
        }
        for value in flow.req.scope
    ]
    response = render(
        "consent.html",
        action=ACTION,
        client_name=flow.client.name,
        org_name=flow.org.name,
        scopes=items,
        email=who.user.email,
        request_token=_request_token(flow),
        csrf=flow.browser.csrf_token(who.login.id),
    )
    return flow.browser.apply(response)


async def issue_code(flow: Flow, who: SignedIn, *, consent: bool = False) -> Response:
    req, client = flow.req, flow.client
    code = random_token(CODE_PREFIX)
    async with flow.idaas.db.transaction() as session:
        session.add(
            AuthorizationCode(
                org_id=client.org_id,
                code_hash=token_hash(code),
                client_id=client.client_id,
                user_id=who.user.id,
                redirect_uri=req.redirect_uri,
                scope=scopes.join(req.scope),
                nonce=req.nonce,
                code_challenge=req.code_challenge,
                session_id=who.login.id,
                expires_at=utcnow() + dt.timedelta(seconds=CODE_TTL_S),
            )
        )
        if consent:
            flow.browser.remember_consent(who.user.id, client.client_id, req.scope)
            audit.record(
                session,
                "oauth.consent.granted",
                org_id=client.org_id,
                origin=flow.origin,
                actor_id=who.user.id,
                actor_type="user",
                target_type="oauth_client",
                target_id=client.client_id,
                scope=scopes.join(req.scope),
            )
    url = redirect_url(req.redirect_uri, {"code": code, "state": req.state, "iss": flow.issuer})
    return flow.browser.apply(redirect(flow.request, url))


# -- form posts -----------------------------------------------------------------------------
async def _limited(flow: Flow, name: str) -> bool:
    """Count one attempt from this address; True when over the limit."""
    per_minute = flow.idaas.idaas.login_rate_per_minute
    try:
        await enforce(
            flow.request, f"idaas.oauth.{name}", client_ip(flow.request), limit=per_minute, per_s=60
        )
    except RateLimited:
        return True
    return False


async def _signed_in_after(
    flow: Flow, session: AsyncSession, pair: TokenPair
) -> SignedIn | Problem:
    """The new provider session; ends the one the browser had before. Refuses a user of
    another org than the client's (the login is scoped to it, so this is a backstop)."""
    login = await session.get(Session, pair.session_id)
    assert login is not None
    user = await session.get(User, login.user_id)
    assert user is not None
    if user.org_id != flow.client.org_id:
        await flow.idaas.issuer.revoke_session(session, login, reason="wrong_org")
        audit.record(
            session,
            "oauth.login.refused",
            org_id=user.org_id,
            origin=flow.origin,
            actor_id=user.id,
            actor_type="user",
            target_type="oauth_client",
            target_id=flow.client.client_id,
            result="failure",
            reason="wrong_org",
        )
        return Problem(f"Sign in with an account of {flow.org.name}.", status=403)
    previous = flow.browser.session_id()
    if previous and previous != login.id:
        old = await session.get(Session, previous)
        if old is not None and old.client_id is None:
            await flow.idaas.issuer.revoke_session(session, old, reason="replaced")
    return SignedIn(login, user)


def _org_matches(given: str, org: Org) -> bool:
    given = given.strip().lower()
    return not given or given in {org.id.lower(), org.slug.lower()}


async def login_step(flow: Flow, form: Mapping[str, Any]) -> Response:
    email = str(form.get("email") or "")[:320]
    password = str(form.get("password") or "")[:1024]
    org_given = str(form.get("org") or "")[:63]
    if not flow.browser.csrf_ok(str(form.get("csrf") or ""), None):
        return login_page(
            flow, error="The form expired; please sign in again.", email=email, status=400
        )
    if await _limited(flow, "login"):
        return login_page(
            flow, error="Too many attempts; wait a minute and try again.", email=email, status=429
        )
    if not email or not password:
        return login_page(flow, error="Enter your e-mail and password.", email=email, status=400)
    if not _org_matches(org_given, flow.org):
        return login_page(
            flow,
            error=f"{flow.client.name} belongs to {flow.org.name}; "
            "sign in with an account of that organization.",
            email=email,
            org=org_given,
            status=401,
        )
    matched = await check_password(
        flow.idaas.db,
        flow.idaas.idaas,
        email=email,
        password=password,
        org=flow.client.org_id,
        origin=flow.origin,
    )
    async with flow.idaas.db.transaction() as session:
        outcome = await password_login(
            session,
            flow.idaas.issuer,
            flow.idaas.idaas,
            email=email,
            matched_ids=matched,
            org=flow.client.org_id,  # only users of the client's org can sign in here
            origin=flow.origin,
        )
        if isinstance(outcome, TokenPair):
            outcome = await _signed_in_after(flow, session, outcome)
    if isinstance(outcome, Problem):
        return login_page(
            flow, error=outcome.detail, email=email, org=org_given, status=outcome.status
        )
    if isinstance(outcome, MfaRequired):
        return mfa_page(flow, outcome.mfa_token)
    flow.browser.start(outcome.login.id)
    return await proceed(flow, outcome, fresh=True)


async def mfa_step(flow: Flow, form: Mapping[str, Any]) -> Response:
    sealed = unseal_json(flow.idaas.secret, MFA_PURPOSE, str(form.get("mfa") or ""))
    if sealed is None or not isinstance(sealed.get("t"), str):
        return login_page(flow, error="The verification step expired; sign in again.", status=401)
    mfa_token = sealed["t"]
    if not flow.browser.csrf_ok(str(form.get("csrf") or ""), None):
        return mfa_page(
            flow, mfa_token, error="The form expired; enter the code again.", status=400
        )
    if await _limited(flow, "mfa"):
        return mfa_page(
            flow, mfa_token, error="Too many attempts; wait a minute and try again.", status=429
        )
    code = str(form.get("code") or "").strip()[:20]
    async with flow.idaas.db.transaction() as session:
        outcome: TokenPair | SignedIn | Problem = await mfa.verify_challenge(
            session,
            flow.idaas.issuer,
            flow.idaas.idaas,
            flow.idaas.secret,
            mfa_token=mfa_token,
            code=code,
            origin=flow.origin,
        )
        if isinstance(outcome, TokenPair):
            outcome = await _signed_in_after(flow, session, outcome)
    if isinstance(outcome, Problem):
        if outcome.slug == "invalid-code":
            return mfa_page(flow, mfa_token, error=outcome.detail, status=outcome.status)
        return login_page(flow, error=outcome.detail, status=outcome.status)
    assert isinstance(outcome, SignedIn)
    flow.browser.start(outcome.login.id)
    return await proceed(flow, outcome, fresh=True)


async def consent_step(flow: Flow, form: Mapping[str, Any]) -> Response:
    who = await signed_in(flow.idaas, flow.browser)
    if who is None or who.user.org_id != flow.client.org_id:
        return login_page(flow, notice="Your session ended; sign in again.")
    if not flow.browser.csrf_ok(str(form.get("csrf") or ""), who.login.id):
        return error_page("Request refused", "The form expired or did not come from this site.")
    decision = form.get("decision")
    if decision == "allow":
        return await issue_code(flow, who, consent=True)
    async with flow.idaas.db.transaction() as session:
        audit.record(
            session,
            "oauth.consent.denied",
            org_id=flow.client.org_id,
            origin=flow.origin,
            actor_id=who.user.id,
            actor_type="user",
            target_type="oauth_client",
            target_id=flow.client.client_id,
            result="failure",
        )
    raise RedirectError(
        flow.req.redirect_uri, "access_denied", "The user did not allow access.", flow.req.state
    )


STEPS = {"login": login_step, "mfa": mfa_step, "consent": consent_step}


async def resume(
    request: Request, idaas: Idaas, browser: Browser, form: Mapping[str, Any]
) -> tuple[Flow, str]:
    """The flow a posted form continues, checked again from the start."""
    params = unseal_json(idaas.secret, REQUEST_PURPOSE, str(form.get("request") or ""))
    if params is None:
        raise ShowError(
            "This page expired",
            "The sign-in took too long or the form was altered. Go back to the application "
            "and start again.",
        )
    step = str(form.get("step") or "")
    if step not in STEPS:
        raise ShowError("Request refused", "Unknown step.")
    async with idaas.db.read() as session:
        req, client, org = await parse(
            session, {k: [str(v)] for k, v in params.items() if k != "exp"}
        )
    return Flow(request, idaas, browser, req, client, org), step


def show(exc: ShowError) -> Response:
    return error_page(exc.title, exc.message, status=exc.status)
