"""Hostile and careless callers: wrong passwords, brute force, forged or stale tokens,
malformed bodies, weak passwords, secrets in logs, and signing-key rotation."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pyotp
import pytest
import structlog
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import select, update

from nexus.kernel.config import Settings
from nexus.kernel.db import utcnow
from nexus.kernel.http import create_app
from nexus.kernel.ids import new_id
from nexus.kernel.logging import configure_logging
from nexus.services.idaas.keys import KeyStore
from nexus.services.idaas.login import address_key
from nexus.services.idaas.models import AuditEvent, Base, LoginThrottle, SigningKey
from nexus.services.idaas.settings import IdaasSettings
from tests.services.idaas.conftest import PASSWORD
from tests.services.idaas.test_isolation import Env, install_fixtures

API = "/api/v1"
install_fixtures(globals())  # one runtime for the module, fresh orgs A and B per test


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_from(idaas: Env, settings: Settings, ip: str) -> httpx.AsyncClient:
    """A client of the same app that connects from another address."""
    app = create_app(settings, runtime=idaas.runtime)
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://nexus.test")


def idaas_settings(idaas: Env) -> IdaasSettings:
    return idaas.runtime.state["idaas"].idaas  # type: ignore[no-any-return]


async def everything(idaas: Env) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every IDaaS table."""
    out = {}
    async with idaas.runtime.db("idaas").read() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


async def audit_rows(idaas: Env, **where: Any) -> list[AuditEvent]:
    async with idaas.runtime.db("idaas").read() as session:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, name) == value)
        return list((await session.scalars(stmt)).all())


async def account_counter(idaas: Env, email: str) -> LoginThrottle | None:
    """The brute-force counter of an e-mail address (its key format is the module's own)."""
    async with idaas.runtime.db("idaas").read() as session:
        rows = (
            await session.scalars(select(LoginThrottle).where(LoginThrottle.key.like("acct:%")))
        ).all()
    mine = [r for r in rows if r.key.endswith(f":{email}")]
    assert len(mine) <= 1
    return mine[0] if mine else None


