"""Tenant isolation: nothing of org B can be read, listed, changed or deleted from org A.

The sweep is systematic: it walks every IDaaS route of the app under /api/v1, puts the ids
of objects that exist in org B into the path parameters (and into bodies that name other
objects), and calls each route as org A's owner, as an API key of org A, and with the
header `X-Org-Id: <org B>`. Each call must be refused with 403/404, a 2xx answer must not
carry anything of B, and B's rows must be exactly as they were before.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import or_, select

from nexus.kernel.config import Settings
from nexus.kernel.http import create_app
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.audit import Origin
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.idaas.models import Base, Org, User
from tests.conftest import (
    NATS_URL,
    REDIS_URL,
    SERVICES_MODE,
    _create_pg_database,
    _drop_pg_database,
    pg_url,
)
from tests.services.idaas.conftest import PASSWORD, IdaasEnv, Tenant

API = "/api/v1"
# Routes that exchange credentials rather than act on an org's objects: they take no ids
# and no X-Org-Id, so there is nothing of B to put in them (their abuse is in test_security).
CREDENTIAL_EXCHANGE = {
    ("POST", f"{API}/auth/login"),
    ("POST", f"{API}/auth/mfa/verify"),
    ("POST", f"{API}/auth/refresh"),
}
# Calls that end the caller's own session run last, so the sweep keeps its credentials.
RUN_LAST = {("POST", f"{API}/auth/logout")}


# -- one runtime per test module, fresh tenants per test ------------------------------------
# conftest.py's `idaas` fixture makes a database (and in services mode a PostgreSQL database
# and NATS streams) per test, about 2 s each in services mode. These modules share one
# runtime and give every test its own orgs A and B and its own client address: tenants
# are what isolates tests here, as they isolate customers.
# test_admin.py and test_security.py install the same fixtures with `install_fixtures`.

_numbers = itertools.count(1)


@dataclass
class SharedRuntime:
    settings: Settings
    runtime: Runtime


@dataclass
class Env(IdaasEnv):
    ip: str = "203.0.113.7"
    n: int = 0


async def _shared_runtime(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SharedRuntime]:
    values: dict[str, Any] = {
        "data_dir": tmp_path_factory.mktemp("idaas") / "var",
        "env": "test",
        "secret_key": "test-secret-" + "x" * 32,
        "shutdown_timeout_s": 3.0,
        "jwt_issuer": "http://nexus.test",
    }
    database = None
    if SERVICES_MODE:
        database = await _create_pg_database()
        values.update(
            database_url=pg_url(database),
            bus_url=NATS_URL,
            redis_url=REDIS_URL,
            bus_namespace=f"t{uuid.uuid4().hex[:10]}",
        )
    settings = Settings(**values)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, [idaas_service])
    try:
        await upgrade(runtime)
        await runtime.start(workers=False)
        yield SharedRuntime(settings, runtime)
    finally:
        await runtime.stop()
        if SERVICES_MODE:
            from nexus.kernel.nats import NatsBackend

            backend = NatsBackend(NATS_URL, settings.bus_namespace)
            try:
                await backend.connect()
                await backend.delete_streams()
            finally:
                await backend.close()
            assert database is not None
            await _drop_pg_database(database)


def _settings(shared_runtime: SharedRuntime) -> Settings:
    """The shared runtime's settings (instead of conftest's new database per test)."""
    return shared_runtime.settings


async def _tenant(env: Env, name: str) -> Tenant:
    """A new org and its owner, logged in (a session made directly, as a login would:
    the login path itself is tested in test_login.py and test_security.py)."""
    made = await create_org_with_owner(
        env.runtime.db("idaas"),
        org_name=name,
        email=f"owner@{name.lower().replace(' ', '')}.example.com",
        password=PASSWORD,
        name="Owner",
    )
    state = env.runtime.state["idaas"]
    async with state.db.transaction() as session:
        owner = await session.get(User, made.owner.id)
        assert owner is not None
        pair = await state.issuer.start_session(
            session, owner, origin=Origin(ip=env.ip, user_agent="tests"), mfa=False
        )
    assert pair.refresh_token is not None
    return Tenant(
        org_id=made.org.id,
        slug=made.org.slug,
        owner_id=made.owner.id,
        email=made.owner.email,
        token=pair.access_token,
        refresh_token=pair.refresh_token,
    )


async def _idaas(shared_runtime: SharedRuntime) -> AsyncIterator[Env]:
    """Like conftest's `idaas`: orgs A and B with logged-in owners, and a client on an app
    of the shared runtime. The client has an address of its own, so that the brute-force
    throttle and the rate limits (per address) of one test do not reach another; in
    services mode the Redis counters are the shared runtime's (its bus namespace)."""
    n = next(_numbers)
    ip = f"10.{n // 250}.{n % 250}.7"
    app = create_app(shared_runtime.settings, runtime=shared_runtime.runtime)
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus.test") as client:
        placeholder = Tenant(org_id="", slug="", owner_id="", email="")
        env = Env(client=client, runtime=shared_runtime.runtime, a=placeholder, b=placeholder)
        env.ip, env.n = ip, n
        env.a = await _tenant(env, f"Alpha {n}")
        env.b = await _tenant(env, f"Bravo {n}")
        yield env


