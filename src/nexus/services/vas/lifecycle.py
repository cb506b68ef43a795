"""The message lifecycle: statuses only move forward, every step is recorded.

accepted → queued → sending → sent → delivered | undelivered | failed, plus rejected
(never queued), expired (validity passed before sending) and canceled. A delivery report
that arrives late or out of order is recorded in the history but never moves a message
backwards or out of a final state.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.services.vas.models import Message, MessageEvent

RANK = {
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "rejected": 4,
    "expired": 4,
    "canceled": 4,
    "received": 4,  # inbound messages start and end here
}
FINAL = frozenset(s for s, r in RANK.items() if r == 4)
# Statuses published as events (and so to customers' webhooks); the steps before `sent`
# are internal and only kept in the history.
PUBLISHED = (FINAL - {"received"}) | {"sent"}
STATUSES = tuple(RANK)


def can_move(current: str, new: str) -> bool:
    return current not in FINAL and RANK[new] > RANK[current]


def event_data(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "channel": message.channel,
        "direction": message.direction,
        "to": message.to,
        "status": message.status,
        "provider_id": message.provider_id,
        "provider_message_id": message.provider_message_id,
        "error_code": message.error_code,
        "segments": message.segments,
        "metadata": message.metadata_,
    }


def step(
    org_id: str,
    message_id: str,
    status: str,
    *,
    kind: str = "status",
    provider_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One history row (the columns of `MessageEvent`)."""
    return {
        "id": new_id(),
        "org_id": org_id,
        "message_id": message_id,
        "status": status,
        "kind": kind,
        "provider_id": provider_id,
        "reason": reason,
        "data": data or {},
        "at": at or utcnow(),
    }


def record(
    session: AsyncSession,
    message: Message,
    status: str,
    *,
    kind: str = "status",
    provider_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    session.add(
        MessageEvent(
            **step(
                message.org_id,
                message.id,
                status,
                kind=kind,
                provider_id=provider_id,
                reason=reason,
                data=data,
                at=at,
            )
        )
    )


def emit_status(session: AsyncSession, message: Message) -> None:
    """Publish the message's current status (`nexus.vas.message.<status>`)."""
    emit(session, f"nexus.vas.message.{message.status}", event_data(message), org_id=message.org_id)


def move(
    session: AsyncSession,
    message: Message,
    new: str,
    *,
    provider_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
    publish: bool | None = None,
) -> bool:
    """Move `message` to `new` when that is forward; record it either way."""
    when = at or utcnow()
    if not can_move(message.status, new):
        record(
            session,
            message,
            new,
            kind="ignored",
            provider_id=provider_id,
            at=when,
            reason=f"arrived while {message.status}" + (f": {reason}" if reason else ""),
            data=data,
        )
        return False
    message.status = new
    message.updated_at = when
    if new == "sent":
        message.sent_at = when
    if new in FINAL:
        message.done_at = when
    record(session, message, new, provider_id=provider_id, reason=reason, data=data, at=when)
    if publish or (publish is None and new in PUBLISHED):
        emit_status(session, message)
    return True
