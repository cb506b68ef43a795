"""Accepting messages: validate, normalize, check consent, store durably, queue.

Nothing is stored for invalid input (the API answers 4xx). A message to an opted-out
recipient, or on a channel the org has no provider for, is stored as `rejected` with
the reason, so it shows in the log. Everything else is stored `queued` with a dispatch
job in the same transaction, so a crash after the API answered loses nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.errors import Problem
from nexus.kernel.events import NewJob, enqueue_many
from nexus.kernel.ids import new_id
from nexus.services.vas import encoding, lifecycle
from nexus.services.vas.accounts import Route
from nexus.services.vas.addresses import CHANNELS, InvalidAddress, normalize
from nexus.services.vas.lifecycle import emit_status
from nexus.services.vas.models import Consent, Message, MessageEvent
from nexus.services.vas.settings import MAX_BODY

if TYPE_CHECKING:
    from nexus.services.vas.state import Vas

DISPATCH_QUEUE = "vas.dispatch"


class InvalidMessage(Problem):
    status = 422
    slug = "invalid-message"


@dataclass
class SendRequest:
    channel: str
    to: str
    body: str | None = None
    sender: str | None = None
    subject: str | None = None
    template: dict[str, Any] | None = None
    media: dict[str, Any] | None = None  # {url, type}
    location: dict[str, float] | None = None
    send_at: dt.datetime | None = None
    ttl_s: int | None = None
    region: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    request: SendRequest
    to: str
    encoding: str | None
    segments: int


def prepare(request: SendRequest, default_region: str | None) -> Prepared:
    """Validate and normalize; raises InvalidMessage (422) naming the field."""
    if request.channel not in CHANNELS:
        raise InvalidMessage(
            f"Unknown channel {request.channel!r}; use one of {', '.join(CHANNELS)}.",
            field="channel",
        )
    try:
        to = normalize(request.channel, request.to, request.region or default_region)
    except InvalidAddress as exc:
        raise InvalidMessage(str(exc), field="to", code="invalid_to") from None
    body = request.body
    if body is not None and not body.strip():
        body = None
    if body is None and not (request.template or request.media or request.location):
        raise InvalidMessage(
            "The message is empty: give a body, a template, media or a location.", field="body"
        )
    limit = MAX_BODY[request.channel]
    if body is not None and len(body) > limit:
        raise InvalidMessage(
            f"The body has {len(body)} characters; {request.channel} allows {limit}.", field="body"
        )
    if request.template and request.channel not in {"whatsapp", "messenger"}:
        raise InvalidMessage(
            "Provider templates exist on whatsapp and messenger only.", field="template"
        )
    if request.location and request.channel != "telegram":
        raise InvalidMessage("Locations can be sent on telegram only.", field="location")
    if request.ttl_s is not None and not 1 <= request.ttl_s <= 7 * 86_400:
        raise InvalidMessage("ttl_s must be between 1 s and 7 days.", field="ttl_s")
    enc, segments = None, 1
    if request.channel == "sms" and body is not None:
        info = encoding.analyze(body)
        enc, segments = info.encoding, info.segments
    request.body = body
    return Prepared(request, to, enc, segments)


async def opted_out(
    session: AsyncSession, org_id: str, pairs: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (channel, address) pairs among `pairs` that opted out, in one query."""
    if not pairs:
        return set()
    rows = await session.execute(
        select(Consent.channel, Consent.address).where(
            Consent.org_id == org_id,
            Consent.opted_out.is_(True),
            Consent.channel.in_({channel for channel, _ in pairs}),
            Consent.address.in_({address for _, address in pairs}),
        )
    )
    return {(channel, address) for channel, address in rows} & pairs


async def by_idempotency_key(session: AsyncSession, org_id: str, key: str) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.org_id == org_id, Message.idempotency_key == key)
    )


@dataclass
class NewMessage:
    """What accepting one message writes: its row, its first history steps, its job."""

    row: dict[str, Any]
    history: list[dict[str, Any]]
    job: NewJob | None

    @property
    def status(self) -> str:
        return str(self.row["status"])


def new_message(
    org_id: str,
    prepared: Prepared,
    *,
    routes: list[Route],
    opted_out: bool,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> NewMessage:
    """Decide and build (nothing is written): `queued` with a dispatch job, or `rejected`
    with the reason (opted-out recipient, no provider for the channel)."""
    request = prepared.request
    now = now or utcnow()
    cost = None
    if routes:
        cost = min(r.candidate.cost_per_unit for r in routes) * prepared.segments
    content = {
        key: value
        for key in ("template", "media", "location", "subject")
        if (value := getattr(request, key))
    }
    message_id = new_id()
    error_code = reason = None
    if opted_out:
        error_code, reason = "opted_out", "The recipient opted out of this channel."
    elif not routes:
        error_code = "no_provider"
        reason = f"No enabled provider for {request.channel} in this org."
    status = "rejected" if error_code else "queued"
    row: dict[str, Any] = {
        "id": message_id,
        "org_id": org_id,
        "channel": request.channel,
        "direction": "outbound",
        "to": prepared.to,
        "sender": request.sender,
        "body": request.body,
        "content": content,
        "status": status,
        "provider_id": None,
        "provider_type": None,
        "provider_message_id": None,
        "encoding": prepared.encoding,
        "segments": prepared.segments,
        "estimated_cost": Decimal(cost) if cost is not None else None,
        "cost": None,
        "currency": routes[0].account.currency if routes else None,
        "error_code": error_code,
        "error_reason": reason,
        "attempts": 0,
        "send_at": request.send_at,
        # validity counts from when the message may go out (send_at), not from acceptance
        "expires_at": (
            max(now, request.send_at or now) + dt.timedelta(seconds=request.ttl_s)
            if request.ttl_s
            else None
        ),
        "idempotency_key": idempotency_key,
        "metadata_": request.metadata,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "done_at": now if error_code else None,
    }
    history = [
        lifecycle.step(org_id, message_id, "accepted", at=now),
        lifecycle.step(org_id, message_id, status, reason=reason, at=now),
    ]
    job = None
    if status == "queued":
        job = NewJob(
            {"message_id": message_id},
            job_id=message_id,
            org_id=org_id,
            run_at=request.send_at if request.send_at and request.send_at > now else None,
        )
    return NewMessage(row, history, job)


async def store(
    vas: Vas,
    session: AsyncSession,
    org_id: str,
    prepared: Prepared,
    *,
    routes: list[Route],
    idempotency_key: str | None = None,
) -> Message:
    """Store one prepared message (queued with its job, or rejected) in `session`.

    For callers that accept a message inside a unit of work of their own; the API's send
    endpoints go through the `Acceptor`, which commits many requests' messages at once.
    `routes` are the org's providers for the channel, looked up by the caller *before*
    its transaction: a lookup inside it would hold a second pooled connection."""
    pair = (prepared.request.channel, prepared.to)
    new = new_message(
        org_id,
        prepared,
        routes=routes,
        opted_out=bool(await opted_out(session, org_id, {pair})),
        idempotency_key=idempotency_key,
    )
    message = Message(**new.row)
    session.add(message)
    session.add_all(MessageEvent(**step) for step in new.history)
    if new.job is not None:
        await enqueue_many(session, DISPATCH_QUEUE, [new.job])
    else:
        emit_status(session, message)
    return message
