"""What a form needs to add a provider account (types, channels, credential fields), and a
probe of one account on demand; both read-only, org-scoped and behind vas:provider:read."""

from __future__ import annotations

from tests.services.vas.conftest import VasEnv


async def test_types_name_channels_and_which_credentials_are_secret(vas: VasEnv) -> None:
    response = await vas.client.get("/api/v1/providers/types", headers=vas.headers)
    assert response.status_code == 200, response.text
    types = {t["type"]: t for t in response.json()}
    assert set(types) >= {"twilio", "infobip", "vonage", "whatsapp_cloud", "smtp", "sandbox"}
    twilio = types["twilio"]
    assert twilio["channels"] == ["sms", "whatsapp"]
    fields = {f["name"]: (f["required"], f["secret"]) for f in twilio["credentials"]}
    assert fields == {
        "account_sid": (True, False),
        "auth_token": (True, True),
        "messaging_service_sid": (False, False),
    }
    assert types["sandbox"]["credentials"] == []
    assert all(not f["required"] for f in types["smtp"]["credentials"])

    reader = vas.headers_for("org-a", permissions=["vas:message:read"])
    refused = await vas.client.get("/api/v1/providers/types", headers=reader)
    assert refused.status_code == 403


async def test_one_account_is_probed_in_its_own_org_only(vas: VasEnv) -> None:
    account = await vas.add_provider(name="probe-me")
    url = f"/api/v1/providers/{account['id']}/health"
    probed = await vas.client.get(url, headers=vas.headers)
    assert probed.status_code == 200, probed.text
    assert probed.json()["healthy"] is True
    assert probed.json()["name"] == "probe-me"

    other_org = await vas.client.get(url, headers=vas.headers_for("org-b"))
    assert other_org.status_code == 404
    reader = vas.headers_for("org-a", permissions=["vas:message:read"])
    assert (await vas.client.get(url, headers=reader)).status_code == 403
