"""Token verification and permission checks that every service relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nexus.kernel.auth import Principal, permission_matches
from nexus.kernel.http import create_app
from nexus.testing.sample_services import notes
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory


@pytest.fixture
async def client(make_runtime: RuntimeFactory, settings) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([notes], workers=False)
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _ping(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.get("/api/v1/notes/ping", headers=headers)


async def test_valid_token_with_permission(client: httpx.AsyncClient, issuer: TestIssuer) -> None:
    response = await _ping(client, issuer.token(org_id="org-9", permissions=["notes:note:read"]))
    assert response.status_code == 200
    assert response.json() == {"org_id": "org-9"}


async def test_missing_credentials(client: httpx.AsyncClient) -> None:
    response = await _ping(client, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("expired", "expired"),
        ("tampered", "not valid"),
        ("other_key", "not valid"),
        ("wrong_audience", "audience"),
        ("wrong_issuer", "issued by someone else"),
        ("garbage", "not valid"),
    ],
)
async def test_bad_tokens_are_refused(
    client: httpx.AsyncClient, issuer: TestIssuer, case: str, detail: str
) -> None:
    token = {
        "expired": lambda: issuer.token(ttl_s=-120),
        "tampered": lambda: issuer.token()[:-4] + "AAAA",
        "other_key": lambda: TestIssuer(issuer=issuer.issuer).token(),
        "wrong_audience": lambda: issuer.token(aud="someone-else"),
        "wrong_issuer": lambda: issuer.token(iss="http://evil"),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    if case == "other_key":  # same kid, different key: a forged signature
        other = TestIssuer(issuer=issuer.issuer)
        other.key = other.key.__class__.generate_key("P-256", parameters={"kid": issuer.key.kid})
        token = other.token()
    response = await _ping(client, token)
    assert response.status_code == 401, response.text
    assert detail in response.json()["detail"]


async def test_missing_permission_is_403(client: httpx.AsyncClient, issuer: TestIssuer) -> None:
    response = await _ping(client, issuer.token(permissions=["notes:note:create"]))
    assert response.status_code == 403
    assert "notes:note:read" in response.json()["detail"]


@pytest.mark.parametrize(
    ("granted", "wanted", "allowed"),
    [
        ("*", "vas:message:send", True),
        ("vas:*:send", "vas:message:send", True),
        ("vas:message:*", "vas:message:send", True),
        ("vas:*", "vas:message:send", True),
        ("vas:message:send", "vas:message:send", True),
        ("vas:message:read", "vas:message:send", False),
        ("crm:*:*", "vas:message:send", False),
        ("vas:message", "vas:message:send", False),
    ],
)
def test_permission_wildcards(granted: str, wanted: str, allowed: bool) -> None:
    assert permission_matches(granted, wanted) is allowed
    assert (
        Principal(subject="u", org_id="o", permissions=frozenset({granted})).can(wanted) is allowed
    )
