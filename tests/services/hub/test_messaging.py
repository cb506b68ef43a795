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
