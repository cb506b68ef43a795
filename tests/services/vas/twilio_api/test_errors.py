"""Twilio paths answer every failure in Twilio's error body: bad Basic auth, resources
not served, hostile list and update input; the paths are in the OpenAPI schema."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from nexus.services.vas.twilio_api import credentials
from tests.services.vas.twilio_api.conftest import TwilioEnv


async def test_basic_auth_garbage_is_20003(twilio: TwilioEnv) -> None:
    url = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    for header in ("Basic !!!", "Bearer abc", "Basic " + "YWJj", ""):
        r = await twilio.api.get(url, headers={"Authorization": header} if header else {})
        assert r.status_code == 401
        assert r.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
        assert r.headers["www-authenticate"].startswith("Basic")


async def test_resources_not_served_are_twilio_404s(twilio: TwilioEnv) -> None:
    for path in ("/2010-04-01/Accounts/AC1/Calls.json", "/2010-04-01/Nothing"):
        r = await twilio.api.get(path)
        assert r.status_code == 404
        assert r.json()["code"] == 20404


async def test_hostile_list_and_update_input_is_a_twilio_400(twilio: TwilioEnv) -> None:
    auth = (twilio.account_sid, twilio.auth_token)
    base = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages"
    for query in (
        "PageSize=0",
        "PageSize=abc",
        "Page=-1",
        "PageToken=PAxyz",
        "PageToken=" + "PX" + "SM" + "0" * 32,
        "DateSent=yesterday",
        "DateSent%3C=2026-13-40",
    ):
        r = await twilio.api.get(f"{base}.json?{query}", auth=auth)
        assert r.status_code == 400, query
        assert r.json()["code"] == 20001, query
    r = await twilio.api.post(f"{base}/SM{'0' * 32}.json", data={"Status": "delivered"}, auth=auth)
    assert r.json()["code"] == 20001
    r = await twilio.api.post(f"{base}.json", content=b"\xff\xfe=\x00&To", auth=auth)
    assert r.json()["code"] == 21604
    many = [("To", "+14155550123"), ("From", "+14155550100")]
    many += [("MediaUrl", f"https://example.com/{i}.png") for i in range(11)]
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = await twilio.api.post(f"{base}.json", content=urlencode(many), headers=form, auth=auth)
    assert r.json()["code"] == 21623


async def test_the_openapi_schema_lists_the_twilio_paths(twilio: TwilioEnv) -> None:
    schema = (await twilio.api.get("/openapi.json")).json()
    assert "/2010-04-01/Accounts/{AccountSid}/Messages.json" in schema["paths"]
    assert "/api/v1/vas/twilio-credentials" in schema["paths"]


async def test_guessing_credentials_is_throttled_per_address(
    twilio: TwilioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(credentials, "CHECKS_PER_MINUTE", 5)
    url = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    codes = []
    for guess in range(7):
        r = await twilio.api.get(url, auth=(twilio.account_sid, f"guess-{guess}"))
        codes.append(r.json()["code"])
    assert codes == [20003] * 5 + [20429] * 2
    assert int(r.headers["retry-after"]) > 0
    right = await twilio.api.get(url, auth=(twilio.account_sid, twilio.auth_token))
    assert right.status_code == 429  # even the right token waits: guesses learn nothing
