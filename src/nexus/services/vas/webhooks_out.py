"""Webhooks to customers' URLs: a consumer of the message events, signed, retried, logged.

Each delivery is signed `X-Nexus-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>`, so receivers can check it and refuse replays older than a few minutes.
A failed delivery (network error, timeout, non-2xx) is retried with exponential backoff
by the work queue; every attempt is logged with the response.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from sqlalchemy import select

from nexus.kernel.crypto import seal, unseal
from nexus.kernel.db import per_transaction
from nexus.kernel.events import Event, Job, enqueue, job_id_for
from nexus.kernel.queue import Retry
from nexus.kernel.service import HandlerContext
from nexus.services.vas.models import Webhook, WebhookDelivery
from nexus.services.vas.state import vas_of

PURPOSE = "vas.webhook-secret"
QUEUE = "vas.webhook"


def seal_secret(secret_key: str, secret: str) -> str:
    return seal(secret_key, PURPOSE, secret)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (documented; used by tests)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


async def on_message_event(event: Event, ctx: HandlerContext) -> None:
    """Fan an event out to the org's matching webhooks (one delivery job each)."""
    session = ctx.session
    assert session is not None

    async def enabled_hooks() -> list[Webhook]:
        stmt = select(Webhook).where(Webhook.org_id == event.org_id, Webhook.enabled.is_(True))
        return list((await session.scalars(stmt)).all())

    hooks = await per_transaction(session, ("vas.webhooks", event.org_id), enabled_hooks)
    for hook in hooks:
        if hook.events and event.type not in hook.events:
            continue
        await enqueue(
            session,
            QUEUE,
            {"webhook_id": hook.id, "event": event.model_dump(mode="json")},
            org_id=event.org_id,
            job_id=job_id_for("vas.webhook", hook.id, event.id),
        )


async def deliver(job: Job, ctx: HandlerContext) -> None:
    vas = vas_of(ctx.runtime)
    event = job.payload["event"]
    async with vas.db.read() as session:
        hook = await session.get(Webhook, job.payload["webhook_id"])
    if hook is None or not hook.enabled:
        return
    body = json.dumps(event, separators=(",", ":")).encode()
    timestamp = int(time.time())
    secret = unseal(vas.secret, PURPOSE, hook.secret_sealed)
    headers = {
        "content-type": "application/json",
        "user-agent": "Nexus-Webhooks/1",
        "x-nexus-event-id": event["id"],
        "x-nexus-event-type": event["type"],
        "x-nexus-signature": sign(secret, timestamp, body),
    }
    started = time.perf_counter()
    status_code, response_body, error = None, None, None
    try:
        response = await vas.http.post(hook.url, content=body, headers=headers, timeout=10)
        status_code, response_body = response.status_code, response.text[:2048]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    ok = status_code is not None and 200 <= status_code < 300
    async with vas.db.transaction() as session:
        session.add(
            WebhookDelivery(
                org_id=hook.org_id,
                webhook_id=hook.id,
                event_id=event["id"],
                event_type=event["type"],
                attempt=job.attempt,
                status_code=status_code,
                response_body=response_body,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                succeeded=ok,
            )
        )
    if not ok:
        raise Retry(error or f"HTTP {status_code}")
