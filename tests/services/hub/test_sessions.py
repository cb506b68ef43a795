"""Sessions (refresh, revocation, expiry), org isolation through the APIs, and the paths
the Hub must leave alone."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from nexus.services.hub.models import HubSession
from nexus.services.idaas.bootstrap import create_org_with_owner
from tests.services.hub.conftest import PASSWORD, HubEnv


async def _row(hub: HubEnv) -> HubSession:
    async with hub.runtime.db("hub").read() as session:
        return (await session.scalars(select(HubSession))).one()


async def _expire_access(hub: HubEnv) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with hub.runtime.db("hub").transaction() as session:
        await session.execute(update(HubSession).values(access_expires_at=past))


async def test_an_expired_access_token_is_refreshed_server_side(hub: HubEnv) -> None:
    await hub.login()
    before = await _row(hub)
    await _expire_access(hub)
    page = await hub.client.get("/admin/users")
    assert page.status_code == 200
    after = await _row(hub)
    assert after.access_sealed != before.access_sealed
    assert after.refresh_sealed != before.refresh_sealed  # rotated
    assert after.access_expires_at > dt.datetime.now(dt.UTC)
    assert "eyJ" not in before.access_sealed  # sealed, not stored as is


async def test_a_session_revoked_elsewhere_sends_the_browser_to_login(hub: HubEnv) -> None:
    await hub.login()
    async with hub.browser() as other:
        await hub.login(other)
        token = await hub.csrf("/me", other)
        sessions = (await other.get("/me")).text
        first_id = sessions.split('action="/me/sessions/')[1].split("/")[0]
        revoked = await other.post(f"/me/sessions/{first_id}/revoke", data={"csrf": token})
        assert revoked.status_code == 303
    await _expire_access(hub)  # the next call needs the (revoked) refresh token
    page = await hub.client.get("/admin/users")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=%2Fadmin%2Fusers")
    assert "reason=expired" in page.headers["location"]
    async with hub.runtime.db("hub").read() as session:
        assert len((await session.scalars(select(HubSession))).all()) == 1  # the other one


async def test_htmx_requests_without_a_session_get_hx_redirect(hub: HubEnv) -> None:
    response = await hub.client.get(
        "/messages/rows",
        headers={"HX-Request": "true", "HX-Current-URL": "http://hub.test/messages"},
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=%2Fmessages"


async def test_another_orgs_message_stays_invisible(hub: HubEnv) -> None:
    await create_org_with_owner(
        hub.runtime.db("idaas"), org_name="Other", email="boss@other.example.com", password=PASSWORD
    )
    await hub.login()
    token = await hub.csrf("/messages/new")
    for _ in range(100):  # sandbox providers of the demo org
        sent = await hub.client.post(
            "/messages/new",
            data={"csrf": token, "channel": "sms", "to": "+14155550199", "body": "hi", "key": "x"},
        )
        if sent.status_code == 303:
            break
    url = sent.headers["location"].split("?")[0]
    async with hub.browser() as other:
        await hub.login(other, email="boss@other.example.com")
        page = await other.get(url)
        assert page.status_code == 404
        assert "+14155550199" not in page.text
        log = await other.get("/messages")
        assert "+14155550199" not in log.text


async def test_platform_paths_are_untouched_and_assets_are_local(hub: HubEnv) -> None:
    assert (await hub.client.get("/health")).json()["status"] == "ok"
    assert (await hub.client.get("/docs")).status_code == 200
    assert (await hub.client.get("/.well-known/jwks.json")).status_code == 200
    assert (await hub.client.get("/.well-known/openid-configuration")).status_code == 200
    schema = (await hub.client.get("/openapi.json")).json()
    hub_paths = ("/login", "/logout", "/messages", "/admin", "/me", "/static", "/search")
    assert not [p for p in schema["paths"] if p.startswith(hub_paths) or p == "/"]
    htmx = await hub.client.get("/static/hub/htmx.min.js")
    assert htmx.status_code == 200
    assert htmx.headers["content-type"].startswith("text/javascript")
    css = await hub.client.get("/static/hub/hub.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await hub.client.get("/static/hub/..%2Fmodels.py")).status_code == 404
    assert (await hub.client.get("/static/hub/models.py")).status_code == 404
    login = await hub.client.get("/login")
    assert "http://" not in login.text.split("<body")[0]  # no CDN in the head
