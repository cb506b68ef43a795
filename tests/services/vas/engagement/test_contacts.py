"""Contacts: CRUD with normalized addresses, tags, attributes, search, pagination, consent
shared with the core's opt-out handling, export, and org isolation."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from nexus.services.vas.inbound import set_consent
from nexus.services.vas.models import Consent
from tests.services.vas.conftest import VasEnv
from tests.services.vas.engagement.conftest import phone, wait_import

API = "/api/v1/contacts"


async def _create(env: VasEnv, **body: object) -> dict:  # type: ignore[type-arg]
    response = await env.client.post(API, json=body, headers=env.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_crud_with_normalized_addresses(sms: VasEnv) -> None:
    c = await _create(
        sms,
        name="Ada Lovelace",
        addresses={"phone": "(415) 555-0100", "email": "Ada@Example.COM"},
        region="US",
        tags=["vip", "beta"],
        attributes={"plan": "gold", "seats": 3},
        timezone="Europe/London",
    )
    addresses = {a["channel"]: a["address"] for a in c["addresses"]}
    assert addresses == {
        "sms": "+14155550100",
        "whatsapp": "+14155550100",
        "email": "Ada@example.com",
    }
    assert c["tags"] == ["beta", "vip"]
    assert not any(a["opted_out"] for a in c["addresses"])

    # the same number in another form is the same address: refused, 409
    again = await sms.client.post(
        API, json={"addresses": {"sms": "+1 415-555-0100"}}, headers=sms.headers
    )
    assert again.status_code == 409
    assert again.json()["contact_id"] == c["id"]

    patched = await sms.client.patch(
        f"{API}/{c['id']}",
        json={"attributes": {"seats": None, "city": "London"}, "addresses": {"whatsapp": None}},
        headers=sms.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["attributes"] == {"plan": "gold", "city": "London"}
    assert {a["channel"] for a in body["addresses"]} == {"sms", "email"}

    for bad in (
        {"addresses": {"sms": "12"}},
        {"addresses": {"email": "not-mail"}},
        {"addresses": {"sms": phone(1)}, "timezone": "Mars/Olympus"},
        {"addresses": {"sms": phone(1)}, "tags": ["<script>"]},
        {"addresses": {"sms": phone(1)}, "attributes": {"a b": 1}},
        {"addresses": {}},
    ):
        response = await sms.client.post(API, json=bad, headers=sms.headers)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    listed = await sms.client.get(API, headers=sms.headers)
    assert len(listed.json()["items"]) == 1  # nothing stored on error

    assert (await sms.client.delete(f"{API}/{c['id']}", headers=sms.headers)).status_code == 204
    assert (await sms.client.get(f"{API}/{c['id']}", headers=sms.headers)).status_code == 404


async def test_search_filters_and_cursor_pagination(sms: VasEnv) -> None:
    for i in range(7):
        await _create(
            sms,
            name=f"Person {i}",
            addresses={"sms": phone(i)},
            tags=["even"] if i % 2 == 0 else ["odd"],
            attributes={"plan": "gold" if i < 3 else "free"},
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await sms.client.get(API, params=params, headers=sms.headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7

    async def names(**params: object) -> set[str]:
        response = await sms.client.get(API, params=params, headers=sms.headers)
        assert response.status_code == 200, response.text
        return {c["name"] for c in response.json()["items"]}

    assert await names(tag="even") == {"Person 0", "Person 2", "Person 4", "Person 6"}
    assert await names(tag="even", attribute="plan:gold") == {"Person 0", "Person 2"}
    assert await names(q="person 5") == {"Person 5"}
    assert await names(q=phone(3)[-4:]) == {"Person 3"}
    bad = await sms.client.get(API, params={"attribute": "nocolon"}, headers=sms.headers)
    assert bad.status_code == 400
    bad = await sms.client.get(API, params={"cursor": "garbage"}, headers=sms.headers)
    assert bad.status_code == 400


async def test_consent_is_the_cores_opt_out_state(sms: VasEnv) -> None:
    c = await _create(sms, name="Bo", addresses={"sms": phone(10), "email": "bo@example.com"})
    # opt out through the contact: a send to the number is rejected by the core
    response = await sms.client.post(
        f"{API}/{c['id']}/consent",
        json={"opted_out": True, "channels": ["sms"]},
        headers=sms.headers,
    )
    assert response.status_code == 200, response.text
    by_channel = {a["channel"]: a for a in response.json()["addresses"]}
    assert by_channel["sms"]["opted_out"]
    assert by_channel["sms"]["consent_source"] == "api"
    assert not by_channel["email"]["opted_out"]
    sent = await sms.send(channel="sms", to=phone(10), body="hi")
    assert sent.json()["status"] == "rejected"
    assert sent.json()["error_code"] == "opted_out"

    # opt back in the way an inbound START does: the contact shows it
    db = sms.runtime.db("vas")
    async with db.transaction(org_id="org-a") as session:
        await set_consent(
            session, "org-a", "sms", phone(10), False, source="keyword", keyword="START"
        )
    got = (await sms.client.get(f"{API}/{c['id']}", headers=sms.headers)).json()
    assert not {a["channel"]: a for a in got["addresses"]}["sms"]["opted_out"]
    async with db.read() as session:
        rows = list(await session.scalars(select(Consent).where(Consent.address == phone(10))))
    assert len(rows) == 1  # one state, not a copy per contact


async def test_export_streams_every_contact_and_reimports(sms: VasEnv) -> None:
    for i in range(25):
        await _create(sms, name=f"P{i}", addresses={"sms": phone(100 + i)}, tags=["x"])
    response = await sms.client.get(f"{API}/export", headers=sms.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 25
    assert {r["sms"] for r in rows} == {phone(100 + i) for i in range(25)}
    response = await sms.client.post(
        f"{API}/import",
        content=response.content,
        headers={**sms.headers, "content-type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    done = await wait_import(sms, response.json()["id"])
    assert (done["created"], done["updated"], done["rows_failed"]) == (0, 0, 0)
    assert done["unchanged"] == 25


async def test_orgs_are_kept_apart(sms: VasEnv) -> None:
    c = await _create(sms, name="Mine", addresses={"sms": phone(200)})
    other = sms.headers_for("org-b")
    for method, path in (
        ("GET", f"{API}/{c['id']}"),
        ("PATCH", f"{API}/{c['id']}"),
        ("DELETE", f"{API}/{c['id']}"),
        ("POST", f"{API}/{c['id']}/consent"),
    ):
        body = {"opted_out": True} if path.endswith("consent") else {"name": "x"}
        response = await sms.client.request(
            method, path, json=None if method in {"GET", "DELETE"} else body, headers=other
        )
        assert response.status_code == 404, (method, path, response.text)
    assert (await sms.client.get(API, headers=other)).json()["items"] == []
    # the same address may exist in another org
    response = await sms.client.post(API, json={"addresses": {"sms": phone(200)}}, headers=other)
    assert response.status_code == 201
    export = await sms.client.get(f"{API}/export", headers=other)
    assert len(export.text.strip().splitlines()) == 2


async def test_permissions(sms: VasEnv) -> None:
    reader = sms.headers_for("org-a", permissions=["vas:contact:read"])
    assert (await sms.client.get(API, headers=reader)).status_code == 200
    response = await sms.client.post(API, json={"addresses": {"sms": phone(1)}}, headers=reader)
    assert response.status_code == 403
    response = await sms.client.post(
        f"{API}/import",
        content=b"phone\n+14155550001\n",
        headers={**reader, "content-type": "text/csv"},
    )
    assert response.status_code == 403
    assert (await sms.client.get(API)).status_code == 401
    manager = sms.headers_for("org-a", permissions=["vas:contact:manage"])
    response = await sms.client.post(
        API, json={"addresses": {"sms": phone(2)}, "opted_out": True}, headers=manager
    )
    assert response.status_code == 403  # consent needs vas:consent:manage too
    response = await sms.client.post(API, json={"addresses": {"sms": phone(2)}}, headers=manager)
    assert response.status_code == 201
    # search input is text, not a pattern
    found = await sms.client.get(API, params={"q": "%"}, headers=sms.headers)
    assert found.json()["items"] == []
