"""Delivery reports: applied in the provider's webhook request, or queued until they can be.

A report moves its message forward, never back (see `lifecycle`). Most reports arrive
after the message was recorded `sent`: the webhook request applies them itself, and
the reports of concurrent requests share one transaction (`Reports`, a coalescer).
A report that beats our own record of the send (the provider answered the callback
before the dispatcher committed), or whose message is not found yet, becomes a
`vas.status` job, which waits for the message with short retries. The sandbox's
simulated reports take the job path too, delayed like a real network.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.coalesce import Coalescer
from nexus.kernel.db import Database
from nexus.kernel.events import Job, enqueue, job_id_for
from nexus.kernel.queue import Permanent, Retry
from nexus.kernel.service import HandlerContext
from nexus.services.vas import lifecycle
from nexus.services.vas.models import Message
from nexus.services.vas.providers.base import StatusUpdate

STATUS_QUEUE = "vas.status"
NOT_SENT_YET = frozenset({"accepted", "queued", "sending"})


def payload_of(
    provider_type: str, update_: StatusUpdate, message_id: str | None = None
) -> dict[str, Any]:
    return {
        "provider_type": provider_type,
        "provider_message_id": update_.provider_message_id,
        "status": update_.status,
        "error_code": update_.error_code,
        "error_message": update_.error_message,
        "message_id": message_id,
        "at": update_.at.isoformat() if update_.at else None,
        "cost": str(update_.cost) if update_.cost is not None else None,
        "currency": update_.currency,
    }


async def enqueue_status(
    session: AsyncSession,
    org_id: str,
    provider_type: str,
    update_: StatusUpdate,
    *,
    delay_s: float = 0,
    message_id: str | None = None,
) -> None:
    """Queue a report as a `vas.status` job (once per provider id, status and error)."""
    key = job_id_for(
        STATUS_QUEUE,
        provider_type,
        update_.provider_message_id,
        update_.status,
        update_.error_code or "",
    )
    payload = payload_of(provider_type, update_, message_id)
    await enqueue(session, STATUS_QUEUE, payload, org_id=org_id, delay_s=delay_s, job_id=key)


def apply_report(session: AsyncSession, message: Message, p: dict[str, Any]) -> None:
    """Move `message` as the report `p` (a `payload_of`) says; record it either way."""
    at = dt.datetime.fromisoformat(p["at"]) if p.get("at") else None
    if p.get("cost") is not None:
        message.cost = Decimal(p["cost"])
        message.currency = p.get("currency") or message.currency
    if p["status"] in {"undelivered", "failed"}:
        message.error_code = p.get("error_code") or message.error_code
        message.error_reason = p.get("error_message") or message.error_reason
    new = "delivered" if p["status"] == "read" else p["status"]
    if p["status"] == "read":
        lifecycle.record(
            session, message, "read", kind="receipt", provider_id=message.provider_id, at=at
        )
    if new in lifecycle.RANK:
        lifecycle.move(
            session,
            message,
            new,
            provider_id=message.provider_id,
            at=at,
            reason=p.get("error_message"),
            data={"provider_status": p["status"]},
        )


def _outbound(org_id: str, provider_type: str) -> Any:
    return select(Message).where(
        Message.org_id == org_id,
        Message.provider_type == provider_type,
        Message.direction == "outbound",
    )


async def apply_status(job: Job, ctx: HandlerContext) -> None:
    """The `vas.status` job: apply a queued report once its message is marked sent."""
    assert ctx.session is not None
    p = job.payload
    stmt = _outbound(job.org_id or "", p["provider_type"])
    if p.get("message_id"):
        stmt = stmt.where(Message.id == p["message_id"])
    else:
        stmt = stmt.where(Message.provider_message_id == p["provider_message_id"])
    message = await ctx.session.scalar(stmt)
    if message is None or message.status in NOT_SENT_YET:
        # The report beat our own record of the send: wait for it a little.
        if job.attempt >= 6:
            raise Permanent(f"no message for {p['provider_type']} id {p['provider_message_id']}")
        raise Retry("message not marked sent yet", delay_s=0.2 * job.attempt)
    apply_report(ctx.session, message, p)


Report = tuple[str, str, StatusUpdate]  # org id, provider type, the report


class Reports:
    """Applies the reports of concurrent webhook requests in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._writes: Coalescer[Report, None] = Coalescer(self._apply, name="vas-reports")

    async def apply(self, org_id: str, provider_type: str, update_: StatusUpdate) -> None:
        """Apply the report now, or queue it when its message is not recorded sent yet;
        returns once either is committed."""
        await self._writes.submit((org_id, provider_type, update_))

    async def close(self) -> None:
        await self._writes.close()

    async def _apply(self, reports: list[Report]) -> list[None]:
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for org_id, provider_type, update_ in reports:
            wanted[org_id, provider_type].add(update_.provider_message_id)
        async with self.db.transaction() as session:
            found: dict[tuple[str, str, str | None], Message] = {}
            for (org_id, provider_type), ids in wanted.items():
                stmt = (
                    _outbound(org_id, provider_type)
                    .where(Message.provider_message_id.in_(ids))
                    .order_by(Message.id)
                    .with_for_update()
                )
                for message in await session.scalars(stmt):
                    found[org_id, provider_type, message.provider_message_id] = message
            for org_id, provider_type, update_ in reports:
                message = found.get((org_id, provider_type, update_.provider_message_id))
                if message is None or message.status in NOT_SENT_YET:
                    await enqueue_status(session, org_id, provider_type, update_)
                else:
                    apply_report(session, message, payload_of(provider_type, update_))
        return [None] * len(reports)
