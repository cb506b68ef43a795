"""Login, the MFA step, logout, CSRF and the session cookie, through HTTP."""

from __future__ import annotations

import time

import pyotp

from tests.services.hub.conftest import PASSWORD, HubEnv, csrf_of


async def test_login_sets_an_opaque_httponly_cookie_and_shows_home(hub: HubEnv) -> None:
    response = await hub.login()
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("nexus_hub="))
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "eyJ" not in cookie  # no token in the browser
    home = await hub.client.get("/")
    assert home.status_code == 200
    assert "Welcome, Olivia" in home.text
    assert "content-security-policy" in home.headers


async def test_wrong_password_says_so_plainly(hub: HubEnv) -> None:
    response = await hub.login(password="wrong-password-here")
    assert response.status_code == 200  # the form again, with the error (no console noise)
    assert "The e-mail or password is not right." in response.text
    unknown = await hub.login(email="nobody@demo.example.com")
    assert "The e-mail or password is not right." in unknown.text  # no account enumeration


async def test_pages_need_a_session(hub: HubEnv) -> None:
    response = await hub.client.get("/messages?status=failed")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmessages%3Fstatus%3Dfailed"


async def test_forms_without_csrf_are_refused_and_change_nothing(hub: HubEnv) -> None:
    page = await hub.client.get("/login")
    refused = await hub.client.post(
        "/login", data={"email": "owner@demo.example.com", "password": PASSWORD, "csrf": "x"}
    )
    assert "The login form expired" in refused.text
    assert "nexus_hub=" not in refused.headers.get("set-cookie", "")
    assert csrf_of(page.text)
    await hub.login()
    logout = await hub.client.post("/logout", data={"csrf": "forged"})
    assert logout.status_code == 403
    assert (await hub.client.get("/")).status_code == 200  # still signed in


async def test_logout_ends_the_session(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf()
    response = await hub.client.post("/logout", data={"csrf": token})
    assert response.status_code == 303
    assert (await hub.client.get("/")).status_code == 303


async def test_next_cannot_leave_the_site(hub: HubEnv) -> None:
    page = await hub.client.get("/login")
    response = await hub.client.post(
        "/login",
        data={
            "email": "owner@demo.example.com",
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "//evil.example/",
        },
    )
    assert response.headers["location"] == "/"


async def test_totp_enrollment_then_login_with_a_code(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/me")
    started = await hub.client.post("/me/totp", data={"csrf": token})
    assert started.status_code == 200
    assert "<svg" in started.text
    secret = started.text.split('data-secret="')[1].split('"')[0]
    totp = pyotp.TOTP(secret)
    confirmed = await hub.client.post("/me/totp/confirm", data={"csrf": token, "code": totp.now()})
    assert confirmed.status_code == 200, confirmed.text
    assert "recovery codes" in confirmed.text.lower()

    async with hub.browser() as other:
        first = await hub.login(other)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/login/mfa")
        page = await other.get(first.headers["location"])
        wrong = await other.post(
            "/login/mfa", data={"csrf": csrf_of(page.text), "code": "000000", "next": "/"}
        )
        assert "That code is not right." in wrong.text
        ok = await other.post(
            "/login/mfa",
            # the enrollment used this step's code; a code is good once (next step's is ok)
            data={"csrf": csrf_of(wrong.text), "code": totp.at(time.time() + 30), "next": "/"},
        )
        assert ok.status_code == 303, ok.text
        assert (await other.get("/")).status_code == 200
