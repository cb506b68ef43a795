"""The HTTP surface every process has: health, readiness, metrics, docs, problem+json."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import func, select

from nexus.kernel.http import create_app
from nexus.kernel.ratelimit import rate_limit
from nexus.kernel.service import Service
from nexus.testing.sample_services import Note, notes
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory

boom_router = APIRouter(prefix="/boom")


@boom_router.get("/crash")
async def crash() -> None:
    raise RuntimeError("database password is hunter2")


@boom_router.get("/limited", dependencies=[rate_limit("boom.limited", limit=2, per_s=60)])
async def limited() -> dict[str, bool]:
    return {"ok": True}


boom = Service(name="boom", router=boom_router)


@pytest.fixture
async def client(make_runtime: RuntimeFactory, settings) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    settings.max_body_bytes = 4096
    settings.cors_origins = ["https://app.example.com"]
    runtime = await make_runtime([notes, boom])
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        client.runtime = runtime  # type: ignore[attr-defined]
        yield client


async def _note_count(client: httpx.AsyncClient) -> int:
    async with client.runtime.db("notes").read() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(Note)) or 0)


def _is_problem(response: httpx.Response, status: int) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["detail"]
    return body  # type: ignore[no-any-return]


async def test_health_ready_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert all(v == "ok" for v in ready.json()["checks"].values())
    assert "swagger" in (await client.get("/docs")).text.lower()
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/notes" in spec["paths"]


async def test_metrics_count_requests_by_route(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    for _ in range(3):
        await client.get("/api/v1/notes/ping", headers=issuer.headers())
    text = (await client.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("nexus_http_requests_total")
        and 'route="/api/v1/notes/ping"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert 'service="notes"' in line
    assert "nexus_http_request_duration_seconds_bucket" in text


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.get("/api/v1/nothing-here"), 404)
    assert "/api/v1/nothing-here" in body["detail"]
    _is_problem(await client.delete("/health"), 405)


async def test_malformed_json_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    response = await client.post(
        "/api/v1/notes",
        content=b'{"text": "unfinished',
        headers={**issuer.headers(), "content-type": "application/json"},
    )
    body = _is_problem(response, 400)
    assert "not valid JSON" in body["detail"]
    assert await _note_count(client) == 0


async def test_wrong_content_type_is_a_415_and_changes_nothing(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    response = await client.post(
        "/api/v1/notes",
        content=b"text=hello",
        headers={**issuer.headers(), "content-type": "application/x-www-form-urlencoded"},
    )
    body = _is_problem(response, 415)
    assert "application/json" in body["detail"]
    assert await _note_count(client) == 0


async def test_oversized_body_is_a_413_and_changes_nothing(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    big = json.dumps({"text": "x" * 10_000}).encode()
    _is_problem(
        await client.post(
            "/api/v1/notes",
            content=big,
            headers={**issuer.headers(), "content-type": "application/json"},
        ),
        413,
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    _is_problem(
        await client.post(
            "/api/v1/notes",
            content=chunks(),
            headers={**issuer.headers(), "content-type": "application/json"},
        ),
        413,
    )
    assert await _note_count(client) == 0


async def test_validation_errors_name_the_field(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    body = _is_problem(
        await client.post("/api/v1/notes", json={"text": ""}, headers=issuer.headers()), 422
    )
    assert body["errors"][0]["field"] == "text"
    assert "text" in body["detail"]
    assert await _note_count(client) == 0


async def test_valid_request_creates(client: httpx.AsyncClient, issuer: TestIssuer) -> None:
    response = await client.post("/api/v1/notes", json={"text": "hello"}, headers=issuer.headers())
    assert response.status_code == 201
    assert response.headers["x-request-id"]
    assert await _note_count(client) == 1


async def test_unexpected_error_is_a_500_without_internals(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.get("/api/v1/boom/crash"), 500)
    text = json.dumps(body)
    assert "hunter2" not in text
    assert "Traceback" not in text


async def test_rate_limit_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/boom/limited")).status_code == 200
    assert (await client.get("/api/v1/boom/limited")).status_code == 200
    response = await client.get("/api/v1/boom/limited")
    _is_problem(response, 429)
    assert int(response.headers["retry-after"]) > 0


async def test_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"x-request-id": "req-123"})
    assert response.headers["x-request-id"] == "req-123"


async def test_cors_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/notes",
        headers={"origin": "https://app.example.com", "access-control-request-method": "POST"},
    )
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    response = await client.options(
        "/api/v1/notes",
        headers={"origin": "https://evil.example.com", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers
