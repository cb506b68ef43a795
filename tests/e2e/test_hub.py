"""The Hub in a real browser: login (and a failed one), TOTP enrollment and login with a
code, an SMS followed to `delivered` without reloading, a provider going unhealthy, a
provider account added and tested from the Hub, the message log fitting a desktop and a
phone, a user and an API key created and found in the audit log; no console errors."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
from playwright.async_api import expect

from nexus.services.hub.browser import PHONE
from nexus.testing.fakes import fake_provider
from tests.e2e.conftest import Live, log_in

PAGES = (
    "/",
    "/messages/new",
    "/messages",
    "/providers",
    "/providers/new",
    "/providers/new?type=twilio",
    "/analytics",
    "/contacts",
    "/templates",
    "/campaigns",
    "/admin/users",
    "/admin/groups",
    "/admin/roles",
    "/admin/api-keys",
    "/admin/oauth-clients",
    "/admin/audit",
    "/admin/org",
    "/me",
    "/search?q=owner",
)


async def test_failed_login_then_login_and_every_page(page: Any, live: Live) -> None:
    await log_in(page, password="not-the-password")
    await expect(page.locator(".alert-error")).to_have_text("The e-mail or password is not right.")
    await expect(page.locator("#password")).to_be_focused()  # the e-mail is kept

    await log_in(page)
    await expect(page.locator("h1")).to_contain_text("Welcome, Olivia")
    await page.keyboard.press("/")  # the search shortcut
    await expect(page.locator("#q")).to_be_focused()
    for path in PAGES:
        response = await page.goto(path)
        assert response.status == 200, path
        await expect(page.locator("main h1")).to_be_visible()
    # keyboard only: the skip link is the first stop and leads to the content
    await page.goto("/")
    await page.keyboard.press("Tab")
    await expect(page.locator("a.skip")).to_be_focused()


async def test_totp_enrollment_and_login_with_a_code(page: Any, live: Live) -> None:
    await log_in(page)
    await page.goto("/me")
    await page.get_by_role("button", name="Set up two-step verification").click()
    await expect(page.locator(".qr svg")).to_be_visible()
    totp = pyotp.TOTP((await page.locator("#totp-secret").inner_text()).strip())
    await page.fill("#totp-code", totp.now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator("h1")).to_have_text("Two-step verification is on")
    await expect(page.locator("#recovery-codes div")).to_have_count(10)

    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator(".alert-ok")).to_have_text("You are logged out.")
    await log_in(page)
    await expect(page.locator("h1")).to_have_text("Two-step verification")
    await page.fill("#code", "000000")
    await page.keyboard.press("Enter")
    await expect(page.locator(".alert-error")).to_contain_text("That code is not right")
    await page.fill("#code", totp.at(time.time() + 30))  # this step's code was used already
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_contain_text("Welcome")


async def test_sms_reaches_delivered_live_and_a_provider_goes_unhealthy(
    page: Any, live: Live
) -> None:
    async with fake_provider("twilio", callback_delay_ms=1500) as twilio, live.api() as api:
        providers = (await api.get("/api/v1/providers")).json()
        sandbox_sms = next(p for p in providers if p["channel"] == "sms")
        await api.patch(f"/api/v1/providers/{sandbox_sms['id']}", json={"enabled": False})
        added = await api.post(
            "/api/v1/providers",
            json={
                "type": "twilio",
                "channel": "sms",
                "name": "Twilio",
                "base_url": twilio.base_url,
                "credentials": twilio.credentials,
                "sender": "+15005550006",
                "cost_per_unit": "0.0079",
            },
        )
        assert added.status_code == 201, added.text

        await log_in(page)
        await page.goto("/messages/new")
        await page.fill("#to", "+14155550123")
        await page.fill("#body", "Hello from the Hub " + "x" * 150)
        await expect(page.locator("#preview")).to_contain_text("GSM-7")
        await expect(page.locator("#preview")).to_contain_text("Segments2")
        await expect(page.locator("#preview")).to_contain_text("0.0158 USD")
        await page.get_by_role("button", name="Send message").click()
        await expect(page).to_have_url(re.compile(r"/messages/[0-9a-f-]{36}"))
        await page.evaluate("window.stayed = true")  # gone if the page reloads
        status = page.locator("#message-status")
        await expect(status).to_have_text("sent")  # the callback is 1.5 s away
        await expect(status).to_have_text("delivered", timeout=15_000)
        assert await page.evaluate("window.stayed === true")
        await expect(page.locator(".timeline")).to_contain_text("Routing decision")

        await page.goto("/providers")
        row = page.locator("tr[data-provider='Twilio']")
        await expect(row.locator(".health-word")).to_have_text("Healthy")
        await twilio.set_outage("error")
        await page.evaluate("window.stayed = true")
        await expect(row.locator(".health-word")).to_have_text("Unhealthy", timeout=15_000)
        assert await page.evaluate("window.stayed === true")
        await twilio.set_outage(None)


async def test_create_a_user_and_an_api_key_then_find_them_in_the_audit_log(
    page: Any, live: Live
) -> None:
    await log_in(page)
    await page.goto("/admin/users")
    await page.locator("#add-user summary").click()
    await page.fill("#u-email", "ann@demo.example.com")
    await page.fill("#u-name", "Ann Agent")
    await page.get_by_role("button", name="Add user").click()
    await expect(page.locator("#flash")).to_contain_text("The user is created")
    await expect(page.locator("main table")).to_contain_text("ann@demo.example.com")

    await page.goto("/admin/api-keys")
    await page.fill("#k-name", "Order system")
    await page.get_by_label("vas:message:send").check()
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator(".alert-warn")).to_contain_text("shown only once")
    key = (await page.locator("#new-key").inner_text()).strip()
    assert len(key) > 20
    await page.goto("/admin/api-keys")
    await expect(page.locator("main")).not_to_contain_text(key)

    await page.goto("/admin/audit")
    await page.fill("#a-type", "user.created")
    await page.keyboard.press("Enter")
    await expect(page.locator("main table")).to_contain_text("user.created")
    await page.fill("#a-type", "apikey")
    await page.keyboard.press("Enter")
    await expect(page.locator("main table")).to_contain_text("apikey.created")


async def test_add_a_provider_in_the_hub_and_test_it(page: Any, live: Live) -> None:
    async with fake_provider("twilio") as twilio:
        await log_in(page)
        await page.goto("/providers")
        await page.get_by_role("link", name="Add a provider").click()
        await page.get_by_role("link", name="Twilio").click()
        await page.fill("#p-name", "Twilio fake")
        await page.select_option("#p-channel", "sms")
        await page.fill("#p-cred-account_sid", str(twilio.credentials["account_sid"]))
        await page.fill("#p-cred-auth_token", str(twilio.credentials["auth_token"]))
        await page.fill("#p-priority", "10")
        await page.locator("details.more summary").click()
        await page.fill("#p-base_url", "ftp://127.0.0.1")  # the API's reason, by the field
        await page.get_by_role("button", name="Add provider").click()
        await expect(page.locator("#p-base_url-error")).to_contain_text("http(s)://")
        await expect(page.locator("#p-name")).to_have_value("Twilio fake")  # kept
        await expect(page.locator("#p-cred-auth_token")).to_have_value("")  # secrets are not
        await page.fill("#p-cred-auth_token", str(twilio.credentials["auth_token"]))
        await page.fill("#p-base_url", twilio.base_url)
        await page.get_by_role("button", name="Add provider").click()
        await expect(page.locator("#flash")).to_contain_text("The provider account is added")
        await expect(page.locator("#p-cred-auth_token")).to_have_value("")
        await page.get_by_role("button", name="Test now").click()
        await expect(page.locator("#test-result")).to_contain_text("Healthy")
        await page.get_by_role("link", name="Back to providers").click()
        row = page.locator("tr[data-provider='Twilio fake']")
        await expect(row.locator(".health-word")).to_have_text("Healthy")


async def test_the_message_log_fits_a_desktop_and_a_phone(page: Any, live: Live) -> None:
    async with live.api() as api:
        for n, (channel, to) in enumerate(
            (
                ("sms", "+14155550123"),
                ("email", "a-rather-long-recipient-address-for-the-log@example-company.example"),
            )
        ):
            sent = await api.post(
                "/api/v1/messages/send",
                json={"channel": channel, "to": to, "subject": "Hi", "body": f"{n} " + "w" * 600},
            )
            assert sent.status_code in {200, 201, 202}, sent.text
    await log_in(page)
    await page.goto("/messages")
    table = page.locator("main .table-wrap")
    await expect(table.locator("tbody tr")).to_have_count(2)
    fits = "el => el.scrollWidth <= el.clientWidth"
    assert await table.evaluate(fits), "the log scrolls sideways at 1280 px"
    body = table.locator("tbody tr td:nth-child(4)").first
    assert (await body.get_attribute("title") or "").startswith("1 www")
    await expect(table.locator("thead th").last).to_be_in_viewport()
    await page.set_viewport_size(PHONE["viewport"])
    await page.reload()
    assert await table.evaluate(fits), "the log scrolls sideways on a phone"