def install_fixtures(namespace: dict[str, Any]) -> None:
    """Define this module's fixtures in another test module (`install_fixtures(globals())`)."""
    namespace["_fixture_shared_runtime"] = pytest.fixture(scope="module", name="shared_runtime")(
        _shared_runtime
    )
    namespace["_fixture_settings"] = pytest.fixture(name="settings")(_settings)
    namespace["_fixture_idaas"] = pytest.fixture(name="idaas")(_idaas)


install_fixtures(globals())


# -- helpers ------------------------------------------------------------------------------


def route_leaves(routes: Any) -> Iterator[Any]:
    """The app's routes, flattened (FastAPI ≥ 0.16x nests included routers)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


def idaas_api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every IDaaS route under /api/v1."""
    found = set()
    for route in route_leaves(app.routes):
        endpoint = getattr(route, "endpoint", None)
        path = getattr(route, "path", "")
        if endpoint is None or not path.startswith(f"{API}/"):
            continue
        if not endpoint.__module__.startswith("nexus.services.idaas"):
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, path))
    return sorted(found, key=lambda mp: (mp in RUN_LAST, mp[1], mp[0]))


def client_for(idaas: Env, settings: Settings, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    """Another client on the same runtime; app errors come back as 500s, not exceptions."""
    app = create_app(settings, runtime=idaas.runtime)
    transport = httpx.ASGITransport(
        app=app, client=(ip or idaas.ip, 50001), raise_app_exceptions=False
    )
    return httpx.AsyncClient(transport=transport, base_url="http://nexus.test")


async def snapshot(idaas: Env, org_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every IDaaS table that belongs to `org_id` (and the org itself)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with idaas.runtime.db("idaas").read() as session:
        for table in Base.metadata.sorted_tables:
            if "org_id" in table.c:
                stmt = select(table).where(table.c.org_id == org_id)
            elif table.name == Org.__tablename__:
                stmt = select(table).where(or_(table.c.id == org_id, table.c.parent_id == org_id))
            else:
                continue
            rows = (await session.execute(stmt)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


@dataclass
class OrgB:
    """One of each kind of object in org B, made through the API by B's owner."""

    org_id: str
    owner_id: str
    user_id: str
    user_email: str
    group_id: str
    group_name: str
    role_id: str
    role_name: str
    binding_id: str
    group_binding_id: str
    key_id: str
    key: str
    key_prefix: str
    session_id: str
    user_token: str
    user_refresh: str
    extra: dict[str, str] = field(default_factory=dict)

    def path_values(self) -> dict[str, str]:
        client = {"client_ref": self.extra["client_id"]} if "client_id" in self.extra else {}
        return {
            **client,
            "org_id": self.org_id,
            "user_id": self.user_id,
            "group_id": self.group_id,
            "role_id": self.role_id,
            "binding_id": self.binding_id,
            "key_id": self.key_id,
            "session_id": self.session_id,
        }

    def secrets(self) -> set[str]:
        """Strings that must never appear in an answer given to org A."""
        values = set(self.path_values().values()) | {
            self.owner_id,
            self.user_email,
            self.group_name,
            self.role_name,
            self.group_binding_id,
            self.key_prefix,
            self.key,
            *self.extra.values(),
        }
        return {v for v in values if v}


async def make_org_b(idaas: Env) -> OrgB:
    c, h = idaas.client, idaas.b.headers

    async def ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return response.json() if response.content else {}  # type: ignore[no-any-return]

    email = "bob.bravo@bravo.example.com"
    user = await ok(
        await c.post(
            f"{API}/users",
            json={
                "email": email,
                "name": "Bob Bravo",
                "password": "bravo-secret-passphrase",
                "attributes": {"region": "EU"},
            },
            headers=h,
        )
    )
    group = await ok(await c.post(f"{API}/groups", json={"name": "bravo-team"}, headers=h))
    await ok(
        await c.post(
            f"{API}/groups/{group['id']}/members", json={"user_ids": [user["id"]]}, headers=h
        ),
        204,
    )
    role = await ok(
        await c.post(
            f"{API}/roles",
            json={"name": "bravo-auditor", "permissions": ["idaas:audit:review"]},
            headers=h,
        )
    )
    binding = await ok(
        await c.post(
            f"{API}/role-bindings",
            json={
                "role": role["id"],
                "user_id": user["id"],
                "conditions": ["resource.owner_id == user.id"],
            },
            headers=h,
        )
    )
    group_binding = await ok(
        await c.post(
            f"{API}/role-bindings", json={"role": "viewer", "group_id": group["id"]}, headers=h
        )
    )
    key = await ok(
        await c.post(
            f"{API}/api-keys",
            json={"name": "bravo-bot", "permissions": ["idaas:user:read"]},
            headers=h,
        )
    )
    tokens = await ok(
        await c.post(
            f"{API}/auth/login",
            json={"email": email, "password": "bravo-secret-passphrase", "org": idaas.b.slug},
        ),
        200,
    )
    sessions = await ok(
        await c.get(
            f"{API}/me/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ),
        200,
    )
    assert len(sessions) == 1
    extra = {}
    if (await c.get(f"{API}/oauth-clients", headers=h)).status_code != 404:
        client = await ok(
            await c.post(
                f"{API}/oauth-clients",
                json={
                    "name": "bravo-machine",
                    "grant_types": ["client_credentials"],
                    "scopes": ["idaas:user:read"],
                },
                headers=h,
            )
        )
        extra = {
            "client_id": client["client_id"],
            "client_row_id": client["id"],
            "client_secret": client["client_secret"],
            "client_account_id": client["service_user_id"],
        }
    return OrgB(
        org_id=idaas.b.org_id,
        owner_id=idaas.b.owner_id,
        user_id=user["id"],
        user_email=email,
        group_id=group["id"],
        group_name=group["name"],
        role_id=role["id"],
        role_name=role["name"],
        binding_id=binding["id"],
        group_binding_id=group_binding["id"],
        key_id=key["id"],
        key=key["key"],
        key_prefix=key["prefix"],
        session_id=sessions[0]["id"],
        user_token=tokens["access_token"],
        user_refresh=tokens["refresh_token"],
        extra=extra,
    )


def bodies_for(method: str, path: str, b: OrgB, a_ids: dict[str, str]) -> list[Any]:
    """Request bodies that name B's objects (or are harmless for routes about the caller)."""
    if method in {"GET", "DELETE"}:
        return [None]
    fresh = uuid.uuid4().hex[:8]
    table: dict[tuple[str, str], list[Any]] = {
        ("POST", f"{API}/auth/logout"): [None],
        ("POST", f"{API}/me/password"): [
            {"current_password": "bravo-secret-passphrase", "new_password": f"pw-{fresh}-xyzzy"}
        ],
        ("POST", f"{API}/me/mfa/totp"): [None],
        ("POST", f"{API}/me/mfa/totp/confirm"): [{"code": "123456"}],
        ("POST", f"{API}/me/mfa/recovery-codes"): [None],
        ("POST", f"{API}/orgs"): [{"name": "Sub", "slug": f"sub-{fresh}"}],
        ("PATCH", f"{API}/orgs/{{org_id}}"): [{"name": "pwned"}, {"status": "suspended"}],
        ("POST", f"{API}/users"): [{"email": f"new-{fresh}@alpha.example.com"}],
        ("POST", f"{API}/users/bulk"): [
            {
                "items": [
                    {"id": b.user_id, "name": "pwned"},
                    {"id": b.user_id, "status": "suspended"},
                    {"id": b.owner_id, "status": "deactivated"},
                ]
            }
        ],
        ("PATCH", f"{API}/users/{{user_id}}"): [
            {"name": "pwned"},
            {"status": "deactivated"},
            {"password": f"hijacked-{fresh}-passphrase"},
        ],
        ("POST", f"{API}/users/{{user_id}}/suspend"): [None],
        ("POST", f"{API}/groups"): [{"name": f"group-{fresh}"}],
        ("POST", f"{API}/groups/{{group_id}}/members"): [
            {"user_ids": [b.user_id]},
            {"user_ids": [a_ids["user_id"]]},
        ],
        ("POST", f"{API}/roles"): [{"name": f"role-{fresh}", "permissions": ["idaas:user:read"]}],
        ("PATCH", f"{API}/roles/{{role_id}}"): [{"permissions": ["*"]}, {"description": "x"}],
        ("POST", f"{API}/role-bindings"): [
            {"role": b.role_id, "user_id": a_ids["user_id"]},
            {"role": "admin", "user_id": b.user_id},
            {"role": "admin", "group_id": b.group_id},
            {"role": b.role_name, "user_id": b.user_id},
        ],
        ("POST", f"{API}/authz/check"): [
            {"principal": b.user_id, "permission": "idaas:audit:review"},
            {"principal": b.owner_id, "permission": "idaas:user:read"},
        ],
        ("POST", f"{API}/api-keys"): [{"name": f"key-{fresh}", "permissions": ["idaas:user:read"]}],
        ("POST", f"{API}/oauth-clients"): [
            {
                "name": f"client-{fresh}",
                "grant_types": ["client_credentials"],
                "scopes": ["idaas:user:read"],
            }
        ],
        ("PATCH", f"{API}/oauth-clients/{{client_ref}}"): [
            {"name": "pwned"},
            {"scopes": ["idaas:user:read", "idaas:user:manage"]},
        ],
        ("POST", f"{API}/oauth-clients/{{client_ref}}/secret"): [None],
    }
    if (method, path) not in table:
        raise AssertionError(
            f"{method} {path} is new: add the bodies that name B's objects to bodies_for()"
        )
    return table[(method, path)]


def query_for(method: str, path: str, b: OrgB) -> dict[str, str]:
    """Filters that name B's objects, for list routes."""
    if method != "GET":
        return {}
    return {
        f"{API}/users": {"q": "bravo"},
        f"{API}/role-bindings": {"user_id": b.user_id},
        f"{API}/audit-events": {"actor_id": b.owner_id},
    }.get(path, {})


def fill(path: str, values: dict[str, str]) -> str:
    names = re.findall(r"{(\w+)}", path)
    unknown = [n for n in names if n not in values]
    if unknown:
        raise AssertionError(f"{path}: no object of org B for {unknown}; extend OrgB")
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


@dataclass
class Outcome:
    method: str
    path: str
    body: Any
    status: int
    text: str
    sent: str = ""  # the URL and body: echoing what the caller sent reveals nothing

    def __str__(self) -> str:
        text = self.text if len(self.text) < 300 else self.text[:300] + "..."
        return f"{self.method} {self.path} {json.dumps(self.body)} -> {self.status}: {text}"


async def sweep(
    client: httpx.AsyncClient,
    routes: list[tuple[str, str]],
    b: OrgB,
    a_ids: dict[str, str],
    headers: dict[str, str],
) -> list[Outcome]:
    outcomes = []
    for method, template in routes:
        if (method, template) in CREDENTIAL_EXCHANGE:
            continue
        path = fill(template, b.path_values())
        for body in bodies_for(method, template, b, a_ids):
            response = await client.request(
                method,
                path,
                json=body,
                params=query_for(method, template, b),
                headers=headers,
            )
            sent = f"{response.request.url} {json.dumps(body)}"
            outcomes.append(
                Outcome(method, template, body, response.status_code, response.text, sent)
            )
    return outcomes


def leaks(outcome: Outcome, b: OrgB) -> list[str]:
    """What of B the answer carries that the request did not."""
    return sorted(s for s in b.secrets() if s in outcome.text and s not in outcome.sent)


@pytest.fixture
async def world(idaas: Env) -> tuple[OrgB, dict[str, str]]:
    """Org B's objects, and a user and group of org A for the mixed cases."""
    b = await make_org_b(idaas)
    user = await idaas.client.post(
        f"{API}/users", json={"email": "amy@alpha.example.com"}, headers=idaas.a.headers
    )
    group = await idaas.client.post(
        f"{API}/groups", json={"name": "alpha-team"}, headers=idaas.a.headers
    )
    assert user.status_code == group.status_code == 201
    return b, {"user_id": user.json()["id"], "group_id": group.json()["id"]}


# -- tests --------------------------------------------------------------------------------


async def test_every_idaas_route_is_swept(idaas: Env, settings: Settings) -> None:
    """The sweep sees the routes of the app (a new route must be added to bodies_for)."""
    routes = idaas_api_routes(create_app(settings, runtime=idaas.runtime))
    paths = {path for _m, path in routes}
    for expected in ("/users/{user_id}", "/groups/{group_id}/members", "/api-keys/{key_id}"):
        assert f"{API}{expected}" in paths
    assert len(routes) >= 35
    assert not [p for p in paths if not p.startswith(f"{API}/")]


async def test_org_a_owner_cannot_touch_org_b(
    idaas: Env, settings: Settings, world: tuple[OrgB, dict[str, str]]
) -> None:
    b, a_ids = world
    before = await snapshot(idaas, b.org_id)
    # B really has one of everything (and A's tries below would show up in these rows)
    for table in (
        "idaas_users",
        "idaas_groups",
        "idaas_group_members",
        "idaas_roles",
        "idaas_role_bindings",
        "idaas_api_keys",
        "idaas_sessions",
        "idaas_refresh_tokens",
        "idaas_audit_events",
    ):
        assert before[table], table
    routes = idaas_api_routes(create_app(settings, runtime=idaas.runtime))
    async with client_for(idaas, settings) as client:
        outcomes = await sweep(client, routes, b, a_ids, idaas.a.headers)
    problems = []
    for outcome in outcomes:
        if outcome.status >= 500:
            problems.append(f"server error: {outcome}")
        elif "{" in outcome.path and outcome.status not in (403, 404):
            problems.append(f"not refused: {outcome}")
        elif outcome.status < 300 and leaks(outcome, b):
            problems.append(f"leaks {leaks(outcome, b)}: {outcome}")
        elif outcome.status in (400, 405, 415) or "validation-error" in outcome.text:
            problems.append(f"the sweep's request itself is wrong: {outcome}")
    assert not problems, "\n".join(problems)
    # the bulk endpoint answers 200 with one result per item: every item must be refused
    bulk = next(o for o in outcomes if o.path == f"{API}/users/bulk")
    assert bulk.status == 200
    assert [item["status"] for item in json.loads(bulk.text)] == [404, 404, 404]
    # explaining a decision for a principal of B is refused
    checks = [o for o in outcomes if o.path == f"{API}/authz/check"]
    assert checks
    assert {o.status for o in checks} == {404}
    assert await snapshot(idaas, b.org_id) == before


async def test_refusals_do_not_reveal_that_b_objects_exist(
    idaas: Env, settings: Settings, world: tuple[OrgB, dict[str, str]]
) -> None:
    """A's owner gets the same answer for B's ids as for ids that exist nowhere."""
    b, _a_ids = world
    routes = [
        (m, p)
        for m, p in idaas_api_routes(create_app(settings, runtime=idaas.runtime))
        if "{" in p and m == "GET"
    ]
    assert routes
    nowhere = {k: str(uuid.uuid4()) for k in b.path_values()}
    async with client_for(idaas, settings) as client:
        for _method, template in routes:
            real = await client.get(fill(template, b.path_values()), headers=idaas.a.headers)
            fake = await client.get(fill(template, nowhere), headers=idaas.a.headers)
            assert real.status_code == fake.status_code == 404, template
            anonymised = real.text
            for name, value in b.path_values().items():
                anonymised = anonymised.replace(value, nowhere[name])
            assert anonymised == fake.text, template


async def test_x_org_id_of_an_unrelated_org_is_refused_everywhere(
    idaas: Env, settings: Settings, world: tuple[OrgB, dict[str, str]]
) -> None:
    """A request naming an org the caller may not act in (B is not below A) is refused by
    every route, rather than served in the caller's own org as if the header were absent."""
    b, a_ids = world
    before = await snapshot(idaas, b.org_id)
    routes = idaas_api_routes(create_app(settings, runtime=idaas.runtime))
    headers = {**idaas.a.headers, "X-Org-Id": b.org_id}
    async with client_for(idaas, settings) as client:
        outcomes = await sweep(client, routes, b, a_ids, headers)
    refused = [o for o in outcomes if o.status in (403, 404)]
    not_refused = [str(o) for o in outcomes if o.status not in (403, 404)]
    assert not not_refused, "\n".join(not_refused)
    assert len(refused) >= 40
    assert await snapshot(idaas, b.org_id) == before


async def test_org_a_api_key_cannot_touch_org_b(
    idaas: Env, settings: Settings, world: tuple[OrgB, dict[str, str]]
) -> None:
    b, a_ids = world
    created = await idaas.client.post(
        f"{API}/api-keys",
        json={"name": "alpha-everything", "permissions": ["*"]},
        headers=idaas.a.headers,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    before = await snapshot(idaas, b.org_id)
    routes = [
        (m, p)
        for m, p in idaas_api_routes(create_app(settings, runtime=idaas.runtime))
        if "{" in p or m == "GET"
    ]
    async with client_for(idaas, settings) as client:
        # the key works in its own org...
        mine = await client.get(f"{API}/users/{a_ids['user_id']}", headers={"X-API-Key": key})
        assert mine.status_code == 200, mine.text
        # both ways of presenting the key; the second also names B in X-Org-Id
        outcomes = await sweep(client, routes, b, a_ids, {"Authorization": f"Bearer {key}"})
        problems = [
            str(o)
            for o in outcomes
            if ("{" in o.path and o.status not in (403, 404))
            or (o.status < 300 and leaks(o, b))
            or o.status >= 500
        ]
        assert not problems, "\n".join(problems)
        header_sweep = await sweep(
            client, routes, b, a_ids, {"X-API-Key": key, "X-Org-Id": b.org_id}
        )
        problems = [str(o) for o in header_sweep if o.status not in (403, 404)]
        assert not problems, "\n".join(problems)
    assert await snapshot(idaas, b.org_id) == before


async def test_org_b_credentials_do_not_work_as_org_a(
    idaas: Env, world: tuple[OrgB, dict[str, str]]
) -> None:
    """B's user token and B's API key see only B, even when they name A's objects."""
    b, a_ids = world
    for headers in (
        {"Authorization": f"Bearer {b.user_token}"},
        {"X-API-Key": b.key},
    ):
        response = await idaas.client.get(f"{API}/users/{a_ids['user_id']}", headers=headers)
        assert response.status_code in (403, 404), response.text
        listed = await idaas.client.get(f"{API}/users", headers=headers)
        if listed.status_code == 200:
            assert {u["org_id"] for u in listed.json()["items"]} == {b.org_id}
        else:
            assert listed.status_code == 403
    # B's refresh token, presented at A's door, rotates B's session and nothing else
    rotated = await idaas.client.post(f"{API}/auth/refresh", json={"refresh_token": b.user_refresh})
    assert rotated.status_code == 200
    me = await idaas.client.get(
        f"{API}/me", headers={"Authorization": f"Bearer {rotated.json()['access_token']}"}
    )
    assert me.json()["org"]["id"] == b.org_id


async def test_parent_owner_administers_a_child_org_but_a_plain_member_does_not(
    idaas: Env,
) -> None:
    c, a = idaas.client, idaas.a
    child = await c.post(
        f"{API}/orgs", json={"name": "Alpha Sub", "slug": f"alpha-sub-{idaas.n}"}, headers=a.headers
    )
    assert child.status_code == 201, child.text
    child_id = child.json()["id"]
    assert child.json()["parent_id"] == a.org_id
    in_child = {**a.headers, "X-Org-Id": child_id}

    # A's owner acts in the child: users, groups, roles, bindings, audit
    made = await c.post(
        f"{API}/users",
        json={
            "email": "carol@alpha-sub.example.com",
            "name": "Carol",
            "password": "child-owner-passphrase",
            "roles": ["owner"],
        },
        headers=in_child,
    )
    assert made.status_code == 201, made.text
    carol = made.json()
    assert carol["org_id"] == child_id
    listed = await c.get(f"{API}/users", headers=in_child)
    assert [u["email"] for u in listed.json()["items"]] == ["carol@alpha-sub.example.com"]
    patched = await c.patch(
        f"{API}/users/{carol['id']}", json={"name": "Carol C."}, headers=in_child
    )
    assert patched.status_code == 200
    group = await c.post(f"{API}/groups", json={"name": "sub-team"}, headers=in_child)
    assert group.status_code == 201
    added = await c.post(
        f"{API}/groups/{group.json()['id']}/members",
        json={"user_ids": [carol["id"]]},
        headers=in_child,
    )
    assert added.status_code == 204
    role = await c.post(
        f"{API}/roles",
        json={"name": "sub-reader", "permissions": ["idaas:user:read"]},
        headers=in_child,
    )
    assert role.status_code == 201
    bound = await c.post(
        f"{API}/role-bindings",
        json={"role": "sub-reader", "group_id": group.json()["id"]},
        headers=in_child,
    )
    assert bound.status_code == 201, bound.text
    audit = await c.get(f"{API}/audit-events", params={"type": "user.*"}, headers=in_child)
    assert audit.status_code == 200
    assert [e["target_id"] for e in audit.json()["items"]] == [carol["id"], carol["id"]]
    # ...and without the header, A's own users do not include the child's
    mine = await c.get(f"{API}/users", headers=a.headers)
    assert carol["id"] not in {u["id"] for u in mine.json()["items"]}
    # the child's objects are not reachable from A without naming the child
    assert (await c.get(f"{API}/users/{carol['id']}", headers=a.headers)).status_code == 404

    # a plain member of A may read A's users but may not act in the child
    member = await c.post(
        f"{API}/users",
        json={"email": "mo@alpha.example.com", "password": "member-passphrase-1"},
        headers=a.headers,
    )
    assert member.status_code == 201
    member_token = (await idaas.tokens("mo@alpha.example.com", "member-passphrase-1"))[
        "access_token"
    ]
    as_member = {"Authorization": f"Bearer {member_token}"}
    assert (await c.get(f"{API}/users", headers=as_member)).status_code == 200
    member_in_child = {**as_member, "X-Org-Id": child_id}
    for method, path, body in (
        ("GET", f"{API}/users", None),
        ("GET", f"{API}/users/{carol['id']}", None),
        ("GET", f"{API}/groups", None),
        ("GET", f"{API}/roles", None),
        ("POST", f"{API}/users", {"email": "mallory@alpha-sub.example.com"}),
        ("PATCH", f"{API}/users/{carol['id']}", {"name": "pwned"}),
    ):
        response = await c.request(method, path, json=body, headers=member_in_child)
        assert response.status_code == 403, f"{method} {path}: {response.text}"
    again = await c.get(f"{API}/users", headers=in_child)
    assert [u["name"] for u in again.json()["items"]] == ["Carol C."]

    # the child's owner cannot climb to the parent, and B cannot reach A's child
    carol_token = (
        await idaas.client.post(
            f"{API}/auth/login",
            json={
                "email": "carol@alpha-sub.example.com",
                "password": "child-owner-passphrase",
                "org": f"alpha-sub-{idaas.n}",
            },
        )
    ).json()["access_token"]
    climb = await c.get(
        f"{API}/users", headers={"Authorization": f"Bearer {carol_token}", "X-Org-Id": a.org_id}
    )
    assert climb.status_code == 404
    sideways = await c.get(f"{API}/users", headers={**idaas.b.headers, "X-Org-Id": child_id})
    assert sideways.status_code == 404
    assert (await c.get(f"{API}/orgs/{child_id}", headers=idaas.b.headers)).status_code == 404
    orgs = await c.get(f"{API}/orgs", headers=a.headers)
    assert {o["id"] for o in orgs.json()} == {a.org_id, child_id}


async def test_parent_owner_manages_api_keys_of_a_child_org(idaas: Env) -> None:
    c, a = idaas.client, idaas.a
    child = await c.post(
        f"{API}/orgs",
        json={"name": "Alpha Keys", "slug": f"alpha-keys-{idaas.n}"},
        headers=a.headers,
    )
    assert child.status_code == 201, child.text
    child_id = child.json()["id"]
    in_child = {**a.headers, "X-Org-Id": child_id}
    made = await c.post(
        f"{API}/api-keys",
        json={"name": "child-bot", "permissions": ["idaas:user:read"]},
        headers=in_child,
    )
    assert made.status_code == 201, made.text
    listed_in_child = await c.get(f"{API}/api-keys", headers=in_child)
    listed_in_parent = await c.get(f"{API}/api-keys", headers=a.headers)
    assert made.json()["id"] not in {k["id"] for k in listed_in_parent.json()}
    assert made.json()["id"] in {k["id"] for k in listed_in_child.json()}
    seen = await c.get(f"{API}/users", headers={"X-API-Key": made.json()["key"]})
    assert seen.status_code == 200
    assert {u["org_id"] for u in seen.json()["items"]} == {child_id}


async def test_password_for_b_user_does_not_log_in_to_a(idaas: Env) -> None:
    """The same e-mail in two orgs: each password opens only its own org."""
    email = "sam@example.com"
    for tenant, password in ((idaas.a, "alpha-tenant-passphrase"), (idaas.b, "bravo-tenant-pass")):
        made = await idaas.client.post(
            f"{API}/users", json={"email": email, "password": password}, headers=tenant.headers
        )
        assert made.status_code == 201, made.text
    as_b = await idaas.login(email, "bravo-tenant-pass", org=idaas.a.slug)
    assert as_b.status_code == 401
    ok = await idaas.login(email, "bravo-tenant-pass")
    assert ok.status_code == 200
    me = await idaas.client.get(
        f"{API}/me", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
    )
    assert me.json()["org"]["id"] == idaas.b.org_id
    assert PASSWORD not in ok.text
