"""The ASGI app factory and the middleware every Nexus process runs.

`create_app()` builds one FastAPI app that mounts the routers of the services this
process runs under `/api/v1` (and their public paths at the root), plus `/health`,
`/ready` and `/metrics`. The middleware gives each request an id, enforces the body
size limit, records Prometheus metrics and writes one masked JSON access-log line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import nexus
from nexus.kernel import metrics
from nexus.kernel.config import Settings, get_settings
from nexus.kernel.errors import install_error_handlers, problem_body, problem_response
from nexus.kernel.ids import new_id
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Service, load_services

access_log = structlog.get_logger("nexus.access")
F = TypeVar("F", bound=Callable[..., Any])
API_PREFIX = "/api/v1"


class RequestContextMiddleware:
    """Request id, body size limit, metrics and the access log, as plain ASGI."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        routes: dict[int, tuple[str, str]],
        large: list[tuple[Any, int]] | None = None,
    ) -> None:
        self.app = app
        self.default_max_body = max_body_bytes
        self.routes = routes  # id(endpoint) -> (service, full path template)
        self.large = large or []  # (path regex, limit) of routes marked with large_body()

    def _max_body(self, path: str) -> int:
        for pattern, limit in self.large:
            if pattern.match(path):
                return limit
        return self.default_max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        max_body = self._max_body(scope.get("path", ""))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            await self._too_large(scope, receive, send, request_id, max_body)
            self._record(scope, 413, started)
            return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large, status
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    # Answer 413 now; the app sees a disconnected client and its own
                    # answer, if any, is dropped.
                    too_large = True
                    if not response_started:
                        status = 413
                        await self._too_large(scope, receive, send, request_id, max_body)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if too_large:
                return
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        metrics.HTTP_INFLIGHT.inc()
        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception:
            if not too_large:
                raise
        finally:
            metrics.HTTP_INFLIGHT.dec()
            self._record(scope, status, started)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, max_body: int
    ) -> None:
        response = problem_response(
            413,
            f"The body is larger than the limit of {max_body} bytes.",
            instance=scope.get("path"),
            headers={"x-request-id": request_id, "connection": "close"},
        )
        await response(scope, receive, send)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        service, template = self.routes.get(
            id(getattr(route, "endpoint", None)),
            ("kernel", getattr(route, "path", None) or ("unmatched" if status == 404 else "other")),
        )
        method = scope.get("method", "")
        metrics.HTTP_REQUESTS.labels(service, method, template, str(status)).inc()
        metrics.HTTP_LATENCY.labels(service, method, template).observe(elapsed)
        if template in {"/health", "/metrics"} and status < 400:
            return
        client = scope.get("client")
        access_log.info(
            "request",
            method=method,
            path=scope.get("path", ""),  # masked by the log pipeline, if it is written
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            service=service,
            client=client[0] if client else None,
        )


def _endpoints(router: APIRouter, prefix: str) -> list[tuple[Any, str]]:
    """(endpoint, full path template) of every route, through nested routers (recent
    FastAPI keeps an included router as one entry instead of copying its routes)."""
    found: list[tuple[Any, str]] = []
    for route in router.routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            context = getattr(route, "include_context", None)
            found += _endpoints(nested, prefix + getattr(context, "prefix", ""))
        elif getattr(route, "endpoint", None) is not None:
            found.append((route.endpoint, prefix + getattr(route, "path", "")))  # type: ignore[attr-defined]
    return found


def large_body(max_bytes: int) -> Callable[[F], F]:
    """Mark a route that accepts bodies up to `max_bytes` instead of `NEXUS_MAX_BODY_BYTES`
    (file uploads, which the route must stream rather than read whole)."""

    def mark(endpoint: F) -> F:
        endpoint.max_body_bytes = max_bytes  # type: ignore[attr-defined]
        return endpoint

    return mark


def kernel_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": nexus.__version__}

    @router.get("/ready", summary="Readiness: databases and bus reachable")
    async def ready(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        checks = await runtime.check_ready()
        if all(value == "ok" for value in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        failing = ", ".join(k for k, v in checks.items() if v != "ok")
        body = problem_body(503, f"Not ready: {failing} not reachable.", checks=checks)
        return JSONResponse(body, status_code=503, media_type="application/problem+json")

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(
    settings: Settings | None = None,
    services: list[Service] | None = None,
    *,
    runtime: Runtime | None = None,
    workers: bool | None = None,
) -> FastAPI:
    """The app for this process's services (by default: those the settings name)."""
    settings = settings or get_settings()
    if runtime is None:
        if services is None:
            services = load_services(settings.services, settings.plugins)
        runtime = Runtime(settings, services)
    run_workers = settings.run_workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start(workers=run_workers)
        try:
            yield
        finally:
            await runtime.stop()

    names = ", ".join(s.name for s in runtime.services) or "kernel only"
    app = FastAPI(
        title="Nexus API",
        version=nexus.__version__,
        description=f"Nexus, the self-hosted business operating system. Services: {names}.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(kernel_router())
    routes: dict[int, tuple[str, str]] = {}
    large: list[tuple[Any, int]] = []
    for service in runtime.services:
        for router, prefix in ((service.router, API_PREFIX), (service.public_router, "")):
            if router is None:
                continue
            app.include_router(router, prefix=prefix)
            for endpoint, path in _endpoints(router, prefix):
                routes[id(endpoint)] = (service.name, path)
                limit = getattr(endpoint, "max_body_bytes", None)
                if limit is not None:
                    large.append((compile_path(path)[0], int(limit)))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        routes=routes,
        large=large,
    )
    return app


def app_factory() -> Any:
    """Entry point for `uvicorn --factory nexus.kernel.http:app_factory`."""
    from nexus.kernel.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
