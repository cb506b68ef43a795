"""Org isolation and owner rules on every CRM route: other orgs and other reps try."""

from __future__ import annotations

from typing import Any

import pytest

from tests.services.crm.conftest import Crm


async def _records(crm: Crm, headers: dict[str, str]) -> dict[str, Any]:
    company = await crm.post("/companies", headers, name="Initech", domain="initech.example")
    contact = await crm.post(
        "/contacts",
        headers,
        first_name="Peter",
        last_name="Gibbons",
        emails=["peter@initech.example"],
        phones=["+14155550199"],
        company_id=company["id"],
    )
    other = await crm.post("/contacts", headers, first_name="Petr", last_name="Gibons")
    other_company = await crm.post("/companies", headers, name="Initech Ltd")
    deal = await crm.post(
        "/deals",
        headers,
        name="TPS reports",
        amount="500",
        contact_ids=[contact["id"]],
        company_id=company["id"],
    )
    activity = await crm.post(
        "/activities", headers, kind="call", subject="Intro", contact_id=contact["id"]
    )
    pipeline = (await crm.get("/pipelines", headers))[0]
    return {
        "company": company["id"],
        "contact": contact["id"],
        "other": other["id"],
        "deal": deal["id"],
        "activity": activity["id"],
        "pipeline": pipeline["id"],
        "other_company": other_company["id"],
    }


