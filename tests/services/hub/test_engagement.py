"""Engagement pages: contacts and CSV import with progress and refused rows, templates
with a preview, campaigns followed to completion with per-variant results."""

from __future__ import annotations

import asyncio
import re

from tests.services.hub.conftest import HubEnv

CSV = (
    "name,phone,email,tags\n"
    "Ada,+14155550101,ada@example.com,customers\n"
    "Bob,+14155550102,,customers\n"
    "Eve,not-a-number,,customers\n"
)


async def _until(hub: HubEnv, url: str, text: str) -> str:
    for _ in range(300):
        page = await hub.client.get(url, headers={"HX-Request": "true"})
        if text in page.text:
            return page.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared at {url}: {page.text[:2000]}")


async def test_contacts_import_templates_and_a_campaign(hub: HubEnv) -> None:
    await hub.login()
    token = await hub.csrf("/contacts")
    added = await hub.client.post(
        "/contacts",
        data={"csrf": token, "name": "Cy", "phone": "+14155550103", "tags": "customers"},
    )
    assert added.status_code == 303, added.text
    bad = await hub.client.post("/contacts", data={"csrf": token, "name": "Nobody"})
    assert "alert-error" in bad.text  # no address: said plainly, nothing stored

    imported = await hub.client.post(
        "/contacts/import",
        data={"csrf": token, "tags": "fair"},
        files={"file": ("people.csv", CSV.encode(), "text/csv")},
    )
    assert imported.status_code == 303, imported.text
    progress = imported.headers["location"]
    done = await _until(hub, progress, 'class="badge completed"')
    assert 'id="import-progress" max="100" value="100.0"' in done
    errors = await hub.client.get(progress + "/errors.csv")
    assert errors.status_code == 200
    assert "not-a-number" in errors.text
    listed = await hub.client.get("/contacts", params={"tag": "fair"})
    assert "Ada" in listed.text
    assert "Bob" in listed.text
    assert "Eve" not in listed.text

    created = await hub.client.post(
        "/templates",
        data={"csrf": token, "name": "hello", "channel": "sms", "body": "Hi {{ contact.name }}!"},
    )
    assert created.status_code == 303, created.text
    templates = await hub.client.get("/templates")
    template_id = re.search(r'href="/templates/([0-9a-f-]{36})"', templates.text).group(1)
    page = await hub.client.get(f"/templates/{template_id}")
    preview = page.text.split('id="template-preview"')[1]
    assert "GSM-7 · 1 segment" in preview

    campaign = await hub.client.post(
        "/campaigns",
        data={
            "csrf": token,
            "name": "Spring",
            "channel": "sms",
            "tags": "customers",
            "template_a": template_id,
            "template_b": template_id,
            "percent_a": "50",
        },
    )
    assert campaign.status_code == 303, campaign.text
    url = campaign.headers["location"].split("?")[0]
    started = await hub.client.post(f"{url}/start", data={"csrf": token})
    assert started.status_code == 303
    finished = await _until(hub, url, 'class="badge completed"')
    assert "Results by variant" in finished
    assert re.search(r"<td>B( |<)", finished)
