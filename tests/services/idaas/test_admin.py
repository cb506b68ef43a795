"""Administration through the API: users, bulk, groups, roles and bindings with resources
and conditions, the authorization explainer, API keys and the audit log."""

from __future__ import annotations

import hashlib
import secrets
import types
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nexus.kernel.config import Settings
from nexus.kernel.db import utcnow
from nexus.kernel.http import create_app
from nexus.kernel.runtime import Runtime
from nexus.services.idaas import apikeys
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.models import ApiKey, AuditEvent, RoleBinding, Session, User
from tests.services.idaas.test_isolation import Env, install_fixtures

API = "/api/v1"
install_fixtures(globals())  # one runtime for the module, fresh orgs A and B per test


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_user(idaas: Env, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return ok(
        await idaas.client.post(f"{API}/users", json=body, headers=headers or idaas.a.headers),
        201,
    )


async def login_as(idaas: Env, email: str, password: str) -> dict[str, str]:
    return await idaas.tokens(email, password)


async def all_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(await client.get(path, params=query, headers=headers))
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


async def audit(idaas: Env, **params: Any) -> list[dict[str, Any]]:
    page = ok(
        await idaas.client.get(
            f"{API}/audit-events", params={"limit": 500, **params}, headers=idaas.a.headers
        )
    )
    assert page["next_cursor"] is None
    return page["items"]  # type: ignore[no-any-return]


# -- users --------------------------------------------------------------------------------


async def test_create_get_and_search_users(idaas: Env) -> None:
    ada = await create_user(
        idaas,
        email="Ada.Lovelace@Alpha.example.com",
        name="Ada Lovelace",
        attributes={"region": "EU"},
    )
    assert ada["email"] == "ada.lovelace@alpha.example.com"  # stored lower-cased
    assert ada["org_id"] == idaas.a.org_id
    assert ada["status"] == "active"
    assert ada["kind"] == "user"
    assert ada["attributes"] == {"region": "EU"}
    assert "password" not in str(ada).lower()
    await create_user(idaas, email="grace@alpha.example.com", name="Grace HOPPER")
    await create_user(idaas, email="alan@alpha.example.com", name="Alan", status="invited")
    # e-mails are unique per org, whatever their case
    dup = problem(
        await idaas.client.post(
            f"{API}/users",
            json={"email": "ADA.lovelace@alpha.example.com"},
            headers=idaas.a.headers,
        ),
        409,
    )
    assert "exists" in dup["detail"]

    got = ok(await idaas.client.get(f"{API}/users/{ada['id']}", headers=idaas.a.headers))
    assert got == ada

    async def search(**params: Any) -> list[str]:
        page = ok(await idaas.client.get(f"{API}/users", params=params, headers=idaas.a.headers))
        return sorted(u["email"] for u in page["items"])

    assert await search(q="LOVELACE") == ["ada.lovelace@alpha.example.com"]  # name, any case
    assert await search(q="hopper") == ["grace@alpha.example.com"]
    assert await search(q="alan@") == ["alan@alpha.example.com"]  # part of the e-mail
    assert await search(status="invited") == ["alan@alpha.example.com"]
    assert await search(status="active", q="a") == [
        "ada.lovelace@alpha.example.com",
        "grace@alpha.example.com",
        idaas.a.email,
    ]
    assert await search(q="nobody-like-this") == []
    problem(
        await idaas.client.get(f"{API}/users", params={"status": "gone"}, headers=idaas.a.headers),
        422,
    )
    problem(await idaas.client.get(f"{API}/users/{uuid.uuid4()}", headers=idaas.a.headers), 404)


async def test_cursor_pagination_has_no_duplicates_or_gaps(idaas: Env) -> None:
    items = [
        {"email": f"user{n:02d}@alpha.example.com", "name": f"Page User {n}"} for n in range(23)
    ]
    results = ok(
        await idaas.client.post(f"{API}/users/bulk", json={"items": items}, headers=idaas.a.headers)
    )
    assert [r["status"] for r in results] == [201] * 23
    everything = ok(
        await idaas.client.get(f"{API}/users", params={"limit": 500}, headers=idaas.a.headers)
    )
    assert everything["next_cursor"] is None
    expected = [u["id"] for u in everything["items"]]
    assert len(expected) == 24  # the owner and 23 more

    paged = await all_pages(idaas.client, f"{API}/users", idaas.a.headers, limit=5)
    assert [u["id"] for u in paged] == expected
    # a filter holds across pages
    filtered = await all_pages(idaas.client, f"{API}/users", idaas.a.headers, limit=4, q="page")
    assert len(filtered) == 23 == len({u["id"] for u in filtered})
    # the last page has exactly the remainder and no cursor
    exact = await all_pages(idaas.client, f"{API}/users", idaas.a.headers, limit=8)
    assert len(exact) == 24

    # stable under inserts: a user created in the middle of a walk is seen once, at the end
    first = ok(
        await idaas.client.get(f"{API}/users", params={"limit": 10}, headers=idaas.a.headers)
    )
    late = await create_user(idaas, email="late@alpha.example.com")
    seen = [u["id"] for u in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = ok(
            await idaas.client.get(
                f"{API}/users", params={"limit": 10, "cursor": cursor}, headers=idaas.a.headers
            )
        )
        seen += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [*expected, late["id"]]

    bad = problem(
        await idaas.client.get(
            f"{API}/users", params={"cursor": "%%%not-a-cursor"}, headers=idaas.a.headers
        ),
        400,
    )
    assert "cursor" in bad["detail"]
    problem(
        await idaas.client.get(f"{API}/users", params={"limit": 0}, headers=idaas.a.headers), 422
    )


async def test_patch_user(idaas: Env) -> None:
    user = await create_user(
        idaas, email="pat@alpha.example.com", name="Pat", password="first-passphrase-1"
    )
    patched = ok(
        await idaas.client.patch(
            f"{API}/users/{user['id']}",
            json={"name": "Pat Smith", "attributes": {"team": "blue"}},
            headers=idaas.a.headers,
        )
    )
    assert patched["name"] == "Pat Smith"
    assert patched["attributes"] == {"team": "blue"}
    assert patched["email"] == user["email"]  # untouched fields stay
    assert patched["updated_at"] >= user["updated_at"]
    # an administrator may set a password; the policy applies
    problem(
        await idaas.client.patch(
            f"{API}/users/{user['id']}", json={"password": "short"}, headers=idaas.a.headers
        ),
        422,
    )
    ok(
        await idaas.client.patch(
            f"{API}/users/{user['id']}",
            json={"password": "second-passphrase-2"},
            headers=idaas.a.headers,
        )
    )
    assert (await idaas.login("pat@alpha.example.com", "first-passphrase-1")).status_code == 401
    assert (await idaas.login("pat@alpha.example.com", "second-passphrase-2")).status_code == 200
    problem(
        await idaas.client.patch(
            f"{API}/users/{user['id']}", json={"status": "sleeping"}, headers=idaas.a.headers
        ),
        422,
    )
    # nobody suspends or deactivates themselves
    problem(
        await idaas.client.patch(
            f"{API}/users/{idaas.a.owner_id}", json={"status": "suspended"}, headers=idaas.a.headers
        ),
        409,
    )


async def test_suspend_ends_sessions_and_blocks_login(idaas: Env) -> None:
    user = await create_user(idaas, email="sue@alpha.example.com", password="sues-passphrase-1")
    first = await login_as(idaas, "sue@alpha.example.com", "sues-passphrase-1")
    second = await login_as(idaas, "sue@alpha.example.com", "sues-passphrase-1")
    suspended = ok(
        await idaas.client.post(f"{API}/users/{user['id']}/suspend", headers=idaas.a.headers)
    )
    assert suspended["status"] == "suspended"
    for tokens in (first, second):  # every session of the user ends
        refused = await idaas.client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        problem(refused, 401)
        assert "access_token" not in refused.text
    denied = problem(await idaas.login("sue@alpha.example.com", "sues-passphrase-1"), 401)
    wrong = problem(await idaas.login("sue@alpha.example.com", "not-her-passphrase"), 401)
    assert denied["detail"] == wrong["detail"]  # a suspended account is not revealed
    async with idaas.runtime.db("idaas").read() as session:
        logins = (await session.scalars(select(Session).where(Session.user_id == user["id"]))).all()
    assert len(logins) == 2
    assert all(s.revoked_at is not None and s.revoked_reason == "user_suspended" for s in logins)

    # reactivated, the user logs in again (the old sessions stay ended)
    ok(
        await idaas.client.patch(
            f"{API}/users/{user['id']}", json={"status": "active"}, headers=idaas.a.headers
        )
    )
    assert (await idaas.login("sue@alpha.example.com", "sues-passphrase-1")).status_code == 200
    problem(
        await idaas.client.post(
            f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}
        ),
        401,
    )


async def test_delete_deactivates_and_keeps_the_user(idaas: Env) -> None:
    user = await create_user(idaas, email="dee@alpha.example.com", password="dees-passphrase-1")
    tokens = await login_as(idaas, "dee@alpha.example.com", "dees-passphrase-1")
    response = await idaas.client.delete(f"{API}/users/{user['id']}", headers=idaas.a.headers)
    assert response.status_code == 204
    kept = ok(await idaas.client.get(f"{API}/users/{user['id']}", headers=idaas.a.headers))
    assert kept["status"] == "deactivated"
    listed = ok(
        await idaas.client.get(
            f"{API}/users", params={"status": "deactivated"}, headers=idaas.a.headers
        )
    )
    assert [u["id"] for u in listed["items"]] == [user["id"]]
    problem(await idaas.login("dee@alpha.example.com", "dees-passphrase-1"), 401)
    problem(
        await idaas.client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ),
        401,
    )
    problem(
        await idaas.client.delete(f"{API}/users/{idaas.a.owner_id}", headers=idaas.a.headers), 409
    )


