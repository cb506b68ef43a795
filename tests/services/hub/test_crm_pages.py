"""CRM pages over HTTP: every page renders for the owner; a rep bound to its own records
sees no one else's deals; actions without the right say so; CSRF on every form; refused
input shows the API's reason and changes nothing; another org's records are not found."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from nexus.kernel.http import create_app
from nexus.services.crm import service as crm_service
from nexus.services.hub import service as hub_service
from nexus.services.hub.routes.crm import PER_STAGE
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.vas import service as vas_service
from tests.conftest import RuntimeFactory
from tests.services.hub.conftest import OWNER, PASSWORD, HubEnv, csrf_of

REP, VIEWER, OTHER = "rep@demo.example.com", "viewer@demo.example.com", "owner@other.example.com"
NO_PERMISSION = "You do not have permission"


@dataclass
class CrmHub(HubEnv):
    api: httpx.AsyncClient  # the JSON API, as the owner
    headers: dict[str, str]

    async def as_person(self, email: str) -> httpx.AsyncClient:
        browser = self.browser()
        answer = await self.login(browser, email=email)
        assert answer.status_code == 303, answer.text
        return browser

    async def crm(
        self, method: str, path: str, headers: dict[str, str] | None = None, **body: Any
    ) -> Any:
        answer = await self.api.request(
            method, f"/api/v1/crm{path}", json=body or None, headers=headers or self.headers
        )
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None


async def _token(api: httpx.AsyncClient, email: str) -> dict[str, str]:
    answer = await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
async def env(make_runtime: RuntimeFactory, settings) -> AsyncIterator[CrmHub]:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([idaas_service, vas_service, crm_service, hub_service])
    await idaas_service.on_startup[0](runtime)
    idaas = runtime.db("idaas")
    await create_org_with_owner(
        idaas, org_name="Demo", email=OWNER, password=PASSWORD, name="Olivia"
    )
    await create_org_with_owner(
        idaas, org_name="Other", email=OTHER, password=PASSWORD, name="Otto"
    )
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client,
        httpx.AsyncClient(transport=transport, base_url="http://hub.test") as api,
    ):
        owner = await _token(api, OWNER)
        role = await api.post(
            "/api/v1/roles",
            json={"name": "sales-rep", "permissions": ["crm:*", "vas:message:send"]},
            headers=owner,
        )
        assert role.status_code == 201, role.text
        for email, name in ((REP, "Ray Rep"), (VIEWER, "Vic Viewer")):
            user = await api.post(
                "/api/v1/users",
                json={
                    "email": email,
                    "name": name,
                    "password": PASSWORD,
                    "roles": [] if email == REP else ["member"],  # member reads everything
                },
                headers=owner,
            )
            assert user.status_code == 201, user.text
            if email == REP:
                bound = await api.post(
                    "/api/v1/role-bindings",
                    json={
                        "role": "sales-rep",
                        "user_id": user.json()["id"],
                        "conditions": ["resource.owner_id == user.id"],
                    },
                    headers=owner,
                )
                assert bound.status_code == 201, bound.text
        yield CrmHub(client, runtime, app, api, owner)


async def _seed(env: CrmHub) -> dict[str, Any]:
    company = await env.crm("POST", "/companies", name="Globex", domain="globex.example")
    contact = await env.crm(
        "POST",
        "/contacts",
        first_name="Hank",
        last_name="Scorpio",
        phones=["+14155550123"],
        company_id=company["id"],
    )
    deal = await env.crm(
        "POST",
        "/deals",
        name="Doomsday device",
        amount="10000",
        company_id=company["id"],
        contact_ids=[contact["id"]],
    )
    pipeline = (await env.crm("GET", "/pipelines"))[0]
    return {"company": company, "contact": contact, "deal": deal, "stages": pipeline["stages"]}


async def test_every_crm_page_renders_for_the_owner(env: CrmHub) -> None:
    seeded = await _seed(env)
    await env.login()
    home = await env.client.get("/")
    assert 'href="/crm/board"' in home.text
    deal, contact, company = seeded["deal"]["id"], seeded["contact"]["id"], seeded["company"]["id"]
    for path, expected in (
        ("/crm/board", "Doomsday device"),
        ("/crm/deals", "Doomsday device"),
        ("/crm/contacts", "Hank Scorpio"),
        ("/crm/companies", "Globex"),
        ("/crm/forecast", "Weighted pipeline (USD)"),
        (f"/crm/deals/{deal}", "Lead score"),
        (f"/crm/contacts/{contact}", "Send a message to Hank Scorpio"),
        (f"/crm/companies/{company}", "Hank Scorpio"),
        ("/crm/contacts?q=hank", "Hank Scorpio"),
        ("/crm/deals?status=open&owner=me", "Doomsday device"),
    ):
        page = await env.client.get(path)
        assert page.status_code == 200, (path, page.text[:800])
        assert expected in page.text, path
    board = (await env.client.get("/crm/board")).text
    assert "10,000 USD" in board
    assert 'data-move-url="/crm/deals/' in board


async def test_create_move_log_and_complete_through_the_forms(env: CrmHub) -> None:
    seeded = await _seed(env)
    await env.login()
    token = await env.csrf("/crm/companies")
    form = {"csrf": token, "name": "Initech", "domain": "initech.example", "key": "once"}
    made = await env.client.post("/crm/companies", data=form)
    assert made.status_code == 303, made.text
    again = await env.client.post("/crm/companies", data=form)  # a double click
    assert again.headers["location"] == made.headers["location"]
    company_id = made.headers["location"].split("/")[-1].split("?")[0]
    made = await env.client.post(
        "/crm/contacts",
        data={
            "csrf": token,
            "first_name": "Peter",
            "email": "peter@initech.example",
            "company_id": company_id,
        },
    )
    assert made.status_code == 303, made.text
    contact_id = made.headers["location"].split("/")[-1].split("?")[0]
    stages = seeded["stages"]
    made = await env.client.post(
        "/crm/deals",
        data={
            "csrf": token,
            "name": "TPS reports",
            "amount": "2500",
            "stage_id": stages[1]["id"],
            "company_id": company_id,
            "contact_id": contact_id,
        },
    )
    assert made.status_code == 303, made.text
    deal_id = made.headers["location"].split("/")[-1].split("?")[0]
    deal = await env.crm("GET", f"/deals/{deal_id}")
    assert (deal["stage_id"], deal["contact_ids"]) == (stages[1]["id"], [contact_id])

    moved = await env.client.post(  # as the board's script does it
        f"/crm/deals/{deal_id}/stage",
        data={"stage_id": stages[2]["id"]},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert moved.json()["ok"] is True
    assert moved.json()["columns"][stages[2]["id"]] == {"count": 1, "total": "2,500 USD"}
    moved = await env.client.post(  # the stage list on a card, without script
        f"/crm/deals/{deal_id}/stage",
        data={"csrf": token, "stage_id": stages[3]["id"], "back": "/crm/board"},
    )
    assert (moved.status_code, moved.headers["location"]) == (303, "/crm/board")
    history = await env.crm("GET", f"/deals/{deal_id}/history")
    assert [h["to_stage_id"] for h in history] == [s["id"] for s in stages[1:]]

    logged = await env.client.post(
        f"/crm/deals/{deal_id}/activities",
        data={
            "csrf": token,
            "kind": "task",
            "subject": "Send the contract",
            "due_at": "2030-01-02T09:00",
        },
    )
    assert logged.status_code == 303, logged.text
    page = (await env.client.get(f"/crm/deals/{deal_id}")).text
    timeline = page.split('id="timeline"')[1]
    assert timeline.index("Task: Send the contract") < timeline.index("Moved to")  # newest first
    task_id = re.search(r'action="/crm/activities/([^/]+)/done"', page).group(1)
    done = await env.client.post(
        f"/crm/activities/{task_id}/done", data={"csrf": token, "back": f"/crm/deals/{deal_id}"}
    )
    assert done.status_code == 303
    assert (await env.crm("GET", f"/activities/{task_id}"))["done"] is True

    won = await env.client.post(
        f"/crm/deals/{deal_id}/status", data={"csrf": token, "status": "won"}
    )
    assert won.status_code == 303
    forecast = (await env.client.get("/crm/forecast")).text
    assert 'id="win-rate">100%' in forecast


async def test_refused_input_shows_the_reason_and_changes_nothing(env: CrmHub) -> None:
    seeded = await _seed(env)
    await env.login()
    token = await env.csrf("/crm/contacts")
    bad = await env.client.post(
        "/crm/contacts", data={"csrf": token, "first_name": "Zed", "email": "not-an-address"}
    )
    assert bad.status_code == 200
    assert 'id="f-email-error"' in bad.text
    assert 'value="not-an-address"' in bad.text  # what was typed is kept
    taken = await env.client.post(
        "/crm/companies", data={"csrf": token, "name": "Globex again", "domain": "globex.example"}
    )
    assert taken.status_code == 200
    assert "alert-error" in taken.text
    assert 'value="Globex again"' in taken.text
    deal = seeded["deal"]["id"]
    other = await env.crm(
        "POST", "/pipelines", name="Renewals", stages=[{"name": "Due", "probability": 0.5}]
    )
    moved = await env.client.post(
        f"/crm/deals/{deal}/stage",
        data={"stage_id": other["stages"][0]["id"]},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert moved.json()["ok"] is False
    assert moved.json()["error"]
    lost = await env.client.post(
        f"/crm/deals/{deal}/status", data={"csrf": token, "status": "lost"}
    )
    assert lost.status_code == 200
    assert "alert-error" in lost.text
    empty = await env.client.post(
        f"/crm/contacts/{seeded['contact']['id']}/messages", data={"csrf": token, "body": ""}
    )
    assert empty.status_code == 200
    assert 'id="m-body-error"' in empty.text
    names = [c["name"] for c in (await env.crm("GET", "/contacts"))["items"]]
    assert names == ["Hank Scorpio"]
    assert [c["name"] for c in (await env.crm("GET", "/companies"))["items"]] == ["Globex"]
    assert (await env.crm("GET", f"/deals/{deal}"))["status"] == "open"
    assert (await env.crm("GET", f"/deals/{deal}"))["stage_id"] == seeded["stages"][0]["id"]


async def test_csrf_is_required_on_every_form(env: CrmHub) -> None:
    seeded = await _seed(env)
    await env.login()
    deal, contact = seeded["deal"]["id"], seeded["contact"]["id"]
    for path, data in (
        ("/crm/contacts", {"first_name": "Mallory"}),
        ("/crm/companies", {"name": "Evil Corp"}),
        ("/crm/deals", {"name": "Heist"}),
        (f"/crm/deals/{deal}/stage", {"stage_id": seeded["stages"][1]["id"]}),
        (f"/crm/deals/{deal}/status", {"status": "won"}),
        (f"/crm/deals/{deal}/activities", {"kind": "note", "body": "x"}),
        (f"/crm/contacts/{contact}/messages", {"body": "hi"}),
        (f"/crm/contacts/{contact}/merge", {"other_id": contact}),
        ("/crm/activities/x/done", {}),
    ):
        answer = await env.client.post(path, data={**data, "csrf": "forged"})
        assert answer.status_code == 403, path
        assert "did not come from this page" in answer.text, path
    assert (await env.crm("GET", f"/deals/{deal}"))["status"] == "open"
    assert (await env.crm("GET", f"/deals/{deal}/timeline"))["items"] == []
    assert len((await env.crm("GET", "/contacts"))["items"]) == 1


async def test_a_rep_sees_only_its_own_deals(env: CrmHub) -> None:
    seeded = await _seed(env)  # the owner's
    rep = await env.as_person(REP)
    token = csrf_of((await rep.get("/crm/deals")).text)
    made = await rep.post(
        "/crm/deals", data={"csrf": token, "name": "Ray's own deal", "amount": "10"}
    )
    assert made.status_code == 303, made.text
    board = (await rep.get("/crm/board")).text
    assert "Ray&#39;s own deal" in board
    assert "Doomsday device" not in board
    assert "Doomsday device" not in (await rep.get("/crm/deals")).text
    foreign = await rep.get(f"/crm/deals/{seeded['deal']['id']}")
    assert foreign.status_code == 404
    moved = await rep.post(
        f"/crm/deals/{seeded['deal']['id']}/stage",
        data={"stage_id": seeded["stages"][1]["id"]},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert moved.json()["ok"] is False
    note = await rep.post(
        f"/crm/deals/{seeded['deal']['id']}/activities", data={"csrf": token, "body": "sneaky"}
    )
    assert note.status_code == 404  # as if it did not exist
    assert (await env.crm("GET", f"/deals/{seeded['deal']['id']}"))["stage_id"] == seeded["stages"][
        0
    ]["id"]
    assert (await env.crm("GET", f"/deals/{seeded['deal']['id']}/timeline"))["items"] == []
    await rep.aclose()


async def test_actions_without_the_right_say_so(env: CrmHub) -> None:
    seeded = await _seed(env)
    viewer = await env.as_person(VIEWER)  # member: reads the CRM, changes nothing
    deal = (await viewer.get(f"/crm/deals/{seeded['deal']['id']}")).text
    assert "Doomsday device" in deal
    assert "Mark won" not in deal  # no buttons for what the API would refuse
    assert 'action="/crm/deals/' not in deal
    token = csrf_of(deal)
    for path, data in (
        ("/crm/deals", {"name": "Nope"}),
        (f"/crm/deals/{seeded['deal']['id']}/status", {"status": "won"}),
        (f"/crm/deals/{seeded['deal']['id']}/stage", {"stage_id": seeded["stages"][1]["id"]}),
    ):
        answer = await viewer.post(path, data={"csrf": token, **data})
        assert answer.status_code == 403, (path, answer.text[:300])
        assert NO_PERMISSION in answer.text, path
    assert (await env.crm("GET", f"/deals/{seeded['deal']['id']}"))["status"] == "open"
    await viewer.aclose()


async def test_another_orgs_records_are_not_found(env: CrmHub) -> None:
    seeded = await _seed(env)
    other = await env.as_person(OTHER)
    for path in (
        f"/crm/deals/{seeded['deal']['id']}",
        f"/crm/contacts/{seeded['contact']['id']}",
        f"/crm/companies/{seeded['company']['id']}",
    ):
        answer = await other.get(path)
        assert answer.status_code == 404, path
        assert "Doomsday" not in answer.text
    assert "Doomsday device" not in (await other.get("/crm/board")).text
    token = csrf_of((await other.get("/crm/board")).text)
    note = await other.post(
        f"/crm/contacts/{seeded['contact']['id']}/messages", data={"csrf": token, "body": "hi"}
    )
    assert "alert-error" in note.text or note.status_code == 404
    assert (await env.crm("GET", f"/contacts/{seeded['contact']['id']}/timeline"))["items"] == []
    await other.aclose()


async def test_search_finds_the_records_each_person_may_read(env: CrmHub) -> None:
    seeded = await _seed(env)
    owner = await env.as_person(OWNER)
    found = (await owner.get("/search", params={"q": "Doomsday"})).text
    assert f'href="/crm/deals/{seeded["deal"]["id"]}"' in found
    assert "Hank Scorpio" in (await owner.get("/search", params={"q": "hank"})).text
    assert (
        f'href="/crm/companies/{seeded["company"]["id"]}"'
        in (await owner.get("/search", params={"q": "globex"})).text
    )
    for email in (REP, OTHER):  # not the rep's own record; not the other org's
        person = await env.as_person(email)
        page = (await person.get("/search", params={"q": "Doomsday"})).text
        assert f'href="/crm/deals/{seeded["deal"]["id"]}"' not in page, email
        assert "Nothing found" in page, email
        await person.aclose()
    await owner.aclose()


async def _until(client: httpx.AsyncClient, url: str, text: str) -> str:
    for _ in range(300):
        page = await client.get(url, headers={"HX-Request": "true"})
        if text in page.text:
            return page.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared at {url}: {page.text[:1500]}")


async def test_a_text_from_the_deal_and_the_reply_on_its_live_timeline(env: CrmHub) -> None:
    seeded = await _seed(env)
    providers = (await env.api.get("/api/v1/providers", headers=env.headers)).json()
    sandbox = next(p["id"] for p in providers if p["type"] == "sandbox" and p["channel"] == "sms")
    await env.login()
    deal = seeded["deal"]["id"]
    token = await env.csrf(f"/crm/deals/{deal}")
    sent = await env.client.post(
        f"/crm/contacts/{seeded['contact']['id']}/messages",
        data={
            "csrf": token,
            "channel": "sms",
            "body": "The proposal is in your inbox.",
            "deal_id": deal,
            "key": "k1",
        },
    )
    assert sent.status_code == 303, sent.text
    page = (await env.client.get(sent.headers["location"])).text
    assert "Message sent" in page
    assert f'hx-get="/crm/deals/{deal}/timeline" hx-trigger="every 2s"' in page  # followed live
    await _until(env.client, f"/crm/deals/{deal}/timeline", 'class="badge delivered"')
    reply = await env.api.post(
        f"/api/v1/providers/{sandbox}/sandbox/inbound",
        json={"from": "+14155550123", "body": "Send the contract"},
        headers=env.headers,
    )
    assert reply.status_code == 201, reply.text
    timeline = await _until(env.client, f"/crm/deals/{deal}/timeline", "Reply received")
    assert timeline.index("Send the contract") < timeline.index("The proposal is in your inbox.")
    contact = (await env.client.get(f"/crm/contacts/{seeded['contact']['id']}")).text
    assert "Send the contract" in contact


async def test_duplicates_merge_and_a_capped_board_column(env: CrmHub) -> None:
    seeded = await _seed(env)
    twin = await env.crm("POST", "/contacts", first_name="H.", phones=["+14155550123"])
    await env.crm("POST", "/activities", kind="note", body="Met at the fair", contact_id=twin["id"])
    await env.login()
    keep = seeded["contact"]["id"]
    page = (await env.client.get(f"/crm/contacts/{keep}")).text
    assert "This may be the same person as" in page
    assert f'name="other_id" value="{twin["id"]}"' in page
    merged = await env.client.post(
        f"/crm/contacts/{keep}/merge", data={"csrf": csrf_of(page), "other_id": twin["id"]}
    )
    assert merged.status_code == 303, merged.text
    page = (await env.client.get(merged.headers["location"])).text
    assert "Merged: both histories" in page
    assert "Met at the fair" in page

    for i in range(PER_STAGE):
        await env.crm("POST", "/deals", name=f"Filler {i}", amount="1")
    board = (await env.client.get("/crm/board")).text
    first = seeded["stages"][0]["id"]
    column = board.split(f'data-stage-id="{first}"')[1].split("</section>")[0]
    assert column.count('class="deal-card"') == PER_STAGE
    assert "<span data-count>26</span>" in column  # exact, beyond the cards shown
    assert "10,025 USD" in column
    assert "1 more in Lead in" in column
    more = re.search(r'class="board-more small" href="([^"]+)"', column).group(1)
    listed = (await env.client.get(more.replace("&amp;", "&"))).text
    assert "Doomsday device" in listed


async def test_custom_fields_in_the_create_form_and_on_the_page(env: CrmHub) -> None:
    await env.crm(
        "POST",
        "/custom-fields",
        object_type="deal",
        key="tier",
        label="Tier",
        type="select",
        options=["gold", "silver"],
        required=True,
    )
    await env.login()
    form = (await env.client.get("/crm/deals")).text
    assert 'name="cf.tier"' in form
    token = csrf_of(form)
    missing = await env.client.post("/crm/deals", data={"csrf": token, "name": "Big one"})
    assert missing.status_code == 200
    assert 'id="f-cf.tier-error"' in missing.text  # next to its field
    assert 'value="Big one"' in missing.text
    made = await env.client.post(
        "/crm/deals", data={"csrf": token, "name": "Big one", "cf.tier": "gold"}
    )
    assert made.status_code == 303, made.text
    page = (await env.client.get(made.headers["location"])).text
    assert "<dt>Tier</dt><dd>gold</dd>" in page
    listed = (await env.client.get("/crm/deals")).text
    assert "Big one" in listed
