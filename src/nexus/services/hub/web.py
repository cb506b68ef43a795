"""What every Hub page shares: templates, the signed-in context, CSRF, error pages.

Routes use `HubRoute`, which turns the exceptions a page can meet into answers a person
understands: no session → the login form (with `next`), an API problem → the page's
error panel in plain words (for HTMX requests, swapped into the `#flash` area).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

import nexus
from nexus.kernel.auth import permission_matches
from nexus.kernel.errors import Problem
from nexus.services.hub import api, sessions
from nexus.services.hub.api import ApiError
from nexus.services.hub.models import HubSession
from nexus.services.hub.nav import nav_for

HERE = Path(__file__).parent
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def htmx_file() -> Path:
    spec = importlib.util.find_spec("js_lib_htmx")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("htmx is missing: pip install django-js-lib-htmx")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "htmx" / "htmx.min.js"


def _when(value: Any) -> str:
    """A timestamp as people read it (UTC, to the second)."""
    if not value:
        return "\u2013"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return str(value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"))


def _ago(value: Any) -> str:
    if not value:
        return "never"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    seconds = int((dt.datetime.now(dt.UTC) - value).total_seconds())
    for size, unit in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _money(value: Any, currency: str | None = None) -> str:
    if value in (None, ""):
        return "\u2013"
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return f"{text} {currency}" if currency else text


BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx", "a script (httpx)"),
)
SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def _agent(value: Any) -> str:
    """'Chrome on Linux' from a User-Agent header (good enough to recognise a session)."""
    text = str(value or "")
    if not text:
        return "unknown"
    browser = next((name for key, name in BROWSERS if key in text), "a browser")
    system = next((name for key, name in SYSTEMS if key in text), "")
    return f"{browser} on {system}" if system else browser


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(
    when=_when, ago=_ago, money=_money, agent=_agent, urlquote=lambda s: quote(str(s), safe="")
)
env.globals.update(version=nexus.__version__)


class Ctx:
    """The signed-in person on one request, and their way to the services' APIs."""

    def __init__(self, request: Request, row: HubSession) -> None:
        self.request = request
        self.row = row

    @property
    def csrf(self) -> str:
        return self.row.csrf

    def can(self, *permissions: str) -> bool:
        granted = self.row.permissions
        return all(any(permission_matches(g, p) for g in granted) for p in permissions)

    def running(self, service: str) -> bool:
        runtime = self.request.app.state.runtime
        return service in runtime.by_name or service in runtime.settings.service_urls

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The API's JSON answer; raises ApiError on a problem."""
        token = await sessions.access_token(self.request, self.row)
        response = await api.call(
            self.request,
            service,
            method,
            path,
            token=token,
            json=json,
            params=params,
            headers=headers,
        )
        if response.status_code == 401:  # revoked or rotated keys: one refresh, then give up
            token = await sessions.access_token(self.request, self.row, force=True)
            response = await api.call(
                self.request,
                service,
                method,
                path,
                token=token,
                json=json,
                params=params,
                headers=headers,
            )
            if response.status_code == 401:
                await sessions.forget(self.request, self.row)
                raise sessions.NeedLogin("Your session has ended. Please log in again.")
        if response.status_code >= 400:
            raise ApiError.of(service, response)
        return response.json() if response.content else None

    async def get(self, service: str, path: str, **params: Any) -> Any:
        return await self.call(service, "GET", path, params=params)

    async def post(self, service: str, path: str, json: Any = None) -> Any:
        return await self.call(service, "POST", path, json=json)


async def signed_in(request: Request) -> Ctx:
    """Route dependency: the session, with the CSRF check on every unsafe request."""
    row = await sessions.load(request)
    if row is None:
        raise sessions.NeedLogin()
    if request.method not in SAFE_METHODS:
        submitted = request.headers.get("x-csrf-token")
        if not submitted:
            form = await request.form()
            value = form.get("csrf")
            submitted = value if isinstance(value, str) else None
        sessions.check_csrf(row, submitted)
    return Ctx(request, row)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    ctx: Ctx | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    page = env.get_template(template)
    html = page.render(
        request=request,
        hub=ctx,
        nav=nav_for(ctx, request.url.path) if ctx else [],
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def redirect(url: str, request: Request) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})


def problem_page(request: Request, status: int, detail: str, ctx: Ctx | None = None) -> Response:
    if is_htmx(request):
        return render(
            request,
            "_flash.html",
            ctx,
            kind="error",
            message=detail,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return render(request, "error.html", ctx, status=status, status_code=status, message=detail)


def login_redirect(request: Request, reason: str = "") -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method not in SAFE_METHODS or is_htmx(request):
        target = request.headers.get("hx-current-url") or "/"
        if "://" in target:
            target = "/" + target.split("://", 1)[1].split("/", 1)[-1]
    url = "/login?next=" + quote(target, safe="")
    if reason:
        url += "&reason=expired"
    return redirect(url, request)


class HubRoute(APIRoute):
    """Pages answer HTML whatever happens: login redirects and plain-words errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except sessions.NeedLogin as exc:
                return login_redirect(request, exc.reason)
            except ApiError as exc:
                ctx = await _ctx_quietly(request)
                return problem_page(request, exc.status, exc.detail, ctx)
            except Problem as exc:
                ctx = await _ctx_quietly(request)
                return problem_page(request, exc.status, exc.detail, ctx)

        return handler


async def _ctx_quietly(request: Request) -> Ctx | None:
    row = await sessions.load(request)
    return Ctx(request, row) if row else None


def form_errors(exc: ApiError) -> dict[str, str]:
    """Field name -> message, from a 422's `errors` (`body.email` -> `email`)."""
    out: dict[str, str] = {}
    for error in exc.errors:
        name = error["field"].split(".")[-1] if error["field"] else ""
        out.setdefault(name, error["message"])
    return out


def svg(markup: str) -> Markup:
    """SVG we generated ourselves (labels escaped when it was built)."""
    return Markup(markup)  # noqa: S704 - built by charts.py / segno from escaped text
