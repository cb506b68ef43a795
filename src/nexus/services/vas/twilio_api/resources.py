"""Nexus messages in Twilio's Message resource shape.

A message's SID is `SM` + the 32 hex digits of its Nexus id (a UUID), so each maps to the
other without a lookup and the SID never changes.
"""

from __future__ import annotations

import re
import uuid
from email.utils import format_datetime
from typing import Any

from nexus.kernel.db import utcnow
from nexus.services.vas.models import Message
from nexus.services.vas.twilio_api.models import TwilioMessage

API_VERSION = "2010-04-01"
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")

# Nexus status -> Twilio status
STATUS = {
    "accepted": "accepted",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "rejected": "failed",
    "expired": "failed",
    "canceled": "canceled",
    "received": "received",
}
# Nexus error codes that are not already Twilio's numeric codes -> Twilio's code
ERROR_CODES = {
    "opted_out": 21610,
    "no_provider": 21612,
    "providers_failed": 30008,
    "expired": 30001,
    "unreachable": 30003,
    "invalid_to": 21211,
}
UNKNOWN_ERROR = 30008


def message_sid(message_id: str) -> str:
    return "SM" + uuid.UUID(message_id).hex


def message_id(sid: str) -> str | None:
    """The Nexus id behind a message SID, or None when it is not one of ours."""
    if not _MESSAGE_SID.match(sid):
        return None
    return str(uuid.UUID(sid[2:]))


def twilio_status(message: Message) -> str:
    if message.status == "queued" and message.send_at and message.send_at > utcnow():
        return "scheduled"
    return STATUS.get(message.status, message.status)


def error_code(code: str | None) -> int | None:
    if not code:
        return None
    if code.isdigit():
        return int(code)
    return ERROR_CODES.get(code, UNKNOWN_ERROR)


def address(channel: str, value: str | None) -> str | None:
    if value is None or channel != "whatsapp" or value.startswith("whatsapp:"):
        return value
    return f"whatsapp:{value}"


def format_date(value: Any) -> str | None:
    return format_datetime(value) if value is not None else None


def message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


def resource(message: Message, account_sid: str, extra: TwilioMessage | None) -> dict[str, Any]:
    """The Message resource, field for field as Twilio returns it."""
    sid = message_sid(message.id)
    uri = message_uri(account_sid, sid)
    content = message.content or {}
    media = 0
    if content.get("media"):
        media = 1 + len((message.metadata_ or {}).get("media_urls") or [])
    sender = extra.sender if extra is not None and extra.sender else message.sender
    price = None
    if message.cost is not None:
        price = f"{-message.cost:.5f}" if message.cost else "0.00000"
    error = error_code(message.error_code)
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": message.body or "",
        "date_created": format_date(message.created_at),
        "date_sent": format_date(message.sent_at),
        "date_updated": format_date(message.updated_at),
        "direction": "inbound" if message.direction == "inbound" else "outbound-api",
        "error_code": error,
        "error_message": message.error_reason if error is not None else None,
        "from": address(message.channel, sender),
        "messaging_service_sid": extra.messaging_service_sid if extra is not None else None,
        "num_media": str(media),
        "num_segments": str(message.segments),
        "price": price,
        "price_unit": message.currency or "USD",
        "sid": sid,
        "status": twilio_status(message),
        "subresource_uris": {
            "media": uri.removesuffix(".json") + "/Media.json",
            "feedback": uri.removesuffix(".json") + "/Feedback.json",
        },
        "to": address(message.channel, message.to),
        "uri": uri,
    }
