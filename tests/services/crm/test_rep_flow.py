"""The rep flow end to end through the HTTP API: company, contact, deal, stages, a text to
the contact through VAS, the contact's reply on the timelines, the forecast moving."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import eventually
from tests.services.crm.conftest import Crm

PHONE = "+14155550123"


async def _sandbox_sms(crm: Crm, headers: dict[str, str], **fields: Any) -> str:
    account = await crm.client.post(
        "/api/v1/providers",
        json={"type": "sandbox", "channel": "sms", "name": "sandbox-sms"} | fields,
        headers=headers,
    )
    assert account.status_code == 201, account.text
    return account.json()["id"]  # type: ignore[no-any-return]


async def _reply_from(
    crm: Crm, admin: dict[str, str], provider_id: str, sender: str, body: str
) -> None:
    """The contact answers: the sandbox simulates the reply, which reaches VAS's inbound
    path exactly as a real provider's inbound webhook does."""
    response = await crm.client.post(
        f"/api/v1/providers/{provider_id}/sandbox/inbound",
        json={"from": sender, "body": body},
        headers=admin,
    )
    assert response.status_code == 201, response.text


async def test_a_rep_works_a_deal_and_texts_the_contact(crm: Crm) -> None:
    admin = crm.admin()
    sandbox = await _sandbox_sms(crm, admin, priority=1000)
    rep = crm.rep("rep-1")
    close = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=20)).isoformat()

    company = await crm.post("/companies", rep, name="Globex", domain="globex.example")
    contact = await crm.post(
        "/contacts",
        rep,
        first_name="Hank",
        last_name="Scorpio",
        phones=["+1 (415) 555-0123"],
        emails=["hank@globex.example"],
        company_id=company["id"],
        lifecycle_stage="sql",
    )
    assert contact["phones"] == [PHONE]
    assert contact["owner_id"] == "rep-1"
    deal = await crm.post(
        "/deals",
        rep,
        name="Globex doomsday device",
        amount="10000.00",
        company_id=company["id"],
        contact_ids=[contact["id"]],
        expected_close=close,
    )
    pipeline = (await crm.get("/pipelines", rep))[0]
    stages = [s["id"] for s in pipeline["stages"]]
    assert deal["stage_id"] == stages[0]
    assert deal["probability"] == 0.1

    before = await crm.get("/forecast", rep)
    assert before["totals"]["USD"]["weighted"] == "1000.00"
    assert before["totals"]["USD"]["committed"] == "0.00"

    for stage_id in stages[1:]:
        deal = await crm.patch(f"/deals/{deal['id']}", rep, stage_id=stage_id)
    assert deal["probability"] == 0.75
    moved = await crm.get("/forecast", rep)
    assert moved["totals"]["USD"]["weighted"] == "7500.00"
    assert moved["totals"]["USD"]["committed"] == "10000.00"  # 75% >= commit at 70%

    sent = await crm.post(
        f"/contacts/{contact['id']}/messages",
        rep,
        channel="sms",
        body="Hank, the proposal is in your inbox.",
        deal_id=deal["id"],
    )
    assert sent["activity"]["direction"] == "outbound"
    assert sent["message"]["to"] == PHONE

    async def delivered() -> bool:
        timeline = await crm.get(f"/contacts/{contact['id']}/timeline", rep)
        return any(a["status"] == "delivered" for a in timeline["items"])

    await eventually(delivered)
    await _reply_from(crm, admin, sandbox, PHONE, "Looks good, send the contract")

    async def replied() -> bool:
        timeline = await crm.get(f"/contacts/{contact['id']}/timeline", rep)
        return any(a["direction"] == "inbound" for a in timeline["items"])

    await eventually(replied)
    timeline = (await crm.get(f"/contacts/{contact['id']}/timeline", rep))["items"]
    assert [(a["direction"], a["body"]) for a in timeline] == [
        ("inbound", "Looks good, send the contract"),
        ("outbound", "Hank, the proposal is in your inbox."),
    ]
    deal_timeline = (await crm.get(f"/deals/{deal['id']}/timeline", rep))["items"]
    assert [a["direction"] for a in deal_timeline] == ["inbound", "outbound"]  # threaded
    company_timeline = (await crm.get(f"/companies/{company['id']}/timeline", rep))["items"]
    assert len(company_timeline) == 2

    won = await crm.patch(f"/deals/{deal['id']}", rep, status="won")
    assert won["status"] == "won"
    assert won["probability"] == 1.0
    after = await crm.get("/forecast", rep)
    assert after["totals"]["USD"]["weighted"] == "0.00"
    assert after["totals"]["USD"]["won"] == "10000.00"
    assert [d["stage"] for d in after["stage_days"]] == ["Lead in", "Qualified", "Proposal"]
    assert after["win_rate"] == 1.0
    assert after["avg_cycle_days"] is not None

    history = await crm.get(f"/deals/{deal['id']}/history", rep)
    assert [h["to_status"] for h in history] == ["open"] * 4 + ["won"]
    assert [h["to_stage_id"] for h in history[:4]] == stages

    async def published() -> bool:
        types = crm.event_types()
        return types.count("nexus.crm.deal.stage_changed") == 3 and "nexus.crm.deal.won" in types

    await eventually(published)
    assert "nexus.crm.contact.created" in crm.event_types()


