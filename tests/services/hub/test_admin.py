"""Administration pages: users, groups, roles, API keys, OAuth clients, audit, org."""

from __future__ import annotations

from tests.services.hub.conftest import HubEnv


async def test_every_admin_page_renders(hub: HubEnv) -> None:
    await hub.login()
    for path in (
        "/",
        "/admin/users",
        "/admin/groups",
        "/admin/roles",
        "/admin/api-keys",
        "/admin/oauth-clients",
        "/admin/audit",
        "/admin/org",
        "/me",
        "/messages",
        "/messages/new",
        "/providers",
        "/analytics",
        "/contacts",
        "/templates",
        "/campaigns",
        "/search?q=owner",
    ):
        page = await hub.client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert 'aria-current="page"' in page.text or path in {"/search?q=owner"}, path


async def test_create_user_key_and_find_them_in_the_audit_log(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/admin/users")
    created = await hub.client.post(
        "/admin/users",
        data={"csrf": token, "email": "ann@demo.example.com", "name": "Ann", "roles": "member"},
    )
    assert created.status_code == 303, created.text
    users = await hub.client.get(created.headers["location"])
    assert "ann@demo.example.com" in users.text
    assert "The user is created" in users.text
    duplicate = await hub.client.post(
        "/admin/users", data={"csrf": token, "email": "ann@demo.example.com", "roles": "member"}
    )
    assert "alert-error" in duplicate.text
    invalid = await hub.client.post("/admin/users", data={"csrf": token, "email": "nope"})
    assert 'aria-invalid="true"' in invalid.text

    key = await hub.client.post(
        "/admin/api-keys",
        data={"csrf": token, "name": "Orders", "permissions": ["vas:message:send"]},
    )
    assert key.status_code == 200
    assert "shown only once" in key.text
    secret = key.text.split('id="new-key">')[1].split("<")[0]
    assert len(secret) > 20
    listed = await hub.client.get("/admin/api-keys")
    assert secret not in listed.text  # never again

    audit = await hub.client.get("/admin/audit", params={"type": "user"})
    assert "user.created" in audit.text
    keys = await hub.client.get("/admin/audit", params={"type": "apikey"})
    assert "apikey.created" in keys.text


async def test_a_member_sees_no_admin_and_the_api_refuses(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/admin/users")
    await hub.client.post(
        "/admin/users",
        data={
            "csrf": token,
            "email": "mo@demo.example.com",
            "password": "a-long-enough-password-1",
            "roles": "member",
        },
    )
    async with hub.browser() as other:
        await hub.login(other, email="mo@demo.example.com", password="a-long-enough-password-1")
        home = await other.get("/")  # members read users, but keys and audit are admins'
        assert "/admin/users" in home.text
        assert "/admin/api-keys" not in home.text
        assert "/admin/audit" not in home.text
        users = await other.get("/admin/users")
        assert "Add a user" not in users.text
        page = await other.get("/admin/api-keys")
        assert page.status_code == 403
        assert "You do not have permission" in page.text
        token = await hub.csrf("/", other)
        refused = await other.post(
            "/admin/api-keys",
            data={"csrf": token, "name": "sneaky", "permissions": ["vas:message:send"]},
        )
        assert refused.status_code == 403
