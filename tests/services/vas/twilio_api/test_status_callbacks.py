"""StatusCallback: Nexus posts Twilio's form fields, signed so that the SDK's own
RequestValidator accepts them, and retries until the receiver answers 2xx."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from nexus.testing.fakes.sink import WebhookSink
from tests.services.vas.twilio_api.conftest import TwilioEnv
from tests.services.vas.twilio_api.test_python_sdk import FROM, TO, call, sdk


async def test_callbacks_carry_twilio_fields_and_validate(twilio: TwilioEnv) -> None:
    async with WebhookSink() as sink:
        url = sink.url("/twilio/status?customer=42")
        message = await call(
            sdk(twilio).messages.create, to=TO, from_=FROM, body="hi", status_callback=url
        )
        received = await sink.wait(2, timeout_s=15)
    validator = RequestValidator(twilio.auth_token)
    statuses = set()
    for request in received:
        form = request.form()
        assert validator.validate(url, form, request.headers["x-twilio-signature"])
        assert not RequestValidator("another-token").validate(
            url, form, request.headers["x-twilio-signature"]
        )
        assert form["MessageSid"] == form["SmsSid"] == message.sid
        assert form["AccountSid"] == twilio.account_sid
        assert (form["To"], form["From"], form["ApiVersion"]) == (TO, FROM, "2010-04-01")
        assert form["SmsStatus"] == form["MessageStatus"]
        assert "ErrorCode" not in form
        statuses.add(form["MessageStatus"])
    assert statuses == {"sent", "delivered"}


async def test_undelivered_callback_has_an_error_code(twilio: TwilioEnv) -> None:
    async with WebhookSink() as sink:
        await call(
            sdk(twilio).messages.create,
            to="+14155550001",  # the sandbox never delivers to ...0001
            from_=FROM,
            body="hi",
            status_callback=sink.url("/status"),
        )
        received = await sink.wait(2, timeout_s=15)
    final = [r.form() for r in received if r.form()["MessageStatus"] == "undelivered"]
    assert final
    assert final[0]["ErrorCode"] == "30003"
    assert final[0]["ErrorMessage"] == "Handset unreachable (simulated)."


async def test_a_failing_receiver_gets_the_callback_again(twilio: TwilioEnv) -> None:
    async with WebhookSink(status=503) as sink:
        await call(
            sdk(twilio).messages.create,
            to=TO,
            from_=FROM,
            body="hi",
            status_callback=sink.url("/status"),
        )
        await sink.wait(2, timeout_s=15)  # both statuses tried once, refused
        sink.status = 200
        received = await sink.wait(4, timeout_s=20)  # and retried
    assert {r.form()["MessageStatus"] for r in received[2:]} <= {"sent", "delivered"}


async def test_no_callback_without_a_url(twilio: TwilioEnv) -> None:
    async with WebhookSink() as sink:
        await call(sdk(twilio).messages.create, to=TO, from_=FROM, body="quiet")
        with_url = await call(
            sdk(twilio).messages.create,
            to=TO,
            from_=FROM,
            body="loud",
            status_callback=sink.url("/s"),
        )
        received = await sink.wait(2, timeout_s=15)
    assert {r.form()["MessageSid"] for r in received} == {with_url.sid}


async def test_no_callback_for_a_refused_send(twilio: TwilioEnv) -> None:
    await twilio.api.put(
        "/api/v1/consents",
        json={"channel": "sms", "address": TO, "opted_out": True},
        headers=twilio.headers(),
    )
    async with WebhookSink() as sink:
        form = {"To": TO, "From": FROM, "Body": "x", "StatusCallback": sink.url("/s")}
        url = f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
        auth = (twilio.account_sid, twilio.auth_token)
        refused = await twilio.api.post(url, data=form, auth=auth)
        assert refused.json()["code"] == 21610
        form["To"] = "+14155550124"
        assert (await twilio.api.post(url, data=form, auth=auth)).status_code == 201
        received = await sink.wait(2, timeout_s=15)  # the second message's callbacks only
    assert {r.form()["To"] for r in received} == {"+14155550124"}