async def test_bulk_reports_per_item_and_one_bad_item_does_not_stop_the_others(
    idaas: Env,
) -> None:
    existing = await create_user(idaas, email="old@alpha.example.com", name="Old")
    items = [
        {"email": "new1@alpha.example.com", "name": "New One"},  # 0: created
        {"email": "old@alpha.example.com"},  # 1: e-mail taken
        {"id": existing["id"], "name": "Old, renamed", "attributes": {"x": 1}},  # 2: updated
        {"id": str(uuid.uuid4()), "name": "ghost"},  # 3: no such user
        {"email": "norole@alpha.example.com", "roles": ["no-such-role"]},  # 4: unknown role
        {"name": "no e-mail"},  # 5: nothing to create from
        {"email": "new2@alpha.example.com", "status": "invited", "roles": ["viewer"]},  # 6
        {"id": idaas.a.owner_id, "status": "suspended"},  # 7: not yourself
    ]
    results = ok(
        await idaas.client.post(f"{API}/users/bulk", json={"items": items}, headers=idaas.a.headers)
    )
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [201, 409, 200, 404, 422, 422, 201, 409]
    for result in results:
        assert (result["error"] is None) == (result["status"] < 300)
        assert (result["id"] is not None) == (result["status"] < 300)
    assert results[2]["id"] == existing["id"]
    assert "no-such-role" in results[4]["error"]

    listed = ok(
        await idaas.client.get(f"{API}/users", params={"limit": 500}, headers=idaas.a.headers)
    )
    emails = {u["email"]: u for u in listed["items"]}
    assert set(emails) == {
        idaas.a.email,
        "old@alpha.example.com",
        "new1@alpha.example.com",
        "new2@alpha.example.com",
    }  # the failed create (unknown role) left no half-made user behind
    assert emails["old@alpha.example.com"]["name"] == "Old, renamed"
    assert emails["old@alpha.example.com"]["attributes"] == {"x": 1}
    assert emails["new2@alpha.example.com"]["status"] == "invited"
    assert emails[idaas.a.email]["status"] == "active"
    bindings = ok(
        await idaas.client.get(
            f"{API}/role-bindings", params={"user_id": results[6]["id"]}, headers=idaas.a.headers
        )
    )
    roles = {
        r["id"]: r["name"]
        for r in ok(await idaas.client.get(f"{API}/roles", headers=idaas.a.headers))
    }
    assert [roles[b["role_id"]] for b in bindings] == ["viewer"]
    # each applied item is audited on its own
    created = await audit(idaas, type="user.created")
    assert {e["target_id"] for e in created} == {
        existing["id"],
        results[0]["id"],
        results[6]["id"],
    }
    problem(
        await idaas.client.post(f"{API}/users/bulk", json={"items": []}, headers=idaas.a.headers),
        422,
    )


