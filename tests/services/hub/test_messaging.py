"""Messaging pages: compose with preview, the log with filters, detail, providers, analytics."""

from __future__ import annotations

import asyncio
import re

from tests.services.hub.conftest import HubEnv


async def _sandbox_ready(hub: HubEnv) -> None:
    for _ in range(200):  # the sandbox providers come with the org.created event
        page = await hub.client.get("/providers")
        if page.text.count("data-provider=") == 5:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no sandbox providers")


async def test_compose_preview_send_and_follow(hub: HubEnv) -> None:
    await hub.login()
    await _sandbox_ready(hub)
    token = await hub.csrf("/messages/new")
    preview = await hub.client.post(
        "/messages/preview",
        data={"channel": "sms", "to": "+14155550123", "body": "x" * 161},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert preview.status_code == 200
    assert "GSM-7" in preview.text
    assert re.search(r"Segments</span><b>2</b>", preview.text)

    sent = await hub.client.post(
        "/messages/new",
        data={"csrf": token, "channel": "sms", "to": "+14155550123", "body": "hello", "key": "k1"},
    )
    assert sent.status_code == 303, sent.text
    url = sent.headers["location"].split("?")[0]
    again = await hub.client.post(  # a double submit sends once
        "/messages/new",
        data={"csrf": token, "channel": "sms", "to": "+14155550123", "body": "hello", "key": "k1"},
    )
    assert again.headers["location"].split("?")[0] == url
    for _ in range(200):
        live = await hub.client.get(url, headers={"HX-Request": "true"})
        if 'id="message-status">delivered' in live.text:
            break
        await asyncio.sleep(0.05)
    assert 'id="message-status">delivered' in live.text
    assert "hx-trigger" not in live.text.split("\n")[0]  # polling stops when final
    page = await hub.client.get(url)
    assert "Routing decision" in page.text

    log = await hub.client.get("/messages", params={"status": "delivered", "channel": "sms"})
    assert log.status_code == 200
    assert "+14155550123" in log.text
    empty = await hub.client.get("/messages", params={"status": "failed"})
    assert "No messages match" in empty.text
    analytics = await hub.client.get("/analytics")
    assert 'hx-get="/analytics/charts?range=7d"' in analytics.text
    charts = await hub.client.get("/analytics/charts?range=24h", headers={"HX-Request": "true"})
    assert "<svg" in charts.text
    assert "Delivery rate by provider" in charts.text


async def test_compose_errors_are_plain_and_nothing_is_sent(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/messages/new")
    bad = await hub.client.post(
        "/messages/new",
        data={"csrf": token, "channel": "sms", "to": "not a number", "body": "hi", "key": "k2"},
    )
    assert bad.status_code == 200  # the form again, with the error next to the field
    assert 'aria-invalid="true"' in bad.text
    assert "not a number" in bad.text  # the form keeps what was typed
    log = await hub.client.get("/messages")
    assert "No messages yet" in log.text


async def test_another_orgs_message_is_not_found(hub: HubEnv) -> None:
    await hub.login()
    page = await hub.client.get("/messages/01930000-0000-7000-8000-000000000000")
    assert page.status_code == 404
    assert "No message" in page.text


TWILIO = {
    "type": "twilio",
    "name": "Twilio US",
    "channel": "sms",
    "cred_account_sid": "AC0123456789abcdef0123456789abcdef",
    "cred_auth_token": "s3cret-auth-token-never-shown",
    "base_url": "http://127.0.0.1:9",  # refused at once: the probe says unhealthy, no wait
    "priority": "50",
    "cost_per_unit": "0.0079",
    "currency": "USD",
    "countries": "us, ca",
    "enabled": "on",
}


async def test_a_provider_is_added_tested_edited_disabled_and_deleted(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/providers")
    kinds = await hub.client.get("/providers/new")
    assert 'href="/providers/new?type=twilio"' in kinds.text
    form = await hub.client.get("/providers/new", params={"type": "twilio"})
    assert 'name="cred_account_sid" type="text"' in form.text
    assert 'name="cred_auth_token" type="password"' in form.text

    refused = await hub.client.post(  # the API refuses a negative priority
        "/providers/new", data={**TWILIO, "csrf": token, "priority": "-5"}
    )
    assert refused.status_code == 200
    assert 'id="p-priority" name="priority" type="number" value="-5"' in refused.text
    assert 'aria-invalid="true" aria-describedby="p-priority-error"' in refused.text
    assert "AC0123456789abcdef0123456789abcdef" in refused.text  # identifiers are kept
    assert TWILIO["cred_auth_token"] not in refused.text  # secrets are not
    missing = await hub.client.post(
        "/providers/new", data={**TWILIO, "csrf": token, "cred_auth_token": ""}
    )
    assert "twilio needs the credentials auth_token" in missing.text
    bad_country = await hub.client.post(
        "/providers/new", data={**TWILIO, "csrf": token, "countries": "USA"}
    )
    assert "two-letter codes" in bad_country.text
    no_csrf = await hub.client.post("/providers/new", data=TWILIO)
    assert no_csrf.status_code == 403
    assert "Twilio US" not in (await hub.client.get("/providers")).text  # nothing was added

    created = await hub.client.post("/providers/new", data={**TWILIO, "csrf": token})
    assert created.status_code == 303, created.text
    url = created.headers["location"].split("?")[0]
    page = await hub.client.get(created.headers["location"])
    assert "The provider account is added" in page.text
    assert 'value="US, CA"' in page.text
    assert TWILIO["cred_auth_token"] not in page.text
    assert "/api/v1/sms/webhook/twilio" in page.text  # where to point the provider
    listed = await hub.client.get("/providers")
    assert f'href="{url}"' in listed.text

    tested = await hub.client.get(url, params={"test": "1"})
    assert 'id="test-result"' in tested.text
    assert "Unhealthy" in tested.text

    saved = await hub.client.post(
        url, data={"csrf": token, "name": "Twilio North America", "priority": "5", "countries": ""}
    )
    assert saved.status_code == 303, saved.text
    page = await hub.client.get(url)
    assert "Twilio North America" in page.text
    assert 'name="priority" type="number" value="5"' in page.text
    bad = await hub.client.post(
        url,
        data={"csrf": token, "name": "X", "cred_account_sid": "AC1"},  # half a set
    )
    assert "twilio needs the credentials auth_token" in bad.text
    assert 'value="X"' in bad.text

    disabled = await hub.client.post(f"{url}/disable", data={"csrf": token})
    assert disabled.status_code == 303
    page = await hub.client.get(url)
    assert "badge bad" in page.text
    assert f'action="{url}/enable"' in page.text
    deleted = await hub.client.post(f"{url}/delete", data={"csrf": token})
    assert deleted.headers["location"] == "/providers?done=deleted"
    assert "Twilio North America" not in (await hub.client.get("/providers")).text
    gone = await hub.client.get(url)
    assert gone.status_code == 404


async def test_provider_pages_are_read_only_without_manage(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/admin/users")
    await hub.client.post(
        "/admin/users",
        data={
            "csrf": token,
            "email": "vic@demo.example.com",
            "password": "a-long-enough-password-1",
            "roles": "viewer",
        },
    )
    await _sandbox_ready(hub)
    page = await hub.client.get("/providers")
    provider_url = re.search(r'id="edit-[^"]+" href="(/providers/[^"]+)"', page.text)
    assert provider_url
    async with hub.browser() as other:
        await hub.login(other, email="vic@demo.example.com", password="a-long-enough-password-1")
        listed = await other.get("/providers")
        assert listed.status_code == 200
        assert "/providers/new" not in listed.text
        account = await other.get(provider_url.group(1))
        assert account.status_code == 200
        assert '<fieldset class="plain" disabled>' in account.text
        assert "/disable" not in account.text
        assert "/delete" not in account.text
        token = await hub.csrf("/", other)
        refused = await other.post("/providers/new", data={**TWILIO, "csrf": token})
        assert refused.status_code == 403
        assert "vas:provider:manage" in refused.text
