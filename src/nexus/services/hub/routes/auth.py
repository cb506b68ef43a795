"""Login (password, then the MFA step when enrolled) and logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub import api, sessions
from nexus.services.hub.web import Ctx, HubRoute, redirect, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
MFA_COOKIE = "nexus_hub_mfa"


def safe_next(value: Any) -> str:
    """Only paths of this site: no scheme, no host, no `//evil`."""
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text or len(text) > 500:
        return "/"
    return text


def _pre_form(request: Request, template: str, *, next_url: str = "/", **values: Any) -> Response:
    """A form shown before login, with its CSRF token bound to the pre-session cookie."""
    pre = sessions.pre_cookie(request)
    response = render(
        request,
        template,
        next=safe_next(next_url),
        csrf=sessions.login_csrf(pre),
        **values,
    )
    sessions.set_cookie(response, request, sessions.PRE_COOKIE, pre, 3600)
    return response


def _login_form(
    request: Request,
    *,
    error: str = "",
    email: str = "",
    notice: str = "",
    next_url: str | None = None,
) -> Response:
    return _pre_form(
        request,
        "login.html",
        next_url=next_url or request.query_params.get("next") or "/",
        error=error,
        notice=notice,
        email=email,
    )


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await sessions.load(request) is not None:
        return redirect(safe_next(request.query_params.get("next")), request)
    notice = ""
    if request.query_params.get("reason") == "expired":
        notice = "Your session has ended. Please log in again."
    elif request.query_params.get("bye"):
        notice = "You are logged out."
    return _login_form(request, notice=notice)


def _too_many(response_status: int) -> str | None:
    if response_status == 429:
        return "Too many attempts. Wait a minute, then try again."
    return None


async def _signed_in(request: Request, body: dict[str, Any], target: str) -> Response:
    cookie, _row = await sessions.start(request, sessions.Tokens.of(body))
    response = redirect(target, request)
    sessions.set_cookie(
        response, request, sessions.COOKIE, cookie, int(sessions.SESSION_TTL.total_seconds())
    )
    response.delete_cookie(MFA_COOKIE, path="/")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    org = str(form.get("org") or "").strip()
    target = safe_next(form.get("next"))
    if not sessions.check_pre_token(request, str(form.get("csrf") or "")):
        return _login_form(
            request,
            email=email,
            error="The login form expired. Please enter your details again.",
            next_url=target,
        )
    if not email or not password:
        return _login_form(
            request,
            email=email,
            error="Enter your e-mail address and password.",
            next_url=target,
        )
    body: dict[str, Any] = {"email": email, "password": password}
    if org:
        body["org"] = org
    answer = await api.call(request, "idaas", "POST", "/auth/login", json=body)
    if answer.status_code == 200:
        data = answer.json()
        if data.get("mfa_required"):
            response = redirect("/login/mfa?next=" + quote(target, safe=""), request)
            sessions.set_cookie(
                response,
                request,
                MFA_COOKIE,
                sessions.seal_mfa(request, data["mfa_token"], email),
                sessions.MFA_TTL_S,
            )
            return response
        return await _signed_in(request, data, target)
    error = _too_many(answer.status_code)
    if error is None:
        if answer.status_code in {401, 422}:
            error = "The e-mail or password is not right."
        else:
            error = api.ApiError.of("idaas", answer).detail
    return _login_form(request, email=email, error=error, next_url=target)


def _mfa_form(request: Request, *, error: str = "", next_url: str | None = None) -> Response:
    pending = sessions.open_mfa(request, request.cookies.get(MFA_COOKIE))
    if pending is None:
        return redirect("/login?reason=expired", request)
    return _pre_form(
        request,
        "mfa.html",
        next_url=next_url or request.query_params.get("next") or "/",
        error=error,
        email=pending["e"],
    )


@router.get("/login/mfa")
async def mfa_page(request: Request) -> Response:
    return _mfa_form(request)


@router.post("/login/mfa")
async def mfa_verify(request: Request) -> Response:
    form = await request.form()
    target = safe_next(form.get("next"))
    code = "".join(str(form.get("code") or "").split())
    pending = sessions.open_mfa(request, request.cookies.get(MFA_COOKIE))
    if pending is None:
        return redirect("/login?reason=expired", request)
    if not sessions.check_pre_token(request, str(form.get("csrf") or "")):
        return _mfa_form(
            request,
            error="The form expired. Please enter the code again.",
            next_url=target,
        )
    if not 6 <= len(code) <= 20:
        return _mfa_form(
            request,
            error="Enter the 6-digit code from your app, or a recovery code.",
            next_url=target,
        )
    answer = await api.call(
        request, "idaas", "POST", "/auth/mfa/verify", json={"mfa_token": pending["t"], "code": code}
    )
    if answer.status_code == 200:
        return await _signed_in(request, answer.json(), target)
    error = (
        _too_many(answer.status_code) or "That code is not right. Codes change every 30 seconds."
    )
    if answer.status_code == 401 and "expired" in answer.text.lower():
        return redirect("/login?reason=expired", request)
    return _mfa_form(request, error=error, next_url=target)


@router.post("/logout")
async def logout(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    try:
        token = await sessions.access_token(request, ctx.row)
        await api.call(request, "idaas", "POST", "/auth/logout", token=token)
    except sessions.NeedLogin:
        pass
    await sessions.forget(request, ctx.row)
    response = redirect("/login?bye=1", request)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
