"""Turning a Twilio `Create Message` form into a Nexus send, through VAS's own pipeline
(`prepare` / `store`: the same validation, consent check, routing and dispatch job)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

from nexus.services.vas.accounts import Route
from nexus.services.vas.addresses import InvalidAddress, normalize_phone
from nexus.services.vas.messages import (
    InvalidMessage,
    Prepared,
    SendRequest,
    by_idempotency_key,
    prepare,
    store,
)
from nexus.services.vas.models import Message
from nexus.services.vas.state import Vas
from nexus.services.vas.twilio_api.credentials import TwilioCaller
from nexus.services.vas.twilio_api.errors import TwilioError
from nexus.services.vas.twilio_api.models import TwilioMessage

WHATSAPP = "whatsapp:"
MAX_MEDIA = 10
MAX_VALIDITY_S = 36_000
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SHORT_CODE = re.compile(r"^\d{3,8}$")


@dataclass
class Form:
    """The fields of a Twilio form post; names repeat (MediaUrl), so keep them all."""

    pairs: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


@dataclass
class TwilioSend:
    prepared: Prepared
    sender: str | None  # From as given (without whatsapp:), for the resource
    messaging_service_sid: str | None
    status_callback: str | None


def _sender(raw: str, channel: str) -> str:
    value = raw.strip().removeprefix(WHATSAPP)
    if value.startswith("+") or channel == "whatsapp":
        try:
            return normalize_phone(value)
        except InvalidAddress:
            raise TwilioError(21212, f"The 'From' number {raw} is not a phone number.") from None
    if _SHORT_CODE.match(value) or _ALPHANUMERIC.match(value):
        return value
    raise TwilioError(
        21212, f"The 'From' value {raw} is not a phone number, short code or sender id."
    )


def _callback(raw: str | None) -> str | None:
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname or len(raw) > 2000:
        raise TwilioError(21609, f"The StatusCallback URL {raw} is not a valid http(s) URL.")
    return raw


def _int(form: Form, name: str, low: int, high: int) -> int | None:
    raw = form.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise TwilioError(20001, f"{name} must be a whole number from {low} to {high}.")
    return value


def _send_at(form: Form) -> dt.datetime | None:
    raw = form.get("SendAt")
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise TwilioError(
            20001, "SendAt must be an ISO 8601 time (2030-01-01T12:00:00Z)."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _template(form: Form) -> dict[str, Any] | None:
    content_sid = form.get("ContentSid")
    if not content_sid:
        return None
    template: dict[str, Any] = {"content_sid": content_sid}
    raw = form.get("ContentVariables")
    if raw:
        try:
            variables = json.loads(raw)
        except ValueError:
            variables = None
        if not isinstance(variables, dict):
            raise TwilioError(21656, "ContentVariables must be a JSON object.")
        template["variables"] = variables
    return template


def parse(form: Form, default_region: str | None) -> TwilioSend:
    """Validate a create-message form into a prepared send; TwilioError names the problem."""
    to = (form.get("To") or "").strip()
    if not to:
        raise TwilioError(21604)
    channel = "whatsapp" if to.lower().startswith(WHATSAPP) else "sms"
    raw_from = (form.get("From") or "").strip()
    service_sid = (form.get("MessagingServiceSid") or "").strip() or None
    if service_sid is not None and not _SERVICE_SID.match(service_sid):
        raise TwilioError(20001, f"MessagingServiceSid {service_sid} is not a valid SID.")
    if not raw_from and service_sid is None:
        raise TwilioError(21603)
    if raw_from and raw_from.lower().startswith(WHATSAPP) != (channel == "whatsapp"):
        raise TwilioError(21910)
    sender = _sender(raw_from, channel) if raw_from else None
    media_urls = form.all("MediaUrl")
    if len(media_urls) > MAX_MEDIA:
        raise TwilioError(21623, f"At most {MAX_MEDIA} MediaUrl values per message.")
    for url in media_urls:
        if urlsplit(url).scheme not in {"http", "https"}:
            raise TwilioError(21620, f"MediaUrl {url} is not a valid http(s) URL.")
    body = form.get("Body")
    request = SendRequest(
        channel=channel,
        to=to.removeprefix(WHATSAPP) if channel == "whatsapp" else to,
        body=body,
        sender=sender,
        template=_template(form),
        media={"url": media_urls[0]} if media_urls else None,
        send_at=_send_at(form),
        ttl_s=_int(form, "ValidityPeriod", 1, MAX_VALIDITY_S),
        metadata={"media_urls": media_urls[1:]} if len(media_urls) > 1 else {},
    )
    try:
        prepared = prepare(request, default_region)
    except InvalidMessage as exc:
        raise _twilio_error(exc, body) from None
    return TwilioSend(prepared, sender, service_sid, _callback(form.get("StatusCallback")))


def _twilio_error(exc: InvalidMessage, body: str | None) -> TwilioError:
    field = exc.extra.get("field")
    if field == "to":
        return TwilioError(21211, f"The 'To' number is not a valid phone number: {exc.detail}")
    if field == "body":
        return TwilioError(21617 if body is not None and body.strip() else 21602)
    return TwilioError(20001, exc.detail)


def choose_sender(send: TwilioSend, routes: list[Route]) -> None:
    """Who the message goes out from.

    When the org's providers for the channel have senders of their own, `From` must be
    one of them (else 21606) and the message keeps no sender, so each provider it may be
    routed or failed over to sends from its own number. With no provider senders set up,
    `From` is passed to the provider as given."""
    senders = {r.account.sender for r in routes if r.account.sender}
    if send.sender is None or not senders:
        return
    if send.sender not in senders:
        raise TwilioError(21606)
    send.prepared.request.sender = None


async def accept(
    vas: Vas, caller: TwilioCaller, send: TwilioSend, idempotency_key: str | None
) -> tuple[Message, TwilioMessage | None]:
    """Store the message (queued with its dispatch job, or rejected) and its Twilio row."""
    org_id = caller.org_id
    if idempotency_key:
        replay = await _replay(vas, org_id, idempotency_key)
        if replay is not None:
            return replay
    routes = await vas.accounts.routes(org_id, send.prepared.request.channel)
    choose_sender(send, routes)
    try:
        async with vas.db.transaction(org_id=org_id) as session:
            message = await store(
                vas, session, org_id, send.prepared, routes=routes, idempotency_key=idempotency_key
            )
            extra = TwilioMessage(
                message_id=message.id,
                org_id=org_id,
                account_sid=caller.account_sid,
                sender=send.sender,
                messaging_service_sid=send.messaging_service_sid,
                status_callback=send.status_callback,
                created_at=message.created_at,
            )
            session.add(extra)
    except IntegrityError:  # the same key, concurrently
        replay = await _replay(vas, org_id, idempotency_key or "")
        if replay is None:
            raise
        return replay
    return message, extra


async def _replay(vas: Vas, org_id: str, key: str) -> tuple[Message, TwilioMessage | None] | None:
    async with vas.db.read(org_id=org_id) as session:
        message = await by_idempotency_key(session, org_id, key)
        if message is None:
            return None
        return message, await session.get(TwilioMessage, message.id)


def refusal(message: Message) -> TwilioError | None:
    """The Twilio error for a message Nexus stored as rejected (it stays in the log)."""
    if message.status != "rejected":
        return None
    if message.error_code == "opted_out":
        return TwilioError(21610)
    return TwilioError(21612, message.error_reason)
