"""Logs are JSON lines, and never carry secrets or personal data in clear."""

from __future__ import annotations

import io
import json
import logging

import httpx
import structlog

from nexus.kernel.http import create_app
from nexus.kernel.logging import configure_logging, mask_text
from nexus.testing.sample_services import notes
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory


def test_mask_text_hides_personal_data_and_secrets() -> None:
    text = (
        "to +14155550123 from ada@example.com auth Bearer abc.def.ghi "
        "key nxk_0123456789abcdef jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"
    )
    masked = mask_text(text)
    for secret in (
        "4155550123",
        "ada@example.com",
        "abc.def.ghi",
        "0123456789abcdef",
        "eyJzdWIiOi",
    ):
        assert secret not in masked
    assert "***23" in masked  # the last digits stay, for support
    assert "a***@example.com" in masked


async def test_request_logs_are_json_and_masked(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        runtime = await make_runtime([notes], workers=False)
        app = create_app(settings, runtime=runtime)
        token = issuer.token()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            response = await c.post(
                "/api/v1/notes?phone=%2B14155550123",
                json={"text": "call ada@example.com"},
                headers={"Authorization": f"Bearer {token}", "x-request-id": "rid-42"},
            )
            assert response.status_code == 201
            structlog.get_logger("test").info(
                "provider call",
                password="hunter2",
                to="+14155550123",
                body="secret text",
                headers={"Authorization": f"Bearer {token}"},
            )
    finally:
        logging.getLogger().handlers[:] = []
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [
        ln for ln in lines if ln.get("event") == "request" and ln.get("request_id") == "rid-42"
    ]
    assert access
    assert access[0]["status"] == 201
    assert access[0]["org_id"] == "org-1"
    assert access[0]["route"] == "/api/v1/notes"
    for secret in (token, "hunter2", "4155550123", "secret text", "ada@example.com"):
        assert secret not in output
