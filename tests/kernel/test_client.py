"""Calling another service's API: in-process (ASGI) when it runs here, HTTP when remote."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn
from fastapi import APIRouter, Request

from nexus.kernel.auth import Principal, require
from nexus.kernel.client import service_client
from nexus.kernel.http import create_app
from nexus.kernel.service import Service
from nexus.testing.sample_services import notes
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory
from tests.kernel.test_cli import free_port

caller_router = APIRouter(prefix="/caller")


@caller_router.post("/relay")
async def relay(request: Request, principal: Principal = require("notes:note:create")) -> dict:  # type: ignore[type-arg]
    async with service_client(request, "notes") as client:
        response = await client.post("/notes", json={"text": "via the service client"})
    return {"status": response.status_code, "local": client.local, "body": response.json()}


caller = Service(name="caller", router=caller_router)


async def _call(app, issuer: TestIssuer, **token) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/api/v1/caller/relay", headers=issuer.headers(**token))


async def test_in_process_call_forwards_the_callers_credentials(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([caller, notes], workers=False)
    app = create_app(settings, runtime=runtime)
    response = await _call(app, issuer, org_id="org-c")
    assert response.json()["local"] is True
    assert response.json()["status"] == 201
    assert response.json()["body"]["org_id"] == "org-c"


async def test_remote_service_is_called_over_http(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    notes_runtime = await make_runtime([notes], workers=False)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, runtime=notes_runtime),
            host="127.0.0.1",
            port=free_port(),
            log_config=None,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        settings.service_urls["notes"] = f"http://127.0.0.1:{server.config.port}"
        runtime = await make_runtime([caller], workers=False)
        response = await _call(create_app(settings, runtime=runtime), issuer, org_id="org-r")
        assert response.json()["local"] is False
        assert response.json()["status"] == 201
        assert response.json()["body"]["org_id"] == "org-r"
    finally:
        server.should_exit = True
        await task


async def test_unreachable_service_is_a_503(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([caller], workers=False)
    response = await _call(create_app(settings, runtime=runtime), issuer)
    assert response.status_code == 503
    assert "NEXUS_NOTES_URL" in response.json()["detail"]