def _routes(ids: dict[str, Any], field_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    c, d, co, a, p = ids["contact"], ids["deal"], ids["company"], ids["activity"], ids["pipeline"]
    return [
        ("GET", f"/contacts/{c}", None),
        ("PATCH", f"/contacts/{c}", {"first_name": "Hacked"}),
        ("GET", f"/contacts/{c}/timeline", None),
        ("GET", f"/contacts/{c}/duplicates", None),
        ("POST", f"/contacts/{c}/merge", {"other_id": ids["other"]}),
        ("GET", f"/contacts/{c}/score", None),
        ("POST", f"/contacts/{c}/messages", {"body": "hi"}),
        ("DELETE", f"/contacts/{c}", None),
        ("GET", f"/companies/{co}", None),
        ("PATCH", f"/companies/{co}", {"name": "Hacked"}),
        ("GET", f"/companies/{co}/timeline", None),
        ("GET", f"/companies/{co}/duplicates", None),
        ("POST", f"/companies/{co}/merge", {"other_id": ids["other_company"]}),
        ("DELETE", f"/companies/{co}", None),
        ("GET", f"/deals/{d}", None),
        ("PATCH", f"/deals/{d}", {"amount": "1"}),
        ("GET", f"/deals/{d}/history", None),
        ("GET", f"/deals/{d}/timeline", None),
        ("DELETE", f"/deals/{d}", None),
        ("GET", f"/activities/{a}", None),
        ("PATCH", f"/activities/{a}", {"subject": "Hacked"}),
        ("DELETE", f"/activities/{a}", None),
        ("PATCH", f"/pipelines/{p}", {"name": "Hacked"}),
        ("GET", f"/pipelines/{p}/board", None),
        ("DELETE", f"/pipelines/{p}", None),
        ("PATCH", f"/custom-fields/{field_id}", {"label": "Hacked"}),
        ("DELETE", f"/custom-fields/{field_id}", None),
        ("POST", "/activities", {"kind": "note", "contact_id": c}),
        ("POST", "/deals", {"name": "x", "contact_ids": [c]}),
        ("POST", "/contacts", {"first_name": "x", "company_id": co}),
    ]


async def _unchanged(crm: Crm, ids: dict[str, Any], admin: dict[str, str]) -> None:
    contact = await crm.get(f"/contacts/{ids['contact']}", admin)
    assert contact["first_name"] == "Peter"
    assert (await crm.get(f"/deals/{ids['deal']}", admin))["amount"] == "500.00"
    assert (await crm.get(f"/companies/{ids['company']}", admin))["name"] == "Initech"
    assert (await crm.get(f"/activities/{ids['activity']}", admin))["subject"] == "Intro"


async def _field(crm: Crm, admin: dict[str, str]) -> str:
    field = await crm.post(
        "/custom-fields", admin, object_type="deal", key="region", label="Region", type="text"
    )
    return str(field["id"])


async def test_other_orgs_see_and_change_nothing(crm: Crm) -> None:
    admin = crm.admin("org-a")
    ids = await _records(crm, admin)
    field_id = await _field(crm, admin)
    intruder = crm.admin("org-b", sub="admin-b")
    await crm.get("/pipelines", intruder)  # org-b has its own pipeline
    for method, path, body in _routes(ids, field_id):
        response = await crm.client.request(
            method, f"/api/v1/crm{path}", json=body, headers=intruder
        )
        assert response.status_code == 404, (method, path, response.text)
    for path, key in (
        ("/contacts", "items"),
        ("/companies", "items"),
        ("/deals", "items"),
        ("/activities", "items"),
        ("/custom-fields", None),
    ):
        listed = await crm.get(path, intruder)
        assert (listed[key] if key else listed) == [], path
    assert (await crm.get("/search", intruder, q="peter"))["items"] == []
    assert (await crm.get("/search", intruder, q="petter gibbons"))["items"] == []
    assert (await crm.get("/forecast", intruder))["rows"] == []
    assert len(await crm.get("/pipelines", intruder)) == 1
    await _unchanged(crm, ids, admin)


async def test_reps_see_and_change_only_their_own(crm: Crm) -> None:
    admin = crm.admin()
    mine, theirs = crm.rep("rep-1"), crm.rep("rep-2")
    ids = await _records(crm, mine)
    field_id = await _field(crm, admin)
    for method, path, body in _routes(ids, field_id):
        response = await crm.client.request(method, f"/api/v1/crm{path}", json=body, headers=theirs)
        if path.startswith(("/pipelines/", "/custom-fields/")):
            expected = 200 if method == "GET" else 403  # shared config; reps cannot change it
        else:
            expected = 404
        assert response.status_code == expected, (method, path, response.text)
    board = await crm.get(f"/pipelines/{ids['pipeline']}/board", theirs)
    assert sum(s["count"] for s in board["stages"]) == 0
    assert (await crm.get(f"/pipelines/{ids['pipeline']}/board", mine))["stages"][0]["count"] == 1
    for path in ("/contacts", "/companies", "/deals", "/activities"):
        assert (await crm.get(path, theirs))["items"] == [], path
        assert (await crm.get(path, mine))["items"], path
        assert (await crm.get(path, admin))["items"], path
    assert (await crm.get("/search", theirs, q="peter"))["items"] == []
    assert (await crm.get("/search", mine, q="peter"))["items"]
    assert (await crm.get("/forecast", theirs))["rows"] == []
    assert (await crm.get("/forecast", mine))["rows"]
    await _unchanged(crm, ids, admin)


async def test_a_rep_cannot_give_records_away_or_make_them_for_others(crm: Crm) -> None:
    rep = crm.rep("rep-1")
    ids = await _records(crm, rep)
    given = await crm.client.patch(
        f"/api/v1/crm/deals/{ids['deal']}", json={"owner_id": "rep-2"}, headers=rep
    )
    assert given.status_code == 403, given.text
    assert "owner_id" in given.json()["detail"]
    made = await crm.client.post(
        "/api/v1/crm/contacts", json={"first_name": "X", "owner_id": "rep-2"}, headers=rep
    )
    assert made.status_code == 403
    assert (await crm.get(f"/deals/{ids['deal']}", rep))["owner_id"] == "rep-1"
    assert [c["first_name"] for c in (await crm.get("/contacts", crm.admin()))["items"]] == [
        "Petr",
        "Peter",
    ]
    # a manager with an unrestricted grant reassigns it
    moved = await crm.patch(f"/deals/{ids['deal']}", crm.admin(), owner_id="rep-2")
    assert moved["owner_id"] == "rep-2"
    assert (
        await crm.client.get(f"/api/v1/crm/deals/{ids['deal']}", headers=rep)
    ).status_code == 404


async def test_a_rep_with_a_wider_grant_reads_everything_but_changes_its_own(crm: Crm) -> None:
    ids = await _records(crm, crm.rep("rep-1"))
    reader = crm.issuer.headers(
        org_id="org-a",
        sub="rep-3",
        permissions=["crm:deal:read"],
        cg=[{"p": "crm:deal:write", "c": ["resource.owner_id == user.id"]}],
    )
    assert (await crm.get(f"/deals/{ids['deal']}", reader))["name"] == "TPS reports"
    refused = await crm.client.patch(
        f"/api/v1/crm/deals/{ids['deal']}", json={"amount": "1"}, headers=reader
    )
    assert refused.status_code == 403
    assert "resource.owner_id == user.id" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/contacts"),
        ("POST", "/deals"),
        ("GET", "/forecast"),
        ("POST", "/scoring/train"),
        ("GET", "/search?q=a"),
        ("POST", "/custom-fields"),
    ],
)
async def test_credentials_and_permissions_are_required(crm: Crm, method: str, path: str) -> None:
    anonymous = await crm.client.request(method, f"/api/v1/crm{path}", json={})
    assert anonymous.status_code == 401
    nothing = crm.issuer.headers(org_id="org-a", permissions=["vas:message:send"])
    refused = await crm.client.request(method, f"/api/v1/crm{path}", json={}, headers=nothing)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_every_crm_route_is_covered_here(crm: Crm) -> None:
    tested = {(m, p.split("?")[0]) for m, p, _ in _routes(_PLACEHOLDERS, "{field_id}")}
    tested |= {
        ("GET", "/contacts"),
        ("POST", "/contacts"),
        ("GET", "/companies"),
        ("POST", "/companies"),
        ("GET", "/deals"),
        ("POST", "/deals"),
        ("GET", "/activities"),
        ("POST", "/activities"),
        ("GET", "/custom-fields"),
        ("POST", "/custom-fields"),
        ("GET", "/pipelines"),
        ("POST", "/pipelines"),
        ("GET", "/search"),
        ("GET", "/forecast"),
        ("GET", "/scoring"),
        ("POST", "/scoring/train"),
        ("POST", "/import"),
        ("GET", "/import/{import_id}"),
        ("GET", "/import/{import_id}/errors"),
        ("GET", "/export"),
    }
    app_routes = {
        (method, route.path.removeprefix("/api/v1/crm"))  # type: ignore[attr-defined]
        for route in crm.client._transport.app.routes  # type: ignore[attr-defined]
        if getattr(route, "path", "").startswith("/api/v1/crm")
        for method in route.methods  # type: ignore[attr-defined]
    }
    assert app_routes - tested == set()


_PLACEHOLDERS = {
    "contact": "{contact_id}",
    "other": "x",
    "other_company": "x",
    "deal": "{deal_id}",
    "company": "{company_id}",
    "activity": "{activity_id}",
    "pipeline": "{pipeline_id}",
}
