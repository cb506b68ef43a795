"""Status callbacks: Twilio's form POST to a message's `StatusCallback` URL on each
status change, signed with `X-Twilio-Signature` under the account's auth token (so
Twilio's own `RequestValidator`s accept it), retried by the work queue.

VAS's consumer of message events (the `webhooks` group) calls `on_message_event`, which
picks the messages that have a callback URL and queues one delivery job per event; the
job is at least once (a receiver may see a status twice, as with Twilio) and is retried
with backoff until the receiver answers 2xx.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import httpx
import structlog
from sqlalchemy import select

from nexus.kernel.db import per_transaction
from nexus.kernel.events import Event, Job, enqueue, job_id_for
from nexus.kernel.queue import Retry
from nexus.kernel.service import HandlerContext
from nexus.services.vas.models import Message
from nexus.services.vas.providers.twilio import signature
from nexus.services.vas.state import vas_of
from nexus.services.vas.twilio_api import resources
from nexus.services.vas.twilio_api.credentials import auth_token
from nexus.services.vas.twilio_api.models import TwilioCredential, TwilioMessage

QUEUE = "vas.twilio_callback"
log = structlog.get_logger("nexus.vas.twilio_callback")


async def on_message_event(event: Event, ctx: HandlerContext) -> None:
    """Queue a callback for a status change of a message that asked for one."""
    session = ctx.session
    assert session is not None
    message_id = event.data.get("message_id")
    if not message_id or not event.org_id:
        return

    async def uses_twilio_api() -> bool:  # revoked credentials count: callbacks may be due
        stmt = select(TwilioCredential.id).where(TwilioCredential.org_id == event.org_id)
        return await session.scalar(stmt.limit(1)) is not None

    if not await per_transaction(session, ("vas.twilio_api", event.org_id), uses_twilio_api):
        return  # most orgs: no message of theirs can have a Twilio status callback
    row = await session.get(TwilioMessage, message_id)
    if row is None or not row.status_callback or row.org_id != event.org_id:
        return
    if event.data.get("status") == "rejected":
        return  # refused at creation: the client got an error (21610, 21612), not a SID
    await enqueue(
        session,
        QUEUE,
        {
            "message_id": message_id,
            "status": event.data.get("status"),
            "error_code": event.data.get("error_code"),
        },
        org_id=event.org_id,
        job_id=job_id_for(QUEUE, event.id),
    )


def form(
    message: Message, extra: TwilioMessage, status: str, error: str | None
) -> list[tuple[str, str]]:
    """Twilio's status callback fields for `message` in Nexus status `status`."""
    sid = resources.message_sid(message.id)
    twilio_status = resources.STATUS.get(status, status)
    sender = resources.address(message.channel, extra.sender or message.sender)
    fields = [
        ("AccountSid", extra.account_sid),
        ("ApiVersion", resources.API_VERSION),
        ("From", sender or ""),
        ("MessageSid", sid),
        ("MessageStatus", twilio_status),
        ("SmsSid", sid),
        ("SmsStatus", twilio_status),
        ("To", resources.address(message.channel, message.to) or ""),
    ]
    if extra.messaging_service_sid:
        fields.append(("MessagingServiceSid", extra.messaging_service_sid))
    code = resources.error_code(error) if twilio_status in {"failed", "undelivered"} else None
    if code is not None:
        fields.append(("ErrorCode", str(code)))
        if message.error_reason:
            fields.append(("ErrorMessage", message.error_reason[:500]))
    return fields


async def deliver(job: Job, ctx: HandlerContext) -> None:
    vas = vas_of(ctx.runtime)
    message_id = job.payload["message_id"]
    async with vas.db.read() as session:
        message = await session.get(Message, message_id)
        extra = await session.get(TwilioMessage, message_id)
        account = None
        if extra is not None:
            account = await session.scalar(
                select(TwilioCredential).where(
                    TwilioCredential.sid == extra.account_sid,
                    TwilioCredential.kind == "account",
                )
            )
    if message is None or extra is None or not extra.status_callback:
        return  # deleted since
    if account is None or account.revoked_at is not None:
        log.info("twilio_callback.skipped", message_id=message_id, reason="account revoked")
        return
    url = extra.status_callback
    fields = form(message, extra, job.payload["status"], job.payload.get("error_code"))
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "TwilioProxy/1.1 (Nexus)",
        "x-twilio-signature": signature(auth_token(vas, account), url, fields),
    }
    target = urlsplit(url)._replace(query="", fragment="").geturl()  # queries may hold secrets
    try:
        response = await vas.http.post(url, content=urlencode(fields), headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        log.info(
            "twilio_callback.failed", url=target, attempt=job.attempt, error=type(exc).__name__
        )
        raise Retry(f"{type(exc).__name__} calling the status callback") from None
    if not 200 <= response.status_code < 300:
        log.info(
            "twilio_callback.failed", url=target, attempt=job.attempt, status=response.status_code
        )
        raise Retry(f"status callback answered HTTP {response.status_code}")