async def test_bulk_update_applies_roles(idaas: Env) -> None:
    user = await create_user(idaas, email="rolf@alpha.example.com", roles=["viewer"])
    results = ok(
        await idaas.client.post(
            f"{API}/users/bulk",
            json={"items": [{"id": user["id"], "roles": ["admin"]}]},
            headers=idaas.a.headers,
        )
    )
    assert results[0]["status"] == 200
    tokens_scope = ok(
        await idaas.client.post(
            f"{API}/authz/check",
            json={"principal": user["id"], "permission": "idaas:user:manage"},
            headers=idaas.a.headers,
        )
    )
    assert tokens_scope["allowed"] is True


# -- groups ---------------------------------------------------------------------------------


async def test_groups_and_membership(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    gus = await create_user(
        idaas, email="gus@alpha.example.com", password="guss-passphrase-1", roles=[]
    )
    gia = await create_user(idaas, email="gia@alpha.example.com", roles=[])
    group = ok(
        await c.post(f"{API}/groups", json={"name": "support", "description": "L1"}, headers=h), 201
    )
    assert group["description"] == "L1"
    problem(await c.post(f"{API}/groups", json={"name": "support"}, headers=h), 409)
    problem(await c.post(f"{API}/groups", json={"name": ""}, headers=h), 422)
    assert ok(await c.get(f"{API}/groups/{group['id']}", headers=h)) == group
    assert [g["name"] for g in ok(await c.get(f"{API}/groups", headers=h))] == ["support"]

    ok(
        await c.post(
            f"{API}/groups/{group['id']}/members",
            json={"user_ids": [gus["id"], gia["id"]]},
            headers=h,
        ),
        204,
    )
    # adding twice is harmless; an unknown user refuses the whole request
    ok(
        await c.post(
            f"{API}/groups/{group['id']}/members", json={"user_ids": [gus["id"]]}, headers=h
        ),
        204,
    )
    ghost = str(uuid.uuid4())
    problem(
        await c.post(f"{API}/groups/{group['id']}/members", json={"user_ids": [ghost]}, headers=h),
        404,
    )
    members = ok(await c.get(f"{API}/groups/{group['id']}/members", headers=h))
    assert [m["email"] for m in members] == ["gia@alpha.example.com", "gus@alpha.example.com"]

    # a role granted to the group reaches its members
    ok(
        await c.post(
            f"{API}/roles",
            json={"name": "auditor", "permissions": ["idaas:audit:review"]},
            headers=h,
        ),
        201,
    )
    binding = ok(
        await c.post(
            f"{API}/role-bindings", json={"role": "auditor", "group_id": group["id"]}, headers=h
        ),
        201,
    )
    assert binding["subject_type"] == "group"
    gus_token = (await login_as(idaas, "gus@alpha.example.com", "guss-passphrase-1"))[
        "access_token"
    ]
    me = ok(await c.get(f"{API}/me", headers=bearer(gus_token)))
    assert me["roles"] == ["auditor"]
    assert me["permissions"] == ["idaas:audit:review"]
    ok(await c.get(f"{API}/audit-events", headers=bearer(gus_token)))

    ok(await c.delete(f"{API}/groups/{group['id']}/members/{gia['id']}", headers=h), 204)
    problem(await c.delete(f"{API}/groups/{group['id']}/members/{gia['id']}", headers=h), 404)
    members = ok(await c.get(f"{API}/groups/{group['id']}/members", headers=h))
    assert [m["id"] for m in members] == [gus["id"]]

    # deleting the group ends what it granted
    ok(await c.delete(f"{API}/groups/{group['id']}", headers=h), 204)
    problem(await c.get(f"{API}/groups/{group['id']}", headers=h), 404)
    assert (
        ok(await c.get(f"{API}/role-bindings", params={"group_id": group["id"]}, headers=h)) == []
    )
    gus_token = (await login_as(idaas, "gus@alpha.example.com", "guss-passphrase-1"))[
        "access_token"
    ]
    assert ok(await c.get(f"{API}/me", headers=bearer(gus_token)))["permissions"] == []
    problem(await c.get(f"{API}/audit-events", headers=bearer(gus_token)), 403)
    # users of the group are not touched
    assert ok(await c.get(f"{API}/users/{gia['id']}", headers=h))["status"] == "active"


# -- roles and bindings ---------------------------------------------------------------------


async def test_custom_roles(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    builtin = ok(await c.get(f"{API}/roles", headers=h))
    assert [r["name"] for r in builtin] == ["admin", "member", "owner", "viewer"]
    assert all(r["builtin"] for r in builtin)
    role = ok(
        await c.post(
            f"{API}/roles",
            json={
                "name": "helpdesk",
                "description": "Resets things",
                "permissions": ["idaas:user:read", "idaas:user:manage", "idaas:user:read"],
            },
            headers=h,
        ),
        201,
    )
    assert role["permissions"] == ["idaas:user:manage", "idaas:user:read"]  # sorted, unique
    assert role["builtin"] is False
    assert ok(await c.get(f"{API}/roles/helpdesk", headers=h)) == role  # by name or by id
    assert ok(await c.get(f"{API}/roles/{role['id']}", headers=h)) == role
    problem(
        await c.post(f"{API}/roles", json={"name": "helpdesk", "permissions": ["*"]}, headers=h),
        409,
    )
    bad = problem(
        await c.post(
            f"{API}/roles", json={"name": "bad", "permissions": ["Not A Permission"]}, headers=h
        ),
        422,
    )
    assert bad["errors"][0]["field"] == "permissions"
    problem(
        await c.post(f"{API}/roles", json={"name": "Bad Name", "permissions": ["*"]}, headers=h),
        422,
    )
    problem(await c.post(f"{API}/roles", json={"name": "empty", "permissions": []}, headers=h), 422)

    user = await create_user(
        idaas, email="hal@alpha.example.com", password="hals-passphrase-1", roles=["helpdesk"]
    )
    token = (await login_as(idaas, "hal@alpha.example.com", "hals-passphrase-1"))["access_token"]
    assert ok(await c.get(f"{API}/me", headers=bearer(token)))["permissions"] == [
        "idaas:user:manage",
        "idaas:user:read",
    ]
    patched = ok(
        await c.patch(
            f"{API}/roles/{role['id']}", json={"permissions": ["idaas:group:read"]}, headers=h
        )
    )
    assert patched["permissions"] == ["idaas:group:read"]
    assert patched["description"] == "Resets things"
    token = (await login_as(idaas, "hal@alpha.example.com", "hals-passphrase-1"))["access_token"]
    assert ok(await c.get(f"{API}/me", headers=bearer(token)))["permissions"] == [
        "idaas:group:read"
    ]

    # built-in roles are fixed
    problem(await c.patch(f"{API}/roles/admin", json={"permissions": ["*"]}, headers=h), 409)
    problem(await c.delete(f"{API}/roles/owner", headers=h), 409)
    # deleting a custom role removes its bindings
    ok(await c.delete(f"{API}/roles/{role['id']}", headers=h), 204)
    problem(await c.get(f"{API}/roles/{role['id']}", headers=h), 404)
    assert ok(await c.get(f"{API}/role-bindings", params={"user_id": user["id"]}, headers=h)) == []
    token = (await login_as(idaas, "hal@alpha.example.com", "hals-passphrase-1"))["access_token"]
    assert ok(await c.get(f"{API}/me", headers=bearer(token)))["roles"] == []


async def test_only_an_owner_makes_an_owner(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    await create_user(
        idaas, email="adm@alpha.example.com", password="admins-passphrase-1", roles=["admin"]
    )
    token = (await login_as(idaas, "adm@alpha.example.com", "admins-passphrase-1"))["access_token"]
    victim = await create_user(idaas, email="vic@alpha.example.com", roles=[])
    as_admin = bearer(token)
    problem(
        await c.post(
            f"{API}/role-bindings",
            json={"role": "owner", "user_id": victim["id"]},
            headers=as_admin,
        ),
        403,
    )
    problem(
        await c.post(
            f"{API}/users",
            json={"email": "o2@alpha.example.com", "roles": ["owner"]},
            headers=as_admin,
        ),
        403,
    )
    owner_binding = next(
        b
        for b in ok(
            await c.get(f"{API}/role-bindings", params={"user_id": idaas.a.owner_id}, headers=h)
        )
    )
    problem(await c.delete(f"{API}/role-bindings/{owner_binding['id']}", headers=as_admin), 403)
    granted = ok(
        await c.post(
            f"{API}/role-bindings",
            json={"role": "viewer", "user_id": victim["id"]},
            headers=as_admin,
        ),
        201,
    )
    ok(await c.delete(f"{API}/role-bindings/{granted['id']}", headers=as_admin), 204)
    problem(await c.delete(f"{API}/role-bindings/{granted['id']}", headers=as_admin), 404)
    problem(
        await c.post(
            f"{API}/role-bindings",
            json={"role": "viewer", "user_id": victim["id"], "group_id": victim["id"]},
            headers=h,
        ),
        422,
    )


async def test_bindings_with_a_resource_and_conditions_and_the_explainer(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    uma = await create_user(
        idaas,
        email="uma@alpha.example.com",
        password="umas-passphrase-1",
        roles=[],
        attributes={"region": "EU"},
    )
    for name, perms in (
        ("deal-editor", ["crm:deal:update"]),
        ("deal-remover", ["crm:deal:delete"]),
        ("exporter", ["crm:deal:export"]),
    ):
        ok(await c.post(f"{API}/roles", json={"name": name, "permissions": perms}, headers=h), 201)
    own = ok(
        await c.post(
            f"{API}/role-bindings",
            json={
                "role": "deal-editor",
                "user_id": uma["id"],
                "conditions": ["resource.owner_id == user.id"],
            },
            headers=h,
        ),
        201,
    )
    assert own["conditions"] == ["resource.owner_id == user.id"]
    one = ok(
        await c.post(
            f"{API}/role-bindings",
            json={"role": "deal-remover", "user_id": uma["id"], "resource": "deal:42"},
            headers=h,
        ),
        201,
    )
    assert one["resource"] == "deal:42"
    ok(
        await c.post(
            f"{API}/role-bindings",
            json={
                "role": "exporter",
                "user_id": uma["id"],
                "conditions": ["user.attributes.region == resource.region"],
            },
            headers=h,
        ),
        201,
    )
    bad = problem(
        await c.post(
            f"{API}/role-bindings",
            json={"role": "exporter", "user_id": uma["id"], "conditions": ["__import__('os')"]},
            headers=h,
        ),
        422,
    )
    assert bad["errors"][0]["field"].startswith("conditions")

    cases: list[tuple[str, dict[str, Any] | None, bool, str]] = [
        (
            "crm:deal:update",
            {"type": "deal", "id": "7", "owner_id": uma["id"]},
            True,
            "resource.owner_id == user.id",
        ),
        (
            "crm:deal:update",
            {"type": "deal", "id": "7", "owner_id": "someone"},
            False,
            "condition not met",
        ),
        ("crm:deal:update", None, False, "condition not met"),
        ("crm:deal:delete", {"type": "deal", "id": "42"}, True, "on deal:42"),
        ("crm:deal:delete", {"type": "deal", "id": "43"}, False, "only for deal:42"),
        (
            "crm:deal:export",
            {"type": "deal", "id": "1", "region": "EU"},
            True,
            "user.attributes.region",
        ),
        (
            "crm:deal:export",
            {"type": "deal", "id": "1", "region": "US"},
            False,
            "condition not met",
        ),
        ("crm:invoice:read", None, False, "no role grants crm:invoice:read"),
        (
            "crm:deal:update",
            {"type": "deal", "id": "7", "owner_id": uma["id"], "org_id": idaas.b.org_id},
            False,
            "another org",
        ),
    ]
    token = (await login_as(idaas, "uma@alpha.example.com", "umas-passphrase-1"))["access_token"]
    for permission, resource, allowed, because in cases:
        body = {"permission": permission, "resource": resource}
        # an administrator asks about Uma, and Uma asks about herself (from her token)
        for headers, principal in ((h, uma["id"]), (bearer(token), None)):
            answer = ok(
                await c.post(
                    f"{API}/authz/check", json={**body, "principal": principal}, headers=headers
                )
            )
            assert answer["allowed"] is allowed, (permission, resource, principal, answer)
            assert because in answer["reason"], (permission, resource, principal, answer)
            assert (answer["grant"] is not None) == allowed
    # conditional grants are not blanket permissions
    me = ok(await c.get(f"{API}/me", headers=bearer(token)))
    assert me["permissions"] == []
    assert sorted(me["roles"]) == ["deal-editor", "deal-remover", "exporter"]

    # the explainer for the caller, and its limits
    mine = ok(
        await c.post(f"{API}/authz/check", json={"permission": "idaas:user:manage"}, headers=h)
    )
    assert mine["allowed"] is True
    assert "*" in mine["reason"]
    problem(await c.post(f"{API}/authz/check", json={"permission": "nonsense"}, headers=h), 422)
    problem(
        await c.post(
            f"{API}/authz/check",
            json={"principal": str(uuid.uuid4()), "permission": "crm:deal:read"},
            headers=h,
        ),
        404,
    )
    # asking about somebody else needs idaas:role:read, which Uma does not have
    problem(
        await c.post(
            f"{API}/authz/check",
            json={"principal": idaas.a.owner_id, "permission": "crm:deal:read"},
            headers=bearer(token),
        ),
        403,
    )
    # a suspended principal is denied whatever its grants
    ok(await c.post(f"{API}/users/{uma['id']}/suspend", headers=h))
    denied = ok(
        await c.post(
            f"{API}/authz/check",
            json={
                "principal": uma["id"],
                "permission": "crm:deal:delete",
                "resource": {"type": "deal", "id": "42"},
            },
            headers=h,
        )
    )
    assert denied == {"allowed": False, "reason": "the user is suspended", "grant": None}


# -- API keys -----------------------------------------------------------------------------


async def test_api_key_lifecycle(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    made = ok(
        await c.post(
            f"{API}/api-keys",
            json={"name": "reporting", "permissions": ["idaas:user:read"], "expires_in_days": 30},
            headers=h,
        ),
        201,
    )
    key = made["key"]
    assert key.startswith(f"{made['prefix']}_")
    assert made["prefix"].startswith("nxk_")
    assert made["last_used_at"] is None
    assert made["expires_at"] is not None
    secret = key.removeprefix(made["prefix"] + "_")
    # shown once: never again in a list
    listed = ok(await c.get(f"{API}/api-keys", headers=h))
    assert [k["id"] for k in listed] == [made["id"]]
    assert "key" not in listed[0]
    assert secret not in str(listed)
    # stored hashed: the secret is nowhere in the row, nor in the audit log
    async with idaas.runtime.db("idaas").read() as session:
        row = await session.get(ApiKey, made["id"])
        assert row is not None
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr([getattr(row, col.key) for col in ApiKey.__table__.columns])
        events = (await session.scalars(select(AuditEvent))).all()
        assert secret not in repr([(e.type, e.data) for e in events])
        account = await session.get(User, made["user_id"])
        assert account is not None
        assert account.kind == "service_account"
        assert account.password_hash is None

    # both ways of presenting it work, with exactly the key's permissions
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        users = ok(await c.get(f"{API}/users", headers=headers))
        assert idaas.a.email in {u["email"] for u in users["items"]}
        problem(
            await c.post(f"{API}/users", json={"email": "k@alpha.example.com"}, headers=headers),
            403,
        )
        problem(await c.get(f"{API}/groups", headers=headers), 403)
        problem(await c.get(f"{API}/audit-events", headers=headers), 403)
        problem(await c.get(f"{API}/api-keys", headers=headers), 403)
    used = ok(await c.get(f"{API}/api-keys", headers=h))[0]
    assert used["last_used_at"] is not None
    # service accounts are listed as such
    accounts = ok(await c.get(f"{API}/users", params={"kind": "service_account"}, headers=h))
    assert [u["id"] for u in accounts["items"]] == [made["user_id"]]

    # a wrong secret, a made-up key, garbage
    for bad in (f"{made['prefix']}_{'x' * 43}", "nxk_000000000000_" + "y" * 43, "nxk_", "nope"):
        problem(await c.get(f"{API}/users", headers={"X-API-Key": bad}), 401)

    # revocation takes effect at once, however the key is presented
    ok(await c.delete(f"{API}/api-keys/{made['id']}", headers=h), 204)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        problem(await c.get(f"{API}/users", headers=headers), 401)
    problem(await c.delete(f"{API}/api-keys/{made['id']}", headers=h), 404)
    revoked = ok(await c.get(f"{API}/api-keys", headers=h))[0]
    assert revoked["revoked_at"] is not None
    assert ok(await c.get(f"{API}/users/{made['user_id']}", headers=h))["status"] == "deactivated"

    types = [e["type"] for e in await audit(idaas, type="apikey.*")]
    assert types == ["apikey.revoked", "apikey.created"]


async def test_every_generated_api_key_is_accepted(
    idaas: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """token_urlsafe gives a secret with '_' in it about half of the time: such a key
    must work like any other (the key is split after its fixed-length prefix)."""
    real = secrets.token_urlsafe
    shim = types.SimpleNamespace(
        token_hex=secrets.token_hex, token_urlsafe=lambda n=32: real(n)[:20] + "_" + real(n)[21:]
    )
    monkeypatch.setattr(apikeys, "secrets", shim)
    made = ok(
        await idaas.client.post(
            f"{API}/api-keys",
            json={"name": "underscored", "permissions": ["idaas:user:read"]},
            headers=idaas.a.headers,
        ),
        201,
    )
    assert "_" in made["key"].removeprefix(made["prefix"] + "_")
    for headers in ({"Authorization": f"Bearer {made['key']}"}, {"X-API-Key": made["key"]}):
        ok(await idaas.client.get(f"{API}/users", headers=headers))


async def test_revocation_reaches_every_process_at_once(idaas: Env, settings: Settings) -> None:
    other = Runtime(settings, [idaas_service])  # a second API process on the same database
    await other.start(workers=False)
    try:
        app = create_app(settings, runtime=other)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://nexus.test") as there:
            made = ok(
                await idaas.client.post(
                    f"{API}/api-keys",
                    json={"name": "roaming", "permissions": ["idaas:user:read"]},
                    headers=idaas.a.headers,
                ),
                201,
            )
            key = {"X-API-Key": made["key"]}
            ok(await there.get(f"{API}/users", headers=key))  # the other process knows it
            ok(
                await idaas.client.delete(f"{API}/api-keys/{made['id']}", headers=idaas.a.headers),
                204,
            )
            problem(await idaas.client.get(f"{API}/users", headers=key), 401)
            problem(await there.get(f"{API}/users", headers=key), 401)
    finally:
        await other.stop()


async def test_expired_api_key_is_refused(idaas: Env) -> None:
    made = ok(
        await idaas.client.post(
            f"{API}/api-keys",
            json={"name": "short", "permissions": ["idaas:user:read"], "expires_in_days": 1},
            headers=idaas.a.headers,
        ),
        201,
    )
    async with idaas.runtime.db("idaas").transaction() as session:
        row = await session.get(ApiKey, made["id"])
        assert row is not None
        row.expires_at = utcnow()
    problem(await idaas.client.get(f"{API}/users", headers={"X-API-Key": made["key"]}), 401)


async def test_a_key_never_gets_more_than_its_creator(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    # an admin holds *:*:* but not `*`
    await create_user(
        idaas, email="ari@alpha.example.com", password="aris-passphrase-1", roles=["admin"]
    )
    admin = bearer(
        (await login_as(idaas, "ari@alpha.example.com", "aris-passphrase-1"))["access_token"]
    )
    for permissions in (["*"], ["*:*"], ["idaas:*"]):
        refused = problem(
            await c.post(
                f"{API}/api-keys", json={"name": "k", "permissions": permissions}, headers=admin
            ),
            403,
        )
        assert permissions[0] in refused["detail"]
    ok(
        await c.post(
            f"{API}/api-keys", json={"name": "k", "permissions": ["*:*:*"]}, headers=admin
        ),
        201,
    )

    # a key-keeper who may only read users
    ok(
        await c.post(
            f"{API}/roles",
            json={"name": "keymaster", "permissions": ["idaas:apikey:manage", "idaas:user:read"]},
            headers=h,
        ),
        201,
    )
    await create_user(
        idaas, email="kim@alpha.example.com", password="kims-passphrase-1", roles=["keymaster"]
    )
    kim = bearer(
        (await login_as(idaas, "kim@alpha.example.com", "kims-passphrase-1"))["access_token"]
    )
    for permissions in (
        ["idaas:user:manage"],
        ["idaas:user:*"],
        ["idaas:*:read"],
        ["idaas:user:read", "idaas:role:manage"],
    ):
        problem(
            await c.post(
                f"{API}/api-keys", json={"name": "k", "permissions": permissions}, headers=kim
            ),
            403,
        )
    narrow = ok(
        await c.post(
            f"{API}/api-keys", json={"name": "k", "permissions": ["idaas:user:read"]}, headers=kim
        ),
        201,
    )
    assert narrow["permissions"] == ["idaas:user:read"]

    # a key that may manage keys cannot mint a broader key either
    manager = ok(
        await c.post(
            f"{API}/api-keys",
            json={"name": "mgr", "permissions": ["idaas:apikey:manage", "idaas:user:read"]},
            headers=h,
        ),
        201,
    )
    as_key = {"X-API-Key": manager["key"]}
    problem(
        await c.post(f"{API}/api-keys", json={"name": "k2", "permissions": ["*"]}, headers=as_key),
        403,
    )
    problem(
        await c.post(
            f"{API}/api-keys",
            json={"name": "k2", "permissions": ["idaas:user:manage"]},
            headers=as_key,
        ),
        403,
    )
    child = ok(
        await c.post(
            f"{API}/api-keys",
            json={"name": "k2", "permissions": ["idaas:user:read"]},
            headers=as_key,
        ),
        201,
    )
    problem(
        await c.post(
            f"{API}/users",
            json={"email": "z@alpha.example.com"},
            headers={"X-API-Key": child["key"]},
        ),
        403,
    )
    # a plain member may not create keys at all
    await create_user(idaas, email="meg@alpha.example.com", password="megs-passphrase-1")
    member = bearer(
        (await login_as(idaas, "meg@alpha.example.com", "megs-passphrase-1"))["access_token"]
    )
    problem(
        await c.post(
            f"{API}/api-keys",
            json={"name": "k", "permissions": ["idaas:user:read"]},
            headers=member,
        ),
        403,
    )


# -- audit log ------------------------------------------------------------------------------


async def test_every_administration_action_is_audited(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    user = await create_user(idaas, email="aud@alpha.example.com", name="Aud")
    ok(await c.patch(f"{API}/users/{user['id']}", json={"name": "Audrey"}, headers=h))
    ok(await c.post(f"{API}/users/{user['id']}/suspend", headers=h))
    ok(await c.delete(f"{API}/users/{user['id']}", headers=h), 204)
    bulk = ok(
        await c.post(
            f"{API}/users/bulk", json={"items": [{"email": "bulk@alpha.example.com"}]}, headers=h
        )
    )
    group = ok(await c.post(f"{API}/groups", json={"name": "g"}, headers=h), 201)
    ok(
        await c.post(
            f"{API}/groups/{group['id']}/members", json={"user_ids": [bulk[0]["id"]]}, headers=h
        ),
        204,
    )
    ok(await c.delete(f"{API}/groups/{group['id']}/members/{bulk[0]['id']}", headers=h), 204)
    ok(await c.delete(f"{API}/groups/{group['id']}", headers=h), 204)
    role = ok(
        await c.post(
            f"{API}/roles", json={"name": "r", "permissions": ["idaas:user:read"]}, headers=h
        ),
        201,
    )
    ok(
        await c.patch(
            f"{API}/roles/{role['id']}", json={"permissions": ["idaas:group:read"]}, headers=h
        )
    )
    binding = ok(
        await c.post(
            f"{API}/role-bindings", json={"role": "r", "user_id": bulk[0]["id"]}, headers=h
        ),
        201,
    )
    ok(await c.delete(f"{API}/role-bindings/{binding['id']}", headers=h), 204)
    ok(await c.delete(f"{API}/roles/{role['id']}", headers=h), 204)
    key = ok(
        await c.post(
            f"{API}/api-keys", json={"name": "k", "permissions": ["idaas:user:read"]}, headers=h
        ),
        201,
    )
    ok(await c.delete(f"{API}/api-keys/{key['id']}", headers=h), 204)
    child = ok(
        await c.post(f"{API}/orgs", json={"name": "Kid", "slug": f"kid-org-{idaas.n}"}, headers=h),
        201,
    )
    ok(await c.patch(f"{API}/orgs/{child['id']}", json={"name": "Kid Org"}, headers=h))

    events = await audit(idaas)
    expected = [
        ("user.created", user["id"]),
        ("user.updated", user["id"]),  # patch, suspend and delete are all updates
        ("user.created", bulk[0]["id"]),
        ("group.created", group["id"]),
        ("group.members.added", group["id"]),
        ("group.members.removed", group["id"]),
        ("group.deleted", group["id"]),
        ("role.created", role["id"]),
        ("role.updated", role["id"]),
        ("role.granted", bulk[0]["id"]),
        ("role.revoked", bulk[0]["id"]),
        ("role.deleted", role["id"]),
        ("apikey.created", key["id"]),
        ("apikey.revoked", key["id"]),
        ("org.created", child["id"]),
        ("org.updated", child["id"]),
    ]
    seen = {(e["type"], e["target_id"]) for e in events}
    assert [x for x in expected if x not in seen] == []
    updates = [e for e in events if e["type"] == "user.updated" and e["target_id"] == user["id"]]
    assert len(updates) == 3
    admin_events = [e for e in events if e["type"] != "auth.login.succeeded"]
    for event in admin_events:
        if event["type"] == "org.bootstrapped":
            continue
        assert event["actor_id"] == idaas.a.owner_id, event
        assert event["actor_type"] == "user"
        assert event["result"] == "success"
        assert event["ip"] == idaas.ip
        assert event["user_agent"]
    # newest first
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)


async def test_audit_filters_and_cursor(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    await create_user(
        idaas, email="ann@alpha.example.com", password="anns-passphrase-1", roles=["admin"]
    )
    ann = (await login_as(idaas, "ann@alpha.example.com", "anns-passphrase-1"))["access_token"]
    ann_id = ok(await c.get(f"{API}/me", headers=bearer(ann)))["user"]["id"]
    mark = ok(await c.post(f"{API}/groups", json={"name": "by-ann"}, headers=bearer(ann)), 201)
    for n in range(3):
        await create_user(idaas, email=f"u{n}@alpha.example.com", headers=bearer(ann))
    assert (await idaas.login("ann@alpha.example.com", "wrong-passphrase")).status_code == 401
    ok(await c.post(f"{API}/groups", json={"name": "by-owner"}, headers=h), 201)

    everything = await audit(idaas)
    assert len(everything) == 9  # bootstrap, 4 users, 2 groups, 2 logins
    by_type = await audit(idaas, type="user.*")
    assert by_type
    assert {e["type"] for e in by_type} == {"user.created"}
    assert len(by_type) == 4  # ann and the three she made
    assert await audit(idaas, type="user.") == []  # without '*' a type is exact
    exact = await audit(idaas, type="group.created")
    assert [e["target_id"] for e in exact][-1] == mark["id"]
    by_actor = await audit(idaas, actor_id=ann_id)
    assert by_actor
    assert {e["actor_id"] for e in by_actor} == {ann_id}
    assert {e["type"] for e in by_actor} == {
        "auth.login.succeeded",
        "auth.login.failed",
        "group.created",
        "user.created",
    }
    failures = await audit(idaas, result="failure")
    assert [(e["type"], e["actor_id"]) for e in failures] == [("auth.login.failed", ann_id)]
    by_target = await audit(idaas, target_id=mark["id"])
    assert [e["type"] for e in by_target] == ["group.created"]

    # a time range: from the group Ann made to (not including) the owner's group
    group_events = {e["target_id"]: e for e in exact}
    since = next(e for e in everything if e["target_id"] == mark["id"])["created_at"]
    until = next(e for e in exact if e["target_id"] != mark["id"])["created_at"]
    window = await audit(idaas, since=since, until=until)
    assert [e["type"] for e in window] == ["auth.login.failed"] + ["user.created"] * 3 + [
        "group.created"
    ]
    assert window[-1]["target_id"] == mark["id"]
    assert len(group_events) == 2
    assert await audit(idaas, since=until, type="group.*") == [exact[0]]
    problem(await c.get(f"{API}/audit-events", params={"since": "yesterday"}, headers=h), 422)

    # the cursor walks newest to oldest with nothing lost or repeated
    walked = await all_pages(c, f"{API}/audit-events", h, limit=3)
    assert [e["id"] for e in walked] == [e["id"] for e in everything]
    walked_filtered = await all_pages(c, f"{API}/audit-events", h, limit=2, type="user.*")
    assert walked_filtered == by_type
    problem(
        await c.get(f"{API}/audit-events", params={"cursor": "%%%not-a-cursor"}, headers=h), 400
    )

    # only reviewers read it
    await create_user(idaas, email="mia@alpha.example.com", password="mias-passphrase-1")
    mia = (await login_as(idaas, "mia@alpha.example.com", "mias-passphrase-1"))["access_token"]
    problem(await c.get(f"{API}/audit-events", headers=bearer(mia)), 403)


async def test_a_garbage_cursor_is_refused(idaas: Env) -> None:
    for path in (f"{API}/audit-events", f"{API}/users"):
        for cursor in ("@@@", "!!", "....", "YWJj"):  # "YWJj" is "abc": not an id of ours
            response = await idaas.client.get(
                path, params={"cursor": cursor}, headers=idaas.a.headers
            )
            problem(response, 400)


async def test_audit_log_cannot_be_written_through_the_api(idaas: Env) -> None:
    c, h = idaas.client, idaas.a.headers
    before = await audit(idaas)
    assert before
    some_id = before[0]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await c.request(method, f"{API}/audit-events", json={"type": "x"}, headers=h)
        assert response.status_code == 405, (method, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        single = await c.request(method, f"{API}/audit-events/{some_id}", json={}, headers=h)
        assert single.status_code in (404, 405), (method, single.text)
    async with idaas.runtime.db("idaas").read() as session:
        count = len(
            (
                await session.scalars(
                    select(AuditEvent.id).where(AuditEvent.org_id == idaas.a.org_id)
                )
            ).all()
        )
    assert count == len(before)
    assert await audit(idaas) == before


async def test_role_binding_rows_record_who_granted(idaas: Env) -> None:
    user = await create_user(idaas, email="rb@alpha.example.com", roles=["viewer"])
    async with idaas.runtime.db("idaas").read() as session:
        rows = (
            await session.scalars(select(RoleBinding).where(RoleBinding.subject_id == user["id"]))
        ).all()
    assert [r.created_by for r in rows] == [idaas.a.owner_id]
