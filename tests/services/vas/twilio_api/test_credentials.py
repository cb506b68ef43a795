"""/api/v1/vas/twilio-credentials: secrets shown once, permission-checked, org-scoped;
revoking an account shuts its keys out too."""

from __future__ import annotations

import re

from tests.services.vas.twilio_api.conftest import TwilioEnv
from tests.services.vas.twilio_api.test_python_sdk import FROM, TO, call, error_of, sdk

BASE = "/api/v1/vas/twilio-credentials"


async def test_account_sid_and_token_have_twilio_shapes_and_show_once(twilio: TwilioEnv) -> None:
    assert re.fullmatch(r"AC[0-9a-f]{32}", twilio.account_sid)
    assert re.fullmatch(r"[0-9a-f]{32}", twilio.auth_token)
    listed = (await twilio.api.get(BASE, headers=twilio.headers())).json()["items"]
    assert [c["sid"] for c in listed] == [twilio.account_sid]
    assert twilio.auth_token not in str(listed)
    assert "auth_token" not in listed[0]
    assert "secret" not in listed[0]
    assert listed[0]["last_used_at"] is None
    await call(sdk(twilio).messages.create, to=TO, from_=FROM, body="x")
    listed = (await twilio.api.get(BASE, headers=twilio.headers())).json()["items"]
    assert listed[0]["last_used_at"] is not None


async def test_managing_credentials_needs_the_permission(twilio: TwilioEnv) -> None:
    reader = twilio.headers(permissions=["vas:message:read", "vas:message:send"])
    assert (await twilio.api.post(BASE, json={}, headers=reader)).status_code == 403
    assert (await twilio.api.get(BASE, headers=reader)).status_code == 403
    r = await twilio.api.delete(f"{BASE}/{twilio.account_sid}", headers=reader)
    assert r.status_code == 403
    manager = twilio.headers(permissions=["vas:twilio_credential:manage"])
    assert (await twilio.api.post(BASE, json={}, headers=manager)).status_code == 201


async def test_other_orgs_cannot_see_or_touch_an_account(twilio: TwilioEnv) -> None:
    other = twilio.headers("org-b")
    assert (await twilio.api.get(BASE, headers=other)).json()["items"] == []
    r = await twilio.api.post(f"{BASE}/{twilio.account_sid}/keys", json={}, headers=other)
    assert r.status_code == 404
    r = await twilio.api.delete(f"{BASE}/{twilio.account_sid}", headers=other)
    assert r.status_code == 404
    await call(sdk(twilio).messages.create, to=TO, from_=FROM, body="still works")


async def test_bad_input_is_a_4xx(twilio: TwilioEnv) -> None:
    r = await twilio.api.post(BASE, json={"friendly_name": "x" * 201}, headers=twilio.headers())
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


async def test_revoking_an_account_revokes_its_keys(twilio: TwilioEnv) -> None:
    r = await twilio.api.post(
        f"{BASE}/{twilio.account_sid}/keys", json={}, headers=twilio.headers()
    )
    key = r.json()
    r = await twilio.api.delete(f"{BASE}/{twilio.account_sid}", headers=twilio.headers())
    assert r.status_code == 204
    for client in (sdk(twilio), sdk(twilio, key["sid"], key["secret"])):
        error = await error_of(client.messages.create, to=TO, from_=FROM, body="x")
        assert (error.code, error.status) == (20003, 401)
    listed = (await twilio.api.get(BASE, headers=twilio.headers())).json()["items"]
    assert listed == []
    everything = await twilio.api.get(BASE + "?include_revoked=true", headers=twilio.headers())
    assert all(c["revoked_at"] for c in everything.json()["items"])
    r = await twilio.api.post(
        f"{BASE}/{twilio.account_sid}/keys", json={}, headers=twilio.headers()
    )
    assert r.status_code == 404