async def make_user(idaas: Env, email: str, password: str, **extra: Any) -> str:
    response = await idaas.client.post(
        f"{API}/users",
        json={"email": email, "password": password, **extra},
        headers=idaas.a.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


# -- wrong passwords and brute force ---------------------------------------------------------


async def test_wrong_password_is_401_and_audited(idaas: Env) -> None:
    wrong = await idaas.login(idaas.a.email, "not-the-right-passphrase")
    body = problem(wrong, 401)
    assert "access_token" not in wrong.text
    assert body["type"].endswith("/invalid-credentials")
    failed = await audit_rows(idaas, type="auth.login.failed", org_id=idaas.a.org_id)
    assert len(failed) == 1
    event = failed[0]
    assert (event.org_id, event.actor_id, event.target_id) == (
        idaas.a.org_id,
        idaas.a.owner_id,
        idaas.a.owner_id,
    )
    assert event.result == "failure"
    assert event.ip == idaas.ip
    assert event.data == {"reason": "bad_password"}
    assert "not-the-right-passphrase" not in repr(event.data)
    # an unknown e-mail gets the same answer, and there is no org to audit it in
    unknown = problem(await idaas.login("nobody@alpha.example.com", "not-the-right-pass"), 401)
    assert (unknown["type"], unknown["detail"]) == (body["type"], body["detail"])
    assert len(await audit_rows(idaas, type="auth.login.failed", org_id=idaas.a.org_id)) == 1
    # the right password after a wrong one works, and a success is audited too
    assert (await idaas.login(idaas.a.email)).status_code == 200
    succeeded = await audit_rows(idaas, type="auth.login.succeeded", org_id=idaas.a.org_id)
    assert [e.actor_id for e in succeeded] == [idaas.a.owner_id]


@pytest.fixture
def strict_throttle(idaas: Env, monkeypatch: pytest.MonkeyPatch) -> IdaasSettings:
    """Three failures lock an account or an address for ten minutes."""
    values = idaas_settings(idaas)
    monkeypatch.setattr(values, "backoff_after", 3)
    monkeypatch.setattr(values, "lock_after", 3)
    monkeypatch.setattr(values, "lock_s", 600)
    return values


def assert_throttled(response: httpx.Response, lock_s: int) -> None:
    body = problem(response, 429)
    assert body["type"].endswith("/login-throttled")
    assert 1 <= int(response.headers["retry-after"]) <= lock_s + 1
    assert "access_token" not in response.text


async def test_brute_force_locks_the_account_whatever_the_address(
    idaas: Env, settings: Settings, strict_throttle: IdaasSettings
) -> None:
    await make_user(idaas, "yan@alpha.example.com", "yans-passphrase-1")
    for n in range(3):  # three addresses, one wrong password each
        async with client_from(idaas, settings, f"198.51.100.{n + 1}") as client:
            response = await client.post(
                f"{API}/auth/login",
                json={"email": idaas.a.email, "password": f"guess-number-{n}"},
            )
            problem(response, 401)
    async with client_from(idaas, settings, "198.51.100.9") as client:
        # the account is locked: even its right password is refused, from a fresh address
        locked = await client.post(
            f"{API}/auth/login", json={"email": idaas.a.email, "password": PASSWORD}
        )
        assert_throttled(locked, strict_throttle.lock_s)
        # the address is not: another account logs in from it
        other = await client.post(
            f"{API}/auth/login",
            json={"email": "yan@alpha.example.com", "password": "yans-passphrase-1"},
        )
        assert other.status_code == 200, other.text
    # e-mail case does not give a second account counter
    shouted = await idaas.login(idaas.a.email.upper(), PASSWORD)
    assert_throttled(shouted, strict_throttle.lock_s)
    assert len(await audit_rows(idaas, type="auth.login.failed", actor_id=idaas.a.owner_id)) == 3


async def test_brute_force_locks_the_address_whatever_the_account(
    idaas: Env, settings: Settings, strict_throttle: IdaasSettings
) -> None:
    await make_user(idaas, "wes@alpha.example.com", "wess-passphrase-1")
    async with client_from(idaas, settings, "192.0.2.50") as attacker:
        for email in ("a@alpha.example.com", idaas.a.email, idaas.b.email):  # one try each
            problem(
                await attacker.post(
                    f"{API}/auth/login", json={"email": email, "password": "spray-passphrase"}
                ),
                401,
            )
        locked = await attacker.post(
            f"{API}/auth/login",
            json={"email": "wes@alpha.example.com", "password": "wess-passphrase-1"},
        )
        assert_throttled(locked, strict_throttle.lock_s)
    async with client_from(idaas, settings, "192.0.2.51") as elsewhere:
        ok = await elsewhere.post(
            f"{API}/auth/login",
            json={"email": "wes@alpha.example.com", "password": "wess-passphrase-1"},
        )
        assert ok.status_code == 200, ok.text


async def test_backoff_grows_exponentially_then_locks(
    idaas: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = idaas_settings(idaas)
    monkeypatch.setattr(values, "backoff_after", 1)
    monkeypatch.setattr(values, "lock_after", 4)
    monkeypatch.setattr(values, "lock_s", 900)
    db = idaas.runtime.db("idaas")

    async def delay_after_failure() -> float:
        problem(await idaas.login(idaas.a.email, "wrong-passphrase-x"), 401)
        row = await account_counter(idaas, idaas.a.email)
        assert row is not None
        assert row.blocked_until is not None
        return (row.blocked_until - row.last_failure_at).total_seconds()

    async def wait_it_out() -> None:  # as if the delay had passed
        async with db.transaction() as session:
            await session.execute(
                update(LoginThrottle).values(blocked_until=utcnow() - dt.timedelta(seconds=1))
            )

    delays = []
    for _ in range(3):
        delays.append(await delay_after_failure())
        await wait_it_out()
    delays.append(await delay_after_failure())
    assert delays == [1.0, 2.0, 4.0, 900.0]
    # while blocked, even the right password gets 429 with the time left
    throttled = await idaas.login(idaas.a.email)
    assert_throttled(throttled, 900)
    assert int(throttled.headers["retry-after"]) > 800


async def test_a_locked_account_is_audited(idaas: Env, strict_throttle: IdaasSettings) -> None:
    for _ in range(3):
        problem(await idaas.login(idaas.a.email, "wrong-passphrase-y"), 401)
    before = await audit_rows(idaas, org_id=idaas.a.org_id, result="failure")
    assert_throttled(await idaas.login(idaas.a.email), strict_throttle.lock_s)
    after = await audit_rows(idaas, org_id=idaas.a.org_id, result="failure")
    new = [e for e in after if e.id not in {b.id for b in before}]
    assert len(new) == 1
    assert new[0].target_id == idaas.a.owner_id


async def test_success_clears_the_account_counter_only(
    idaas: Env, strict_throttle: IdaasSettings
) -> None:
    for _ in range(2):
        problem(await idaas.login(idaas.a.email, "wrong-passphrase-z"), 401)
    assert (await idaas.login(idaas.a.email)).status_code == 200
    account = await account_counter(idaas, idaas.a.email)
    async with idaas.runtime.db("idaas").read() as session:
        address = await session.get(LoginThrottle, address_key(idaas.ip))
    assert account is None
    assert address is not None
    assert address.failures == 2


async def test_login_and_refresh_are_rate_limited_per_address(
    idaas: Env, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 3
    monkeypatch.setattr(idaas_settings(idaas), "login_rate_per_minute", limit)
    async with client_from(idaas, settings, "198.51.100.77") as client:
        for path, body in (
            (f"{API}/auth/login", {"email": idaas.a.email, "password": PASSWORD}),
            (f"{API}/auth/refresh", {"refresh_token": "nxr_not-a-real-token"}),
        ):
            statuses = []
            for _ in range(limit + 3):  # bounded: the sliding window trips within a few more
                response = await client.post(path, json=body)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1
                    assert response.headers["content-type"] == "application/problem+json"
                    break
            assert statuses[-1] == 429, (path, statuses)
            assert len(statuses) > limit, (path, statuses)
            assert set(statuses[:-1]) == {200 if path.endswith("login") else 401}
    # another address is not affected
    assert (await idaas.login(idaas.a.email)).status_code == 200


async def test_mfa_codes_cannot_be_brute_forced(
    idaas: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idaas_settings(idaas), "mfa_max_attempts", 3)
    enroll = await idaas.client.post(f"{API}/me/mfa/totp", headers=idaas.a.headers)
    totp = pyotp.TOTP(enroll.json()["secret"])
    confirm = await idaas.client.post(
        f"{API}/me/mfa/totp/confirm", json={"code": totp.now()}, headers=idaas.a.headers
    )
    assert confirm.status_code == 200
    step = (await idaas.login(idaas.a.email)).json()
    for _ in range(3):
        bad = await idaas.client.post(
            f"{API}/auth/mfa/verify", json={"mfa_token": step["mfa_token"], "code": "000000"}
        )
        problem(bad, 401)
    recovery = confirm.json()["recovery_codes"][0]
    # the right code no longer helps: this login is over
    late = await idaas.client.post(
        f"{API}/auth/mfa/verify", json={"mfa_token": step["mfa_token"], "code": recovery}
    )
    problem(late, 401)
    assert "access_token" not in late.text
    assert len(await audit_rows(idaas, type="auth.mfa.failed", org_id=idaas.a.org_id)) == 3
    # a made-up mfa token gets nothing
    problem(
        await idaas.client.post(
            f"{API}/auth/mfa/verify", json={"mfa_token": "nxm_forged", "code": recovery}
        ),
        401,
    )


# -- tokens -------------------------------------------------------------------------------


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


async def test_forged_stale_and_foreign_tokens_are_refused(idaas: Env) -> None:
    good = idaas.a.token
    header_seg, payload_seg, signature_seg = good.split(".")
    header, claims = unb64(header_seg), unb64(payload_seg)
    keys = idaas.runtime.state["idaas"].keys
    now = int(time.time())

    async def signed(**changes: Any) -> str:
        body = {**claims, "jti": new_id(), **changes}
        return await keys.sign({k: v for k, v in body.items() if v is not None}, typ="at+jwt")  # type: ignore[no-any-return]

    impostor = ECKey.generate_key("P-256", parameters={"kid": header["kid"]})
    stranger = ECKey.generate_key("P-256", parameters={"kid": new_id()})
    flipped = signature_seg[:10] + ("A" if signature_seg[10] != "A" else "B") + signature_seg[11:]
    cases = {
        "expired": await signed(iat=now - 3600, exp=now - 120),
        "not yet valid": await signed(nbf=now + 3600),
        "wrong audience": await signed(aud="another-api"),
        "wrong issuer": await signed(iss="https://evil.example.com"),
        "no org": await signed(org_id=None),
        "no subject": await signed(sub=None),
        "org changed": f"{header_seg}.{b64({**claims, 'org_id': idaas.b.org_id})}.{signature_seg}",
        "lifetime extended": f"{header_seg}.{b64({**claims, 'exp': now + 86400})}.{signature_seg}",
        "signature changed": f"{header_seg}.{payload_seg}.{flipped}",
        "no signature": f"{header_seg}.{payload_seg}.",
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload_seg}.",
        "hs256": jwt.encode(
            {"alg": "HS256", "kid": header["kid"]}, claims, OctKey.import_key(b"k" * 32)
        ),
        "same kid, other key": jwt.encode({"alg": "ES256", "kid": header["kid"]}, claims, impostor),
        "unknown kid": jwt.encode({"alg": "ES256", "kid": stranger.kid}, claims, stranger),
        "garbage": "abc.def.ghi",
        "refresh token": idaas.a.refresh_token,
    }
    assert (await idaas.client.get(f"{API}/me", headers=bearer(good))).status_code == 200
    for name, token in cases.items():
        response = await idaas.client.get(f"{API}/me", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        problem(response, 401)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), name
    # no credentials at all, or the wrong scheme
    problem(await idaas.client.get(f"{API}/me"), 401)
    problem(await idaas.client.get(f"{API}/me", headers={"Authorization": f"Basic {good}"}), 401)


# -- malformed input ------------------------------------------------------------------------


def _route_leaves(routes: Any) -> Iterator[Any]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


async def test_malformed_bodies_are_4xx_problems_and_store_nothing(
    idaas: Env, settings: Settings
) -> None:
    c, h = idaas.client, idaas.a.headers
    group = (await c.post(f"{API}/groups", json={"name": "g"}, headers=h)).json()
    role = (
        await c.post(f"{API}/roles", json={"name": "r", "permissions": ["*"]}, headers=h)
    ).json()
    values = {
        "org_id": idaas.a.org_id,
        "user_id": idaas.a.owner_id,
        "group_id": group["id"],
        "role_id": role["id"],
    }
    clients = await c.get(f"{API}/oauth-clients", headers=h)
    if clients.status_code == 200:
        made = await c.post(
            f"{API}/oauth-clients",
            json={
                "name": "m",
                "grant_types": ["client_credentials"],
                "scopes": ["idaas:user:read"],
            },
            headers=h,
        )
        values["client_ref"] = made.json()["client_id"]
    app = create_app(settings, runtime=idaas.runtime)
    routes = sorted(
        {
            (method, route.path)
            for route in _route_leaves(app.routes)
            if route.path.startswith(f"{API}/")
            and getattr(route, "body_field", None) is not None
            and route.endpoint.__module__.startswith("nexus.services.idaas")
            for method in route.methods
        }
    )
    assert len(routes) >= 15
    before = await everything(idaas)
    huge = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    for method, template in routes:
        path = template
        for name, value in values.items():
            path = path.replace(f"{{{name}}}", value)
        assert "{" not in path, template
        json_headers = {**h, "Content-Type": "application/json"}
        cases = [
            (400, {"content": b'{"email": "a@b.c", "password": ', "headers": json_headers}),
            (400, {"content": b"\xff\xfe not utf-8", "headers": json_headers}),
            (415, {"content": b'{"name": "x"}', "headers": {**h, "Content-Type": "text/plain"}}),
            (
                415,
                {
                    "content": b"name=x",
                    "headers": {**h, "Content-Type": "application/x-www-form-urlencoded"},
                },
            ),
            (422, {"content": b"[1, 2, 3]", "headers": json_headers}),
            (422, {"content": b'"just a string"', "headers": json_headers}),
            (413, {"content": huge, "headers": json_headers}),
            (413, {"content": chunks(), "headers": json_headers}),  # no Content-Length
        ]
        for status, kwargs in cases:
            response = await c.request(method, path, **kwargs)
            assert response.status_code == status, (method, template, status, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == status
        missing = await c.request(method, path, headers=h)  # no body at all
        assert 400 <= missing.status_code < 500, (method, template, missing.text)
    assert await everything(idaas) == before


async def test_validation_errors_name_the_fields(idaas: Env) -> None:
    response = await idaas.client.post(
        f"{API}/users",
        json={"email": "not-an-email", "name": 5, "status": "boss", "attributes": []},
        headers=idaas.a.headers,
    )
    body = problem(response, 422)
    assert body["type"].endswith("/validation-error")
    assert {e["field"] for e in body["errors"]} >= {"email", "name", "status", "attributes"}
    login = await idaas.client.post(f"{API}/auth/login", json={"email": idaas.a.email})
    assert [e["field"] for e in problem(login, 422)["errors"]] == ["password"]


# -- password policy ------------------------------------------------------------------------


async def test_password_policy(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    cases = [
        ("tina@alpha.example.com", "Tina", "Sh0rt!pw", "at least 10"),
        ("tina@alpha.example.com", "Tina", "password123", "common"),
        ("tina@alpha.example.com", "Tina", "QWERTYUIOP", "common"),
        ("tina@alpha.example.com", "Tina", "abababababab", "common"),
        ("jdoe.smith@alpha.example.com", "", "my-jdoe.smith-2024", "e-mail"),
        ("mx@alpha.example.com", "Marguerite", "MARGUERITE-rules-42", "name"),
    ]
    for email, name, password, why in cases:
        response = await c.post(
            f"{API}/users", json={"email": email, "name": name, "password": password}, headers=h
        )
        body = problem(response, 422)
        assert body["type"].endswith("/weak-password"), body
        assert why in body["detail"], body
        assert password not in response.text
    too_long = await c.post(
        f"{API}/users", json={"email": "long@alpha.example.com", "password": "x1" * 200}, headers=h
    )
    problem(too_long, 422)
    listed = (await c.get(f"{API}/users", headers=h)).json()["items"]
    assert [u["email"] for u in listed] == [idaas.a.email]  # nothing was created

    # the same policy when a user changes a password, and when an admin sets one
    weak = await c.post(
        f"{API}/me/password",
        json={"current_password": PASSWORD, "new_password": "password123"},
        headers=h,
    )
    assert problem(weak, 422)["type"].endswith("/weak-password")
    assert (await idaas.login(idaas.a.email)).status_code == 200  # the old one still works
    user_id = await make_user(idaas, "nicola@alpha.example.com", "secret-of-nic-1")
    problem(
        await c.patch(f"{API}/users/{user_id}", json={"password": "i-am-nicola-99"}, headers=h),
        422,
    )
    assert (await idaas.login("nicola@alpha.example.com", "secret-of-nic-1")).status_code == 200


# -- logs -----------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Route every log line to a string (as configure_logging does in production), then
    put the logging configuration back as it was."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy.engine", "aiosqlite"]
    names += ["nats", "asyncio", "httpx", "httpcore", "alembic"]
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in names
    }
    structlog_config = structlog.get_config()
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        yield stream
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
        structlog.configure(**structlog_config)


async def test_no_secret_reaches_the_logs(idaas: Env, log_stream: io.StringIO) -> None:
    c = idaas.client
    secrets: list[str] = [PASSWORD, idaas.a.token, idaas.a.refresh_token]
    # a failed login, a login, a refresh
    assert (await idaas.login(idaas.a.email, "a-wrong-passphrase-1")).status_code == 401
    secrets.append("a-wrong-passphrase-1")
    tokens = await idaas.tokens(idaas.a.email)
    refreshed = (
        await c.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    headers = bearer(refreshed["access_token"])
    # TOTP enrollment, confirmation, and a login that needs it
    enroll = (await c.post(f"{API}/me/mfa/totp", headers=headers)).json()
    secrets += [enroll["secret"], enroll["otpauth_uri"]]
    confirm = await c.post(
        f"{API}/me/mfa/totp/confirm",
        json={"code": pyotp.TOTP(enroll["secret"]).now()},
        headers=headers,
    )
    recovery = confirm.json()["recovery_codes"]
    secrets += recovery
    step = (await idaas.login(idaas.a.email)).json()
    secrets.append(step["mfa_token"])
    finished = await c.post(
        f"{API}/auth/mfa/verify", json={"mfa_token": step["mfa_token"], "code": recovery[0]}
    )
    secrets += [finished.json()["access_token"], finished.json()["refresh_token"]]
    # an API key, created and used both ways; a password change; a user with a password
    key = (
        await c.post(
            f"{API}/api-keys",
            json={"name": "logged", "permissions": ["idaas:user:read"]},
            headers=headers,
        )
    ).json()["key"]
    secrets += [key, key.split("_", 2)[2]]
    assert (await c.get(f"{API}/users", headers=bearer(key))).status_code == 200
    assert (await c.get(f"{API}/users", headers={"X-API-Key": key})).status_code == 200
    assert (await c.get(f"{API}/users", headers={"X-API-Key": key + "x"})).status_code == 401
    new_password = "a-brand-new-passphrase-7"
    changed = await c.post(
        f"{API}/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    secrets.append(new_password)
    made = await c.post(
        f"{API}/users",
        json={"email": "lou@alpha.example.com", "password": "lous-passphrase-1"},
        headers=headers,
    )
    assert made.status_code == 201
    secrets.append("lous-passphrase-1")
    # hostile input carrying secrets: broken JSON and a token in the query string
    await c.post(
        f"{API}/auth/login",
        content=b'{"email": "x@y.z", "password": "in-a-broken-body-1"',
        headers={"Content-Type": "application/json"},
    )
    secrets.append("in-a-broken-body-1")
    await c.get(f"{API}/me", params={"access_token": refreshed["access_token"]})
    await c.post(f"{API}/auth/logout", headers=headers)

    output = log_stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    routes = {line.get("route") for line in lines if line.get("event") == "request"}
    assert len(routes) >= 8, routes  # the requests above were logged
    found = [s[:12] + "..." for s in secrets if s and s in output]
    assert not found, f"secrets in the logs: {found}"
    assert idaas.a.email not in output


# -- key rotation -----------------------------------------------------------------------------


async def test_key_rotation_keeps_old_tokens_valid_while_published(idaas: Env) -> None:
    runtime = idaas.runtime
    keys = runtime.state["idaas"].keys
    verifier = runtime.authenticator.verifier
    assert verifier is not None
    old = await idaas.tokens(idaas.a.email)
    old_kid = unb64(old["access_token"].split(".")[0])["kid"]

    new_kid = await keys.rotate(retire_after_s=3600)
    assert new_kid != old_kid
    jwks = (await idaas.client.get("/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} >= {old_kid, new_kid}
    assert all("d" not in k for k in jwks["keys"])  # public halves only
    new = await idaas.tokens(idaas.a.email)
    assert unb64(new["access_token"].split(".")[0])["kid"] == new_kid

    verifier.forget()  # verify from scratch, not from the verified-token cache
    for token in (old["access_token"], new["access_token"]):
        assert (await idaas.client.get(f"{API}/me", headers=bearer(token))).status_code == 200
    # refresh tokens issued before the rotation work too, and get new-key tokens
    refreshed = await idaas.client.post(
        f"{API}/auth/refresh", json={"refresh_token": old["refresh_token"]}
    )
    assert unb64(refreshed.json()["access_token"].split(".")[0])["kid"] == new_kid

    # once the old key's publication window is over it leaves the JWKS, and so do its tokens
    async with runtime.db("idaas").transaction() as session:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid == old_kid)
            .values(publish_until=utcnow() - dt.timedelta(seconds=1))
        )
    await keys.refresh(max_age_s=0)
    jwks = (await idaas.client.get("/.well-known/jwks.json")).json()
    published = {k["kid"] for k in jwks["keys"]}
    assert new_kid in published
    assert old_kid not in published
    verifier.forget()
    problem(await idaas.client.get(f"{API}/me", headers=bearer(old["access_token"])), 401)
    assert (
        await idaas.client.get(f"{API}/me", headers=bearer(new["access_token"]))
    ).status_code == 200


async def test_a_rotation_by_another_process_is_picked_up(idaas: Env, settings: Settings) -> None:
    """`nexus idaas rotate-keys` runs in another process: this one keeps accepting the
    tokens of the old key, and signs with the new one once its key cache reloads."""
    mine = idaas.runtime.state["idaas"].keys
    before = unb64(idaas.a.token.split(".")[0])["kid"]
    elsewhere = KeyStore(idaas.runtime.db("idaas"), settings.secret())
    new_kid = await elsewhere.rotate(retire_after_s=3600)
    theirs = await elsewhere.sign(
        {**unb64(idaas.a.token.split(".")[1]), "jti": new_id()}, typ="at+jwt"
    )
    await mine.refresh(max_age_s=0)  # what the periodic reload (every 60 s) does
    kid, _key = await mine.signing_key()
    assert kid == new_kid != before
    idaas.runtime.authenticator.verifier.forget()  # type: ignore[union-attr]
    for token in (idaas.a.token, theirs, (await idaas.tokens(idaas.a.email))["access_token"]):
        assert (await idaas.client.get(f"{API}/me", headers=bearer(token))).status_code == 200


async def test_access_log_names_the_service_and_route(idaas: Env, log_stream: io.StringIO) -> None:
    user_id = idaas.a.owner_id
    assert (
        await idaas.client.get(f"{API}/users/{user_id}", headers=idaas.a.headers)
    ).status_code == 200
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    line = next(ln for ln in lines if ln.get("event") == "request" and user_id in ln["path"])
    assert line["org_id"] == idaas.a.org_id
    assert (line["service"], line["route"]) == ("idaas", f"{API}/users/{{user_id}}")


class StartingProcess(KeyStore):
    """The key store of a process that starts at the same time as another one."""

    def __init__(self, *args: Any, together: asyncio.Barrier, after: asyncio.Event | None):
        super().__init__(*args)
        self.together, self.after = together, after

    async def rotate(self, *, retire_after_s: int | None) -> str:
        await self.together.wait()  # both have looked and found no active key
        if self.after is not None:
            await self.after.wait()  # ... and the other one finished starting first
        return await super().rotate(retire_after_s=retire_after_s)


async def test_processes_starting_together_agree_on_the_keys(
    idaas: Env, settings: Settings
) -> None:
    db = idaas.runtime.db("idaas")
    # as on a new database: no active key (the shared ones stay published for this module)
    async with db.transaction() as session:
        now = utcnow()
        await session.execute(
            update(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .values(retired_at=now, publish_until=now + dt.timedelta(hours=1))
        )
    together, first_started = asyncio.Barrier(2), asyncio.Event()
    first = StartingProcess(db, settings.secret(), together=together, after=None)
    second = StartingProcess(db, settings.secret(), together=together, after=first_started)

    async def start_first() -> None:
        await first.refresh()
        first_started.set()

    await asyncio.wait_for(asyncio.gather(start_first(), second.refresh()), 30)
    signing = {(await first.signing_key())[0], (await second.signing_key())[0]}
    published = {k["kid"] for k in (await KeyStore(db, settings.secret()).jwks())["keys"]}
    assert signing <= published
