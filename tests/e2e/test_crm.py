"""The CRM in a real browser, as a rep works (the issue's acceptance): a company, a contact
and a deal made through the forms, the deal dragged to another stage on the board (saved:
still there after a reload, and in the API), the contact texted from the deal, the
sandbox's reply showing up on the timeline without a reload, and the forecast moving; a
move the API refuses puts the card back and says why."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from nexus.kernel.http import create_app
from nexus.services.crm import service as crm_service
from nexus.services.hub import service as hub_service
from nexus.services.hub.live import api_login, free_port, serving
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.vas import service as vas_service
from tests.conftest import RuntimeFactory
from tests.e2e.conftest import Live, log_in
from tests.services.hub.conftest import OWNER, PASSWORD

REP = "rep@demo.example.com"
PHONE = "+14155550123"


@pytest.fixture
async def live(make_runtime: RuntimeFactory, settings) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    """The e2e `live` server with the CRM too, and a rep bound to its own records."""
    runtime = await make_runtime([idaas_service, vas_service, crm_service, hub_service])
    await idaas_service.on_startup[0](runtime)
    await create_org_with_owner(
        runtime.db("idaas"), org_name="Demo", email=OWNER, password=PASSWORD, name="Olivia"
    )
    port = free_port()
    async with serving(create_app(settings, runtime=runtime), port) as url:
        live = Live(url, runtime, await api_login(url, OWNER, PASSWORD))
        async with live.api() as api:
            for name, permissions in (("sales-rep", ["crm:*"]), ("texter", ["vas:message:*"])):
                role = await api.post(
                    "/api/v1/roles", json={"name": name, "permissions": permissions}
                )
                assert role.status_code == 201, role.text
            rep = await api.post(  # texts anyone; the CRM: its own records only
                "/api/v1/users",
                json={"email": REP, "name": "Ray Rep", "password": PASSWORD, "roles": ["texter"]},
            )
            assert rep.status_code == 201, rep.text
            bound = await api.post(
                "/api/v1/role-bindings",
                json={
                    "role": "sales-rep",
                    "user_id": rep.json()["id"],
                    "conditions": ["resource.owner_id == user.id"],
                },
            )
            assert bound.status_code == 201, bound.text
        yield live


async def _sandbox_sms(live: Live) -> str:
    async with live.api() as api:
        for _ in range(200):  # the sandbox providers come with the org.created event
            found = [
                p["id"]
                for p in (await api.get("/api/v1/providers")).json()
                if p["type"] == "sandbox" and p["channel"] == "sms"
            ]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
    raise AssertionError("no sandbox SMS provider")


async def _weighted(page: Any) -> str:
    await page.goto("/crm/forecast")
    return str(await page.locator('.forecast-weighted[data-currency="USD"]').inner_text())


async def test_a_rep_works_a_deal_in_the_browser(page: Any, live: Live) -> None:
    sandbox = await _sandbox_sms(live)
    await log_in(page, REP)
    await page.get_by_role("link", name="Companies").first.click()
    await page.fill("#f-name", "Globex")
    await page.fill("#f-domain", "globex.example")
    await page.get_by_role("button", name="Add company").click()
    await expect(page.locator("main h1")).to_have_text("Globex")

    await page.get_by_role("link", name="New contact").click()
    await page.fill("#f-first_name", "Hank")
    await page.fill("#f-last_name", "Scorpio")
    await page.fill("#f-phone", PHONE)
    await page.get_by_role("button", name="Add contact").click()
    await expect(page.locator("main h1")).to_have_text("Hank Scorpio")

    await page.get_by_role("link", name="New deal").click()
    await page.fill("#f-name", "Doomsday device")
    await page.fill("#f-amount", "10000")
    close = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)
    await page.fill("#f-expected_close", close.isoformat())
    await page.get_by_role("button", name="Add deal").click()
    await expect(page.locator("main h1")).to_have_text("Doomsday device")
    deal_id = page.url.split("/crm/deals/")[1].split("?")[0]
    assert await _weighted(page) == "1,000"  # Lead in: 10 %

    await page.goto("/crm/board")
    stages = await page.locator(".board-col").evaluate_all(
        "cols => cols.map(c => c.getAttribute('data-stage-id'))"
    )
    card = page.locator(f'.deal-card[data-deal-id="{deal_id}"]')
    proposal = page.locator(f'.board-col[data-stage-id="{stages[2]}"]')
    await card.drag_to(proposal)
    await expect(proposal.locator("[data-count]")).to_have_text("1")
    await expect(proposal.locator(f'[data-deal-id="{deal_id}"]')).to_be_visible()
    await page.reload()
    await expect(proposal.locator(f'[data-deal-id="{deal_id}"]')).to_be_visible()
    async with live.api() as api:
        assert (await api.get(f"/api/v1/crm/deals/{deal_id}")).json()["stage_id"] == stages[2]

    await page.goto(f"/crm/deals/{deal_id}")
    await page.fill("#m-body", "Hank, the proposal is in your inbox.")
    await page.get_by_role("button", name="Send", exact=True).click()
    timeline = page.locator("#timeline")
    await expect(timeline.locator(".badge.delivered")).to_be_visible()
    async with live.api() as api:
        reply = await api.post(
            f"/api/v1/providers/{sandbox}/sandbox/inbound",
            json={"from": PHONE, "body": "Looks good, send the contract"},
        )
        assert reply.status_code == 201, reply.text
    await expect(timeline).to_contain_text("Reply received")  # polled, no reload
    await expect(timeline).to_contain_text("Looks good, send the contract")
    assert await _weighted(page) == "5,000"  # Proposal: 50 %


async def test_a_refused_move_puts_the_card_back_with_the_reason(page: Any, live: Live) -> None:
    async with live.api() as api:
        made = await api.post("/api/v1/crm/deals", json={"name": "Gone soon", "amount": "5"})
        assert made.status_code == 201, made.text
    deal = made.json()
    await log_in(page)
    await page.goto("/crm/board")
    first = page.locator(f'.board-col[data-stage-id="{deal["stage_id"]}"]')
    card = first.locator(f'[data-deal-id="{deal["id"]}"]')
    await expect(card).to_be_visible()
    async with live.api() as api:  # someone else deletes it meanwhile
        assert (await api.delete(f"/api/v1/crm/deals/{deal['id']}")).status_code == 204
    await card.drag_to(page.locator(".board-col").nth(2))
    await expect(page.locator("#board-error")).to_have_text("No deal.")  # the API's words
    await expect(first.locator(f'[data-deal-id="{deal["id"]}"]')).to_be_visible()  # back
    await expect(first.locator("[data-count]")).to_have_text("1")
