"""POST /api/v1/messages/preview: the compose form's live encoding, segment and cost."""

from __future__ import annotations

from decimal import Decimal

from tests.services.vas.conftest import VasEnv


async def _preview(vas: VasEnv, **body: object) -> dict:  # type: ignore[type-arg]
    response = await vas.client.post("/api/v1/messages/preview", json=body, headers=vas.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_preview_counts_segments_and_cost(vas: VasEnv) -> None:
    await vas.add_provider(name="cheap", cost_per_unit="0.0050", priority=2)
    await vas.add_provider(name="dear", cost_per_unit="0.0100", priority=1)
    out = await _preview(vas, channel="sms", to="+14155550123", body="x" * 161)
    assert (out["encoding"], out["segments"], out["per_segment"]) == ("GSM-7", 2, 153)
    assert out["remaining"] == 153 - 8
    assert Decimal(out["estimated_cost"]) == Decimal("0.0100")
    assert out["to"] == "+14155550123"
    assert out["providers"] == 2
    assert out["problems"] == []

    emoji = await _preview(vas, channel="sms", body="héllo 👋")
    assert (emoji["encoding"], emoji["segments"]) == ("UCS-2", 1)


async def test_preview_reports_problems_without_failing(vas: VasEnv) -> None:
    out = await _preview(vas, channel="sms", to="not a number", body="hi")
    assert {p["field"] for p in out["problems"]} == {"to", "channel"}
    assert out["estimated_cost"] is None
    # nothing was stored
    listed = await vas.client.get("/api/v1/messages", headers=vas.headers)
    assert listed.json()["items"] == []


async def test_preview_needs_the_send_permission(vas: VasEnv) -> None:
    response = await vas.client.post(
        "/api/v1/messages/preview",
        json={"channel": "sms", "body": "hi"},
        headers=vas.headers_for("org-a", permissions=["vas:message:read"]),
    )
    assert response.status_code == 403
