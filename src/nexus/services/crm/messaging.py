"""Texting and e-mailing contacts through VAS's API, and VAS's message events on timelines.

Sending goes through VAS's published API (`POST /api/v1/messages/send`) with the
caller's credentials, so VAS checks `vas:message:send`, consent and routing itself; the
message is then an outbound `message` activity on the contact (and deal) timeline, whose
status follows VAS's status events. Inbound messages (`nexus.vas.message.received`) from
an address a contact has land on that contact's timeline, and on the deal of the last
message sent to that address, if any.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.client import service_client
from nexus.kernel.db import utcnow
from nexus.kernel.errors import BadRequest, Problem
from nexus.kernel.events import Event
from nexus.kernel.service import HandlerContext
from nexus.services.crm import activities, normalize
from nexus.services.crm.contacts import by_address
from nexus.services.crm.models import Activity, Contact

THREAD_DAYS = 30
ADDRESS_KIND = {"sms": "phone", "whatsapp": "phone", "email": "email"}
STATUS_RANK = {
    "queued": 0,
    "sent": 1,
    "delivered": 2,
    "undelivered": 2,
    "failed": 2,
    "rejected": 2,
    "expired": 2,
}


def recipient(contact: Contact, channel: str, to: str | None) -> str:
    kind = ADDRESS_KIND[channel]
    known = contact.phones if kind == "phone" else contact.emails
    if to is None:
        if not known:
            raise BadRequest(
                f"The contact has no {'phone' if kind == 'phone' else 'e-mail'} for {channel}.",
                slug="no-address",
            )
        return known[0]
    try:
        value = normalize.phone(to, None) if kind == "phone" else normalize.email(to)
    except normalize.InvalidValue as exc:
        raise BadRequest(f"to: {exc}") from None
    if value not in known:
        raise BadRequest("`to` must be one of the contact's addresses.", slug="unknown-address")
    return value


async def send(
    request: Request,
    contact: Contact,
    *,
    channel: str,
    to: str,
    body: str,
    subject: str | None,
    deal_id: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Ask VAS to send; returns VAS's message, or raises VAS's problem as ours."""
    payload: dict[str, Any] = {
        "channel": channel,
        "to": to,
        "body": body,
        "metadata": {"crm_contact_id": contact.id, **({"crm_deal_id": deal_id} if deal_id else {})},
    }
    if subject:
        payload["subject"] = subject
    headers = {"Idempotency-Key": f"crm:{idempotency_key}"} if idempotency_key else {}
    async with service_client(request, "vas") as vas:
        response = await vas.post("/messages/send", json=payload, headers=headers)
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        status = response.status_code if response.status_code < 500 else 502
        raise Problem(
            f"VAS refused the message: {problem.get('detail') or response.reason_phrase}",
            status=status,
            slug="vas-" + str(problem.get("type", "error")).rsplit("/", 1)[-1],
            missing=problem.get("missing"),
        )
    return response.json()  # type: ignore[no-any-return]


async def record_outbound(
    session: AsyncSession,
    contact: Contact,
    actor: str,
    message: dict[str, Any],
    *,
    deal_id: str | None,
    subject: str | None,
) -> Activity:
    existing = await session.scalar(
        select(Activity).where(
            Activity.contact_id == contact.id, Activity.external_id == message["id"]
        )
    )
    if existing is not None:  # an idempotent replay, or made from VAS's event first
        existing.owner_id = existing.owner_id or actor
        existing.body = existing.body or message.get("body")
        existing.subject = existing.subject or subject
        return existing
    return await activities.create(
        session,
        contact.org_id,
        actor,
        {
            "kind": "message",
            "subject": subject,
            "body": message.get("body"),
            "contact_id": contact.id,
            "deal_id": deal_id,
            "direction": "outbound",
            "channel": message.get("channel"),
            "external_id": message["id"],
            "status": message.get("status"),
            "data": {"to": message.get("to")},
        },
    )


async def on_received(event: Event, ctx: HandlerContext) -> None:
    """`nexus.vas.message.received`: on the timeline of each contact with that address."""
    session, data = ctx.session, event.data
    channel = str(data.get("channel") or "")
    if session is None or not event.org_id or channel not in ADDRESS_KIND:
        return
    # the session may carry other orgs' events of the same batch: filter by org explicitly
    sender = str(data.get("from") or "")
    try:
        address = (
            normalize.phone(sender, None)
            if ADDRESS_KIND[channel] == "phone"
            else normalize.email(sender)
        )
    except normalize.InvalidValue:
        return
    for contact in await by_address(session, event.org_id, ADDRESS_KIND[channel], address):
        message_id = str(data.get("message_id") or event.id)
        exists = await session.scalar(
            select(Activity.id).where(
                Activity.contact_id == contact.id, Activity.external_id == message_id
            )
        )
        if exists:
            continue
        await activities.create(
            session,
            event.org_id,
            None,
            {
                "kind": "message",
                "body": data.get("body"),
                "contact_id": contact.id,
                "deal_id": await _thread_deal(session, contact.id, address),
                "direction": "inbound",
                "channel": channel,
                "external_id": message_id,
                "status": "received",
                "data": {"from": address, "keyword": data.get("keyword")},
            },
        )


async def _thread_deal(session: AsyncSession, contact_id: str, address: str) -> str | None:
    """The deal of the latest message sent to this contact's address in the last 30 days."""
    since = utcnow() - dt.timedelta(days=THREAD_DAYS)
    rows = await session.execute(
        select(Activity.deal_id, Activity.data)
        .where(
            Activity.contact_id == contact_id,
            Activity.kind == "message",
            Activity.direction == "outbound",
            Activity.occurred_at >= since,
        )
        .order_by(Activity.id.desc())
        .limit(20)
    )
    for deal_id, data in rows:
        if (data or {}).get("to") == address:
            return deal_id  # type: ignore[no-any-return]
    return None


async def on_status(event: Event, ctx: HandlerContext) -> None:
    """`nexus.vas.message.<status>`: the outbound activity shows where its message is.

    A message sent from the CRM whose activity is missing (the CRM's transaction failed
    after VAS accepted it) gets one from the event's metadata."""
    session, data = ctx.session, event.data
    status = event.type.rsplit(".", 1)[-1]
    message_id = str(data.get("message_id") or "")
    if session is None or not event.org_id or status == "received" or not message_id:
        return
    rows = list(
        await session.scalars(
            select(Activity).where(
                Activity.org_id == event.org_id,
                Activity.external_id == message_id,
                Activity.direction == "outbound",
            )
        )
    )
    for activity in rows:
        if STATUS_RANK.get(status, 0) >= STATUS_RANK.get(activity.status or "", 0):
            activity.status = status
            activity.updated_at = utcnow()
    metadata = data.get("metadata") or {}
    contact_id = metadata.get("crm_contact_id")
    if not rows and isinstance(contact_id, str):
        contact = await session.get(Contact, contact_id)
        if contact is not None and contact.org_id == event.org_id:
            deal_id = metadata.get("crm_deal_id")
            await activities.create(
                session,
                event.org_id,
                None,
                {
                    "kind": "message",
                    "contact_id": contact.id,
                    "deal_id": deal_id if isinstance(deal_id, str) else None,
                    "direction": "outbound",
                    "channel": data.get("channel"),
                    "external_id": message_id,
                    "status": status,
                    "data": {"to": data.get("to")},
                },
            )
    await session.flush()
