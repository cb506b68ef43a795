"""Errors as `application/problem+json` (RFC 9457) with stable `type` URIs.

Service code raises `Problem` subclasses (or FastAPI's HTTPException); the handlers
installed by the app factory turn every failure, including validation errors and
unexpected exceptions, into a problem document. A 500 never carries a stack trace.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("nexus.http")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://nexus.dev/problems/"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    423: "Locked",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    410: "gone",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    423: "locked",
    429: "rate-limited",
    500: "internal-error",
    502: "bad-gateway",
    503: "unavailable",
    504: "timeout",
}


class Problem(Exception):
    """An error with its HTTP status, a stable type slug and a human detail."""

    status = 400
    slug: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        self.headers = headers or {}
        self.extra = extra


class BadRequest(Problem):
    status = 400


class Unauthorized(Problem):
    status = 401

    def __init__(self, detail: str = "Authentication required.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status = 403


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class RateLimited(Problem):
    status = 429


class Unavailable(Problem):
    status = 503


def problem_body(status: int, detail: str, slug: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or _SLUGS.get(status, "error")),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status, detail, slug, instance=instance, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts) or "body"


def _wrong_media_type(request: Request, exc: RequestValidationError) -> bool:
    """A JSON body was expected but the request declared another media type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type == "application/json" or content_type.endswith("+json"):
        return False
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    body_params = getattr(dependant, "body_params", None) or []
    if not body_params or any(isinstance(p.field_info, params.Form) for p in body_params):
        return False
    return any(tuple(err.get("loc", ()))[:1] == ("body",) for err in exc.errors())


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            slug=exc.slug,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}."
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(
            exc.status_code,
            detail,
            headers=getattr(exc, "headers", None),
            instance=request.url.path,
        )

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _wrong_media_type(request, exc):
            given = request.headers.get("content-type") or "none"
            return problem_response(
                415,
                f"Send the body as application/json (Content-Type was {given}).",
                instance=request.url.path,
            )
        errors = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                return problem_response(
                    400,
                    f"The body is not valid JSON: {ctx.get('error', 'parse error')}.",
                    slug="malformed-json",
                    instance=request.url.path,
                )
            errors.append(
                {
                    "field": _field_path(err.get("loc", ())),
                    "message": err.get("msg", "invalid"),
                    "code": err.get("type", "invalid"),
                }
            )
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            422,
            f"The request is not valid: {summary}.",
            errors=errors,
            instance=request.url.path,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(
            500,
            "Something went wrong on our side; it has been logged.",
            instance=request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
