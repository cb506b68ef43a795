"""Records: validation (4xx, nothing changed), custom fields, pipelines, duplicates and merge,
search, pagination."""

from __future__ import annotations

from tests.conftest import eventually
from tests.services.crm.conftest import Crm


async def test_bad_input_is_a_clear_4xx_and_changes_nothing(crm: Crm) -> None:
    h = crm.admin()
    cases = [
        ("/contacts", {"emails": ["not-an-email"]}, 422, "emails.0"),
        ("/contacts", {"first_name": "A", "phones": ["12"]}, 422, "phones.0"),
        ("/contacts", {}, 422, None),
        ("/contacts", {"first_name": "A", "lifecycle_stage": "king"}, 422, "lifecycle_stage"),
        ("/companies", {"name": "X", "domain": "not a domain"}, 422, "domain"),
        ("/deals", {"name": "X", "amount": "-1"}, 422, "amount"),
        ("/deals", {"name": "X", "stage_id": "nope"}, 400, None),
        ("/deals", {"name": "X", "company_id": "01a20000-0000-7000-8000-000000000000"}, 404, None),
        ("/activities", {"kind": "note"}, 422, None),
        (
            "/custom-fields",
            {"object_type": "deal", "key": "Bad Key", "label": "x", "type": "text"},
            422,
            "key",
        ),
        (
            "/custom-fields",
            {"object_type": "deal", "key": "k", "label": "x", "type": "select"},
            422,
            None,
        ),
    ]
    for path, body, status, field in cases:
        response = await crm.client.post(f"/api/v1/crm{path}", json=body, headers=h)
        assert response.status_code == status, (path, body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if field:
            assert field in [e["field"] for e in response.json()["errors"]], response.json()
    for path in ("/contacts", "/companies", "/deals", "/activities"):
        assert (await crm.get(path, h))["items"] == [], path
    bad_cursor = await crm.client.get("/api/v1/crm/contacts?cursor=xyz", headers=h)
    assert bad_cursor.status_code == 400


async def test_company_domains_are_normalized_and_unique(crm: Crm) -> None:
    h = crm.admin()
    first = await crm.post("/companies", h, name="Acme", domain="HTTPS://www.Acme.com/about")
    assert first["domain"] == "acme.com"
    again = await crm.client.post(
        "/api/v1/crm/companies", json={"name": "Acme 2", "domain": "acme.com"}, headers=h
    )
    assert again.status_code == 409
    assert again.json()["company_id"] == first["id"]
    found = await crm.get("/companies", h, domain="www.ACME.com")
    assert [c["id"] for c in found["items"]] == [first["id"]]


async def test_companies_by_id_in_one_call(crm: Crm) -> None:
    h = crm.admin()
    made = [await crm.post("/companies", h, name=f"Co {i}") for i in range(4)]
    wanted = sorted([made[0]["id"], made[2]["id"], "01a20000-0000-7000-8000-000000000000"])
    found = await crm.get("/companies", h, id=wanted)
    assert sorted(c["id"] for c in found["items"]) == sorted([made[0]["id"], made[2]["id"]])
    too_many = await crm.client.get(
        "/api/v1/crm/companies", params={"id": [f"x{i}" for i in range(101)]}, headers=h
    )
    assert too_many.status_code == 422


async def test_custom_fields_are_typed_validated_and_filterable(crm: Crm) -> None:
    h = crm.admin()
    for key, kind, options in (
        ("seats", "number", []),
        ("renewal", "date", []),
        ("tier", "select", ["gold", "silver"]),
        ("products", "multi_select", ["crm", "vas", "idaas"]),
        ("vip", "boolean", []),
        ("notes", "text", []),
    ):
        await crm.post(
            "/custom-fields",
            h,
            object_type="deal",
            key=key,
            label=key.title(),
            type=kind,
            options=options,
        )
    good = {
        "seats": 40,
        "renewal": "2027-01-31",
        "tier": "gold",
        "products": ["crm", "vas"],
        "vip": True,
    }
    big = await crm.post("/deals", h, name="Big", custom=good)
    assert big["custom"] == good
    await crm.post(
        "/deals",
        h,
        name="Small",
        custom={"seats": "5", "tier": "silver", "products": "idaas", "vip": "no"},
    )
    bad = await crm.client.post(
        "/api/v1/crm/deals",
        json={
            "name": "Bad",
            "custom": {
                "seats": "many",
                "tier": "bronze",
                "renewal": "soon",
                "products": ["fax"],
                "nope": 1,
            },
        },
        headers=h,
    )
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == [
        "custom.nope",
        "custom.products",
        "custom.renewal",
        "custom.seats",
        "custom.tier",
    ]

    async def names(**params: str) -> list[str]:
        return [d["name"] for d in (await crm.get("/deals", h, **params))["items"]]

    assert await names(**{"cf.tier": "gold"}) == ["Big"]
    assert await names(**{"cf.seats.gte": "10"}) == ["Big"]
    assert await names(**{"cf.seats.lte": "10"}) == ["Small"]
    assert await names(**{"cf.products": "idaas"}) == ["Small"]
    assert await names(**{"cf.vip": "true"}) == ["Big"]
    assert await names(**{"cf.renewal.gte": "2027-01-01"}) == ["Big"]
    wrong = await crm.client.get("/api/v1/crm/deals?cf.tier.gte=gold", headers=h)
    assert wrong.status_code == 422
    required = await crm.post(
        "/custom-fields",
        h,
        object_type="contact",
        key="region",
        label="Region",
        type="text",
        required=True,
    )
    missing = await crm.client.post("/api/v1/crm/contacts", json={"first_name": "A"}, headers=h)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "custom.region"
    assert required["required"] is True


async def test_pipelines_stages_and_history(crm: Crm) -> None:
    h = crm.admin()
    made = await crm.post(
        "/pipelines",
        h,
        name="Partners",
        stages=[{"name": "Intro", "probability": 0.2}, {"name": "Signed", "probability": 0.9}],
    )
    deal = await crm.post("/deals", h, name="P1", pipeline_id=made["id"])
    assert deal["probability"] == 0.2
    intro, signed = (s["id"] for s in made["stages"])
    deal = await crm.patch(f"/deals/{deal['id']}", h, stage_id=signed, probability=0.5)
    assert deal["probability"] == 0.5
    deal = await crm.patch(f"/deals/{deal['id']}", h, clear_probability=True)
    assert deal["probability"] == 0.9
    other_pipeline_stage = (await crm.get("/pipelines", h))[0]["stages"][0]["id"]
    wrong = await crm.client.patch(
        f"/api/v1/crm/deals/{deal['id']}", json={"stage_id": other_pipeline_stage}, headers=h
    )
    assert wrong.status_code == 400
    lost = await crm.client.patch(
        f"/api/v1/crm/deals/{deal['id']}", json={"status": "lost"}, headers=h
    )
    assert lost.status_code == 400  # a reason is needed
    deal = await crm.patch(f"/deals/{deal['id']}", h, status="lost", lost_reason="Budget")
    assert deal["probability"] == 0.0
    assert deal["closed_at"] is not None
    in_use = await crm.client.patch(
        f"/api/v1/crm/pipelines/{made['id']}",
        json={"stages": [{"id": intro, "name": "Intro", "probability": 0.2}]},
        headers=h,
    )
    assert in_use.status_code == 409
    renamed = await crm.patch(
        f"/pipelines/{made['id']}",
        h,
        is_default=True,
        stages=[
            {"id": signed, "name": "Won over", "probability": 0.95},
            {"id": intro, "name": "Intro", "probability": 0.2},
        ],
    )
    assert [s["name"] for s in renamed["stages"]] == ["Won over", "Intro"]
    assert [p["is_default"] for p in await crm.get("/pipelines", h)] == [False, True]
    default_id = (await crm.get("/pipelines", h))[0]["id"]
    in_use = await crm.client.delete(f"/api/v1/crm/pipelines/{made['id']}", headers=h)
    assert in_use.status_code == 409  # the default, with a deal
    await crm.patch(f"/pipelines/{default_id}", h, is_default=True)
    assert (
        await crm.client.delete(f"/api/v1/crm/pipelines/{made['id']}", headers=h)
    ).status_code == 409
    await crm.client.delete(f"/api/v1/crm/deals/{deal['id']}", headers=h)
    assert (
        await crm.client.delete(f"/api/v1/crm/pipelines/{made['id']}", headers=h)
    ).status_code == 204
    assert [p["id"] for p in await crm.get("/pipelines", h)] == [default_id]


async def test_duplicates_and_merge_keep_both_histories(crm: Crm) -> None:
    h = crm.admin()
    a = await crm.post(
        "/contacts",
        h,
        first_name="John",
        last_name="Smith",
        emails=["john@acme.example"],
        tags=["vip"],
    )
    b = await crm.post(
        "/contacts",
        h,
        first_name="Jon",
        last_name="Smyth",
        phones=["+14155550111"],
        lead_source="event",
    )
    c = await crm.post(
        "/contacts", h, first_name="J.", last_name="Smith", emails=["JOHN@acme.example"]
    )
    await crm.post("/contacts", h, first_name="Mary", last_name="Jones")
    for contact, subjects in ((a, ["a1", "a2"]), (b, ["b1", "b2", "b3"]), (c, ["c1"])):
        for subject in subjects:
            await crm.post("/activities", h, kind="note", subject=subject, contact_id=contact["id"])
    deal = await crm.post("/deals", h, name="D", contact_ids=[b["id"]])
    tagged = await crm.get("/contacts", h, tag="vip")
    assert [x["id"] for x in tagged["items"]] == [a["id"]]

    dupes = {
        d["contact"]["id"]: d["reasons"]
        for d in await crm.get(f"/contacts/{a['id']}/duplicates", h)
    }
    assert set(dupes) == {b["id"], c["id"]}
    assert dupes[c["id"]] == ["same email john@acme.example"]
    assert dupes[b["id"]] == ["similar name"]

    for other in (b, c):
        merged = await crm.post(f"/contacts/{a['id']}/merge", h, other_id=other["id"])
    assert merged["phones"] == ["+14155550111"]
    assert merged["lead_source"] == "event"
    assert merged["tags"] == ["vip"]
    timeline = (await crm.get(f"/contacts/{a['id']}/timeline", h, limit=50))["items"]
    subjects = sorted(t["subject"] for t in timeline if t["subject"] != "Contacts merged")
    assert subjects == ["a1", "a2", "b1", "b2", "b3", "c1"]
    assert (await crm.get(f"/deals/{deal['id']}", h))["contact_ids"] == [a["id"]]
    gone = await crm.get(f"/contacts/{b['id']}", h)
    assert gone["merged_into_id"] == a["id"]
    listed = [x["id"] for x in (await crm.get("/contacts", h))["items"]]
    assert b["id"] not in listed
    assert a["id"] in listed
    again = await crm.client.post(
        f"/api/v1/crm/contacts/{a['id']}/merge", json={"other_id": b["id"]}, headers=h
    )
    assert again.status_code == 400
    found = await crm.get("/search", h, q="jon smyth")
    assert [x["id"] for x in found["items"]] == [a["id"]]

    async def merged_events() -> bool:
        return crm.event_types().count("nexus.crm.contact.merged") == 2

    await eventually(merged_events)


async def test_search_prefix_phone_fuzzy_and_pages(crm: Crm) -> None:
    h = crm.admin()
    for i in range(7):
        await crm.post(
            "/contacts",
            h,
            first_name="Ada",
            last_name=f"Lovelace{i}",
            phones=[f"+4420794600{i:02d}"],
        )
    await crm.post("/companies", h, name="Analytical Engines", domain="engines.example")
    king = await crm.post(
        "/contacts", h, first_name="Ada", last_name="King", emails=["ada.king@engines.example"]
    )
    first = await crm.get("/search", h, q="ada lov", limit=3)  # not King
    assert first["match"] == "prefix"
    assert len(first["items"]) == 3
    second = await crm.get("/search", h, q="ada lov", limit=3, cursor=first["next_cursor"])
    third = await crm.get("/search", h, q="ada lov", limit=3, cursor=second["next_cursor"])
    assert third["next_cursor"] is None
    ids = [x["id"] for page in (first, second, third) for x in page["items"]]
    assert len(ids) == len(set(ids)) == 7
    by_email = await crm.get("/search", h, q="Ada.King@engines.ex")
    assert [x["id"] for x in by_email["items"]] == [king["id"]]
    assert (await crm.get("/search", h, q="ada.king@other.example"))["items"] == []
    by_phone = await crm.get("/search", h, q="+44 20 7946 0003")
    assert [x["title"] for x in by_phone["items"]] == ["Ada Lovelace3"]
    by_domain = (await crm.get("/search", h, q="engines.example"))["items"]
    assert sorted(x["type"] for x in by_domain) == ["company", "contact"]
    assert (await crm.get("/search", h, q="analytic", type="company"))["items"]
    assert (await crm.get("/search", h, q="analytic", type="deal"))["items"] == []
    fuzzy = await crm.get("/search", h, q="Addah")
    assert fuzzy["match"] == "fuzzy"
    assert len(fuzzy["items"]) == 8
    empty = await crm.client.get("/api/v1/crm/search?q=%20%2B", headers=h)
    assert empty.status_code == 400


async def test_creates_are_idempotent_per_caller_and_key(crm: Crm) -> None:
    h = {**crm.admin(), "Idempotency-Key": "import-row-1"}
    first = await crm.client.post("/api/v1/crm/contacts", json={"first_name": "Once"}, headers=h)
    again = await crm.client.post("/api/v1/crm/contacts", json={"first_name": "Once"}, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = {**crm.admin(sub="admin-2"), "Idempotency-Key": "import-row-1"}
    theirs = await crm.client.post(
        "/api/v1/crm/contacts", json={"first_name": "Once"}, headers=other
    )
    assert theirs.json()["id"] != first.json()["id"]
    deal = await crm.client.post("/api/v1/crm/deals", json={"name": "D"}, headers=h)
    deal_again = await crm.client.post("/api/v1/crm/deals", json={"name": "D"}, headers=h)
    assert deal_again.json()["id"] == deal.json()["id"]
    assert len((await crm.get("/contacts", crm.admin()))["items"]) == 2
    assert len((await crm.get("/deals", crm.admin()))["items"]) == 1


async def test_company_duplicates_and_merge(crm: Crm) -> None:
    h = crm.admin()
    acme = await crm.post("/companies", h, name="Acme", industry="software")
    acme_inc = await crm.post("/companies", h, name="ACME, Inc.", domain="acme.com", size=50)
    akme = await crm.post("/companies", h, name="Akme", domain="acme.co.uk")
    await crm.post("/companies", h, name="Globex")
    dupes = {
        d["company"]["id"]: d["reasons"]
        for d in await crm.get(f"/companies/{acme_inc['id']}/duplicates", h)
    }
    assert dupes == {
        acme["id"]: ["same name"],
        akme["id"]: ["similar name", "similar domain acme.co.uk"],
    }
    contact = await crm.post("/contacts", h, first_name="Wile", company_id=acme_inc["id"])
    deal = await crm.post("/deals", h, name="Anvils", company_id=acme_inc["id"])
    await crm.post("/activities", h, kind="call", company_id=acme_inc["id"])
    merged = await crm.post(f"/companies/{acme['id']}/merge", h, other_id=acme_inc["id"])
    assert (merged["domain"], merged["industry"], merged["size"]) == ("acme.com", "software", 50)
    assert (await crm.get(f"/contacts/{contact['id']}", h))["company_id"] == acme["id"]
    assert (await crm.get(f"/deals/{deal['id']}", h))["company_id"] == acme["id"]
    kinds = [a["kind"] for a in (await crm.get(f"/companies/{acme['id']}/timeline", h))["items"]]
    assert sorted(kinds) == ["call", "note"]
    gone = await crm.get(f"/companies/{acme_inc['id']}", h)
    assert gone["merged_into_id"] == acme["id"]
    assert gone["domain"] is None
    names = [c["name"] for c in (await crm.get("/companies", h))["items"]]
    assert sorted(names) == ["Acme", "Akme", "Globex"]
    assert [x["id"] for x in (await crm.get("/search", h, q="acme.com"))["items"]] == [acme["id"]]
