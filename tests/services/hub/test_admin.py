"""Administration pages: users, groups, roles, API keys, OAuth clients, audit, org."""

from __future__ import annotations

import re

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


async def _add_user(hub: HubEnv, email: str, role: str) -> str:
    """Adds a user with a password and one role; their id, from the users page."""
    token = await hub.csrf("/admin/users")
    added = await hub.client.post(
        "/admin/users",
        data={"csrf": token, "email": email, "password": "a-long-enough-password-1", "roles": role},
    )
    assert added.status_code == 303, added.text
    page = await hub.client.get("/admin/users", params={"q": email})
    found = re.search(r'<a href="/admin/users/([^"]+)">' + re.escape(email), page.text)
    assert found, page.text
    return found.group(1)


async def test_group_members_are_added_and_removed(hub: HubEnv) -> None:
    await hub.login()
    ann = await _add_user(hub, "ann@demo.example.com", "member")
    token = await hub.csrf("/admin/groups")
    created = await hub.client.post(
        "/admin/groups", data={"csrf": token, "name": "Support", "description": "Front line"}
    )
    assert created.status_code == 303, created.text
    group = created.headers["location"].split("?")[0]
    page = await hub.client.get(created.headers["location"])
    assert "The group is created" in page.text
    again = await hub.client.post(
        "/admin/groups", data={"csrf": token, "name": "Support", "description": "Second line"}
    )
    assert again.status_code == 200
    assert "A group named &#39;Support&#39; exists." in again.text
    assert 'value="Second line"' in again.text  # what was typed is kept
    assert "No members yet" in page.text
    assert '<option value="ann@demo.example.com">' in page.text  # suggested in the box

    unknown = await hub.client.post(
        f"{group}/members", data={"csrf": token, "email": "nobody@demo.example.com"}
    )
    assert unknown.status_code == 200
    assert "No user has the e-mail nobody@demo.example.com here." in unknown.text
    assert 'value="nobody@demo.example.com"' in unknown.text
    assert 'aria-invalid="true"' in unknown.text
    no_csrf = await hub.client.post(f"{group}/members", data={"email": "ann@demo.example.com"})
    assert no_csrf.status_code == 403
    assert "No members yet" in (await hub.client.get(group)).text  # nothing changed

    added = await hub.client.post(
        f"{group}/members", data={"csrf": token, "email": "ANN@demo.example.com"}
    )
    assert added.status_code == 303, added.text
    page = await hub.client.get(added.headers["location"])
    assert "The user is in the group now" in page.text
    assert f'action="{group}/members/{ann}/remove"' in page.text
    removed = await hub.client.post(f"{group}/members/{ann}/remove", data={"csrf": token})
    assert removed.status_code == 303
    assert "No members yet" in (await hub.client.get(group)).text
    audit = await hub.client.get("/admin/audit", params={"type": "group"})
    assert "group.members.added" in audit.text
    assert "group.members.removed" in audit.text


async def test_a_users_roles_are_granted_and_revoked(hub: HubEnv) -> None:
    await hub.login()
    ann = await _add_user(hub, "ann@demo.example.com", "member")
    token = await hub.csrf("/admin/users")
    page = await hub.client.get(f"/admin/users/{ann}")
    assert page.status_code == 200
    assert "<strong>member</strong>" in page.text
    assert '<option value="admin"' in page.text
    assert '<option value="member"' not in page.text  # she has it already

    unknown = await hub.client.post(
        f"/admin/users/{ann}/roles", data={"csrf": token, "role": "ghost"}
    )
    assert unknown.status_code == 200
    assert 'id="roles-error"' in unknown.text
    granted = await hub.client.post(
        f"/admin/users/{ann}/roles", data={"csrf": token, "role": "admin"}
    )
    assert granted.status_code == 303, granted.text
    page = await hub.client.get(granted.headers["location"])
    assert "The role is granted" in page.text
    assert "<strong>admin</strong>" in page.text
    member = re.search(
        r'action="(/admin/users/[^"]+/roles/[^"]+/revoke)" data-confirm="Take the role member',
        page.text,
    )
    assert member
    revoked = await hub.client.post(member.group(1), data={"csrf": token})
    assert revoked.status_code == 303
    page = await hub.client.get(f"/admin/users/{ann}")
    assert "<strong>member</strong>" not in page.text
    assert "<strong>admin</strong>" in page.text


async def test_people_pages_are_read_only_without_manage(hub: HubEnv) -> None:
    await hub.login()
    ann = await _add_user(hub, "ann@demo.example.com", "member")
    await _add_user(hub, "vic@demo.example.com", "viewer")
    token = await hub.csrf("/admin/groups")
    created = await hub.client.post("/admin/groups", data={"csrf": token, "name": "Sales"})
    group = created.headers["location"].split("?")[0]
    await hub.client.post(f"{group}/members", data={"csrf": token, "email": "ann@demo.example.com"})
    async with hub.browser() as other:
        await hub.login(other, email="vic@demo.example.com", password="a-long-enough-password-1")
        page = await other.get(group)
        assert page.status_code == 200
        assert "ann@demo.example.com" in page.text
        assert "Add to group" not in page.text
        assert "/remove" not in page.text
        person = await other.get(f"/admin/users/{ann}")
        assert "<strong>member</strong>" in person.text
        assert "Grant" not in person.text
        assert "/revoke" not in person.text
        token = await hub.csrf("/", other)
        refused = await other.post(
            f"/admin/users/{ann}/roles", data={"csrf": token, "role": "admin"}
        )
        assert refused.status_code == 403
        assert "You do not have permission" in refused.text
        refused = await other.post(f"{group}/members/{ann}/remove", data={"csrf": token})
        assert refused.status_code == 403
    assert "ann@demo.example.com" in (await hub.client.get(group)).text


async def test_org_settings_keep_what_was_typed_when_refused(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/admin/org")
    refused = await hub.client.post(
        "/admin/org", data={"csrf": token, "name": "Demo Renamed", "default_region": "U1"}
    )
    assert refused.status_code == 200
    assert 'aria-invalid="true"' in refused.text
    assert 'value="Demo Renamed"' in refused.text
    assert 'value="U1"' in refused.text
    page = await hub.client.get("/admin/org")
    assert 'value="Demo"' in page.text  # nothing changed