async def test_texting_needs_vas_permission_and_a_number(crm: Crm) -> None:
    no_send = crm.issuer.headers(org_id="org-a", sub="u", permissions=["crm:*"])
    contact = await crm.post("/contacts", no_send, first_name="Mail", emails=["m@example.com"])
    refused = await crm.client.post(
        f"/api/v1/crm/contacts/{contact['id']}/messages", json={"body": "hi"}, headers=no_send
    )
    assert refused.status_code == 400
    assert "no phone" in refused.json()["detail"]
    with_phone = await crm.post("/contacts", no_send, first_name="P", phones=[PHONE])
    refused = await crm.client.post(
        f"/api/v1/crm/contacts/{with_phone['id']}/messages", json={"body": "hi"}, headers=no_send
    )
    assert refused.status_code == 403, refused.text  # VAS said no: vas:message:send missing
    timeline = await crm.get(f"/contacts/{with_phone['id']}/timeline", no_send)
    assert timeline["items"] == []


async def test_a_reply_lands_only_in_its_own_org(crm: Crm) -> None:
    a, b = crm.admin("org-a"), crm.admin("org-b", sub="admin-b")
    in_a = await crm.post("/contacts", a, first_name="Same", phones=[PHONE])
    in_b = await crm.post("/contacts", b, first_name="Same", phones=[PHONE])
    unknown = await crm.post("/contacts", b, first_name="Other", phones=["+14155550999"])
    await _reply_from(crm, b, await _sandbox_sms(crm, b), PHONE, "hello org b")

    async def arrived() -> bool:
        timeline = await crm.get(f"/contacts/{in_b['id']}/timeline", b)
        return bool(timeline["items"])

    await eventually(arrived)
    assert (await crm.get(f"/contacts/{in_a['id']}/timeline", a))["items"] == []
    assert (await crm.get(f"/contacts/{unknown['id']}/timeline", b))["items"] == []


async def test_a_message_sent_for_a_contact_elsewhere_still_lands_on_its_timeline(
    crm: Crm,
) -> None:
    """E.g. the CRM's transaction failed after VAS accepted the message, or another tool
    sent it through VAS naming the contact: VAS's status events carry the metadata."""
    admin = crm.admin()
    await _sandbox_sms(crm, admin)
    contact = await crm.post("/contacts", admin, first_name="Elsewhere", phones=[PHONE])
    sent = await crm.client.post(
        "/api/v1/messages/send",
        json={
            "channel": "sms",
            "to": PHONE,
            "body": "from a campaign",
            "metadata": {"crm_contact_id": contact["id"]},
        },
        headers=admin,
    )
    assert sent.status_code == 202, sent.text

    async def delivered() -> bool:
        items = (await crm.get(f"/contacts/{contact['id']}/timeline", admin))["items"]
        return [(a["external_id"], a["status"]) for a in items] == [
            (sent.json()["id"], "delivered")
        ]

    await eventually(delivered)
