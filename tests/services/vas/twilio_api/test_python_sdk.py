"""The official `twilio` Python package, pointed at Nexus by its API domain's base URL:
create, fetch, list with paging, cancel, redact, delete, and Twilio-shaped errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.conftest import eventually
from tests.services.vas.twilio_api.conftest import TwilioEnv

T = TypeVar("T")
TO = "+14155550123"
FROM = "+14155550100"


def sdk(env: TwilioEnv, username: str | None = None, password: str | None = None) -> Client:
    client = Client(username or env.account_sid, password or env.auth_token, env.account_sid)
    client.api.base_url = env.base_url  # the one-line change
    return client


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The SDK blocks (requests); run it off the loop that serves Nexus."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def error_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        await call(fn, *args, **kwargs)
    return caught.value


async def test_create_and_fetch_a_message(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    message = await call(client.messages.create, to=TO, from_=FROM, body="Hello from Twilio code")
    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert message.status == "queued"
    assert message.account_sid == twilio.account_sid
    assert (message.to, message.from_, message.body) == (TO, FROM, "Hello from Twilio code")
    assert message.num_segments == "1"
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert isinstance(message.date_created, dt.datetime)
    assert message.uri == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages/{message.sid}.json"

    async def delivered() -> bool:
        fetched = await call(client.messages(message.sid).fetch)
        return fetched.status == "delivered"

    await eventually(delivered)
    fetched = await call(client.messages(message.sid).fetch)
    assert fetched.sid == message.sid
    assert isinstance(fetched.date_sent, dt.datetime)
    assert fetched.price == "-0.00750"
    assert fetched.price_unit == "USD"
    assert fetched.error_code is None


async def test_list_pages_through_every_message_newest_first(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    sids = [
        (await call(client.messages.create, to=TO, from_=FROM, body=f"n{i}")).sid for i in range(5)
    ]
    page = await call(client.messages.page, page_size=2)
    assert [m.sid for m in page] == sids[::-1][:2]
    second = await call(page.next_page)
    assert [m.sid for m in second] == sids[::-1][2:4]
    back = await call(second.previous_page)
    assert [m.sid for m in back] == sids[::-1][:2]
    listed = await call(client.messages.list, page_size=2)  # follows next_page_uri
    assert [m.sid for m in listed] == sids[::-1]
    assert [m.sid for m in await call(client.messages.list, limit=3)] == sids[::-1][:3]


async def test_list_filters_by_to_from_and_date_sent(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    other = "+14155550199"
    mine = await call(client.messages.create, to=TO, from_=FROM, body="a")
    await call(client.messages.create, to=other, from_=FROM, body="b")
    assert [m.sid for m in await call(client.messages.list, to=TO)] == [mine.sid]
    assert len(await call(client.messages.list, from_=FROM)) == 2
    assert await call(client.messages.list, from_="+14155550111") == []
    today = dt.datetime.now(dt.UTC).date()
    assert len(await call(client.messages.list, date_sent=today.isoformat())) == 2
    assert len(await call(client.messages.list, date_sent=today)) == 2  # sent as midnight
    yesterday = today - dt.timedelta(days=1)
    assert await call(client.messages.list, date_sent=yesterday) == []
    assert len(await call(client.messages.list, date_sent_after=today)) == 2
    assert await call(client.messages.list, date_sent_before=yesterday) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert await call(client.messages.list, date_sent_after=later) == []
    assert len(await call(client.messages.list, date_sent_before=later)) == 2


async def test_cancel_a_scheduled_message(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    scheduled = await call(
        client.messages.create,
        to=TO,
        messaging_service_sid="MG" + "0" * 32,
        body="later",
        schedule_type="fixed",
        send_at=send_at,
    )
    assert scheduled.status == "scheduled"
    assert scheduled.messaging_service_sid == "MG" + "0" * 32
    canceled = await call(client.messages(scheduled.sid).update, status="canceled")
    assert canceled.status == "canceled"
    again = await error_of(client.messages(scheduled.sid).update, status="canceled")
    assert (again.code, again.status) == (30409, 400)


async def test_redact_and_delete_a_finished_message(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    message = await call(client.messages.create, to=TO, from_=FROM, body="secret 1234")
    early = await error_of(client.messages(message.sid).delete)
    assert early.code == 20009 or early.code == 404  # delivered already on a fast machine

    async def delivered() -> bool:
        return (await call(client.messages(message.sid).fetch)).status == "delivered"

    await eventually(delivered)
    redacted = await call(client.messages(message.sid).update, body="")
    assert redacted.body == ""
    history = (await twilio.nexus_message(message.sid))["history"]
    assert any(step["kind"] == "redacted" for step in history)
    assert await call(client.messages(message.sid).delete) is True
    gone = await error_of(client.messages(message.sid).fetch)
    assert (gone.code, gone.status) == (20404, 404)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "12", "from_": FROM, "body": "x"}, 21211),
        ({"to": TO, "from_": FROM, "body": ""}, 21602),
        ({"to": TO, "from_": FROM, "body": "x" * 1601}, 21617),
        ({"to": TO, "body": "x"}, 21603),
        ({"to": TO, "from_": "not a number!", "body": "x"}, 21212),
        ({"to": "whatsapp:" + TO, "from_": FROM, "body": "x"}, 21910),
        ({"to": TO, "from_": FROM, "body": "x", "status_callback": "ftp://x"}, 21609),
        ({"to": TO, "from_": FROM, "body": "x", "validity_period": 0}, 20001),
    ],
)
async def test_bad_requests_are_twilio_errors_and_store_nothing(
    twilio: TwilioEnv, fields: dict[str, Any], code: int
) -> None:
    error = await error_of(sdk(twilio).messages.create, **fields)
    assert (error.code, error.status) == (code, 400)
    log = await twilio.api.get("/api/v1/messages", headers=twilio.headers())
    assert log.json()["items"] == []


async def test_missing_to_is_21604(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    error = await error_of(client.api.v2010.account.messages.create, to="", from_=FROM, body="x")
    assert error.code == 21604


async def test_opted_out_recipient_is_21610_and_logged(twilio: TwilioEnv) -> None:
    r = await twilio.api.put(
        "/api/v1/consents",
        json={"channel": "sms", "address": TO, "opted_out": True},
        headers=twilio.headers(),
    )
    assert r.status_code in (200, 201), r.text
    error = await error_of(sdk(twilio).messages.create, to=TO, from_=FROM, body="hi")
    assert (error.code, error.status) == (21610, 400)
    assert "unsubscribed" in error.msg
    log = (await twilio.api.get("/api/v1/messages", headers=twilio.headers())).json()["items"]
    assert [(m["status"], m["error_code"]) for m in log] == [("rejected", "opted_out")]


async def test_wrong_credentials_are_20003(twilio: TwilioEnv) -> None:
    wrong = await error_of(
        sdk(twilio, password="0" * 32).messages.create, to=TO, from_=FROM, body="x"
    )
    assert (wrong.code, wrong.status) == (20003, 401)
    other_sid, other_token = await twilio.create_account()
    client = Client(other_sid, other_token, twilio.account_sid)  # a path of another account
    client.api.base_url = twilio.base_url
    mismatch = await error_of(client.messages.create, to=TO, from_=FROM, body="x")
    assert mismatch.code == 20003


async def test_api_keys_authenticate_until_revoked(twilio: TwilioEnv) -> None:
    r = await twilio.api.post(
        f"/api/v1/vas/twilio-credentials/{twilio.account_sid}/keys",
        json={"friendly_name": "ci"},
        headers=twilio.headers(),
    )
    assert r.status_code == 201, r.text
    key = r.json()
    assert key["sid"].startswith("SK")
    assert key["account_sid"] == twilio.account_sid
    client = sdk(twilio, key["sid"], key["secret"])
    sent = await call(client.messages.create, to=TO, from_=FROM, body="via key")
    assert sent.account_sid == twilio.account_sid
    r = await twilio.api.delete(
        f"/api/v1/vas/twilio-credentials/{key['sid']}", headers=twilio.headers()
    )
    assert r.status_code == 204
    revoked = await error_of(client.messages.create, to=TO, from_=FROM, body="x")
    assert revoked.code == 20003


async def test_messages_of_another_org_are_not_found(twilio: TwilioEnv) -> None:
    mine = await call(sdk(twilio).messages.create, to=TO, from_=FROM, body="org a")
    await twilio.add_provider("org-b")
    sid_b, token_b = await twilio.create_account("org-b")
    client_b = Client(sid_b, token_b)
    client_b.api.base_url = twilio.base_url
    error = await error_of(client_b.messages(mine.sid).fetch)
    assert (error.code, error.status) == (20404, 404)
    assert await call(client_b.messages.list) == []
    assert (await error_of(client_b.messages(mine.sid).update, status="canceled")).code == 20404


async def test_whatsapp_numbers_go_to_the_whatsapp_channel(twilio: TwilioEnv) -> None:
    client = sdk(twilio)
    message = await call(
        client.messages.create, to=f"whatsapp:{TO}", from_=f"whatsapp:{FROM}", body="hola"
    )
    assert (message.to, message.from_) == (f"whatsapp:{TO}", f"whatsapp:{FROM}")
    nexus = await twilio.nexus_message(message.sid)
    assert (nexus["channel"], nexus["to"]) == ("whatsapp", TO)
    listed = await call(client.messages.list, to=f"whatsapp:{TO}")
    assert [m.sid for m in listed] == [message.sid]


async def test_sent_messages_are_in_the_nexus_log_with_routing_history(twilio: TwilioEnv) -> None:
    message = await call(sdk(twilio).messages.create, to=TO, from_=FROM, body="routed")

    async def done() -> bool:
        return (await twilio.nexus_message(message.sid))["status"] == "delivered"

    await eventually(done)
    nexus = await twilio.nexus_message(message.sid)
    assert nexus["from"] == FROM
    assert nexus["body"] == "routed"
    routing = [step for step in nexus["history"] if step["kind"] == "routing"]
    assert routing
    assert routing[0]["data"]["candidates"][0]["name"] == "sandbox sms"
    statuses = [s["status"] for s in nexus["history"] if s["kind"] == "status"]
    assert statuses == ["accepted", "queued", "sending", "sent", "delivered"]


async def test_fetch_the_account(twilio: TwilioEnv) -> None:
    account = await call(sdk(twilio).api.v2010.accounts(twilio.account_sid).fetch)
    assert (account.sid, account.status, account.friendly_name) == (
        twilio.account_sid,
        "active",
        "main",
    )


async def test_idempotency_key_returns_the_first_message(twilio: TwilioEnv) -> None:
    url = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    form = {"To": TO, "From": FROM, "Body": "once"}
    headers = {"Idempotency-Key": "order-7"}
    auth = (twilio.account_sid, twilio.auth_token)
    first = await twilio.api.post(url, data=form, headers=headers, auth=auth)
    again = await twilio.api.post(url, data=form, headers=headers, auth=auth)
    assert first.status_code == again.status_code == 201
    assert first.json()["sid"] == again.json()["sid"]
    log = await twilio.api.get("/api/v1/messages", headers=twilio.headers())
    assert len(log.json()["items"]) == 1


async def test_from_must_be_a_provider_sender_when_providers_have_senders(
    twilio: TwilioEnv,
) -> None:
    await twilio.add_provider("org-s", name="primary", sender=FROM, priority=1)
    await twilio.add_provider("org-s", name="backup", sender="+14155550111", priority=2)
    sid, token = await twilio.create_account("org-s")
    client = Client(sid, token)
    client.api.base_url = twilio.base_url
    error = await error_of(client.messages.create, to=TO, from_="+14155550199", body="x")
    assert (error.code, error.status) == (21606, 400)
    message = await call(client.messages.create, to=TO, from_=FROM, body="x")
    assert message.from_ == FROM
    # each provider the message may fail over to sends from its own number
    assert (await twilio.nexus_message(message.sid, "org-s"))["from"] is None
