"""Dispatching queued messages to providers, with failover.

`vas.dispatch` jobs run outside a transaction (a provider call must never hold the
database): read the message, choose providers, try them in order — a retryable error
or a timeout fails over to the next one at once — then record the outcome in one short
transaction, shared with the jobs finishing at the same time (`message_batches`). When
every provider failed retryably the job is retried with backoff; a message whose
attempts run out ends `failed`. Delivery reports are `reports`' business.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.events import Job
from nexus.kernel.queue import Retry
from nexus.kernel.service import HandlerContext
from nexus.services.vas import lifecycle
from nexus.services.vas.models import Message
from nexus.services.vas.providers.base import OutboundMessage, ProviderError, StatusUpdate
from nexus.services.vas.reports import enqueue_status
from nexus.services.vas.state import Vas, vas_of

log = structlog.get_logger("nexus.vas.dispatch")


def outbound(message: Message, sender: str | None) -> OutboundMessage:
    content = message.content or {}
    media = content.get("media") or {}
    ttl = None
    if message.expires_at:
        ttl = max(1, int((message.expires_at - utcnow()).total_seconds()))
    return OutboundMessage(
        id=message.id,
        channel=message.channel,
        to=message.to,
        body=message.body,
        sender=message.sender or sender,
        encoding=message.encoding,
        segments=message.segments,
        media_url=media.get("url"),
        media_type=media.get("type"),
        template=content.get("template"),
        location=content.get("location"),
        subject=content.get("subject"),
        validity_s=ttl,
        metadata=message.metadata_ or {},
    )


async def _final(vas: Vas, message_id: str, status: str, *, reason: str, error_code: str) -> None:
    async def change(session: AsyncSession, message: Message) -> None:
        message.error_code = error_code
        lifecycle.move(session, message, status, reason=reason)

    await vas.batches.update(message_id, change)


async def dispatch(job: Job, ctx: HandlerContext) -> None:
    vas = vas_of(ctx.runtime)
    message_id = job.payload["message_id"]
    message = await vas.batches.get(message_id)
    if message is None or message.status in lifecycle.FINAL or message.status == "sent":
        return  # done already (a redelivered job): nothing to do twice
    now = utcnow()
    if message.expires_at and message.expires_at <= now:
        await _final(
            vas,
            message_id,
            "expired",
            reason="The validity period passed before sending.",
            error_code="expired",
        )
        return
    if message.send_at and message.send_at > now:
        raise Retry("scheduled", delay_s=(message.send_at - now).total_seconds())

    routes = await vas.accounts.routes(message.org_id, message.channel)
    country = None
    if message.channel in {"sms", "whatsapp"}:
        from nexus.services.vas.addresses import country_of

        country = country_of(message.to)
    choice = vas.router.choose([r.candidate for r in routes], country)
    by_id = {r.candidate.id: r for r in routes}
    attempts: list[dict[str, Any]] = []
    started_sending = utcnow()
    if not choice.order:
        reason = "No provider available (all circuits open or none serves the destination)."
        await _note_attempts(vas, message_id, choice.explanation, attempts, retry_reason=reason)
        if job.attempt >= vas.settings.max_attempts:
            await _final(vas, message_id, "failed", reason=reason, error_code="no_provider")
            return
        raise Retry(reason, delay_s=min(30.0, 0.5 * 2**job.attempt))

    for candidate in choice.order:
        route = by_id[candidate.id]
        wait = await vas.router.acquire(candidate, message.segments)
        if wait > 0:
            attempts.append(
                {"provider_id": candidate.id, "outcome": "rate_limited", "wait_s": round(wait, 3)}
            )
            continue
        vas.router.started(candidate.id)
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                route.adapter.send(outbound(message, route.account.sender)),
                timeout=vas.settings.send_timeout_s,
            )
        except Exception as exc:  # a provider failure of any kind: classify, maybe fail over
            elapsed = (time.perf_counter() - t0) * 1000
            retryable, code, text = _classify(exc)
            attempts.append(
                {
                    "provider_id": candidate.id,
                    "outcome": "error",
                    "retryable": retryable,
                    "code": code,
                    "error": text,
                    "ms": round(elapsed, 1),
                }
            )
            if retryable:
                vas.router.failed(candidate.id, elapsed)
                continue
            vas.router.succeeded(candidate.id, elapsed)  # the provider works; the message is bad
            await _record_sent_or_failed(
                vas,
                message_id,
                choice.explanation,
                attempts,
                started_sending,
                failed=(code, text, candidate.id),
            )
            return
        elapsed = (time.perf_counter() - t0) * 1000
        vas.router.succeeded(candidate.id, elapsed)
        attempts.append(
            {
                "provider_id": candidate.id,
                "outcome": "sent",
                "ms": round(elapsed, 1),
                "provider_message_id": result.provider_message_id,
            }
        )
        report = None
        make_report = getattr(route.adapter, "delivery_report", None)
        if make_report is not None:  # the sandbox 'delivers' through the status path
            report = make_report(outbound(message, route.account.sender), result)
        await _record_sent_or_failed(
            vas,
            message_id,
            choice.explanation,
            attempts,
            started_sending,
            sent=(candidate.id, route.account.type, result),
            report=report,
        )
        return

    reason = "Every provider failed or was busy; retrying."
    await _note_attempts(vas, message_id, choice.explanation, attempts, retry_reason=reason)
    if job.attempt >= vas.settings.max_attempts:
        await _final(
            vas,
            message_id,
            "failed",
            reason="Every provider failed; attempts exhausted.",
            error_code="providers_failed",
        )
        return
    waits = [a["wait_s"] for a in attempts if a["outcome"] == "rate_limited"]
    raise Retry(reason, delay_s=min(waits) if waits and len(waits) == len(attempts) else None)


def _classify(exc: BaseException) -> tuple[bool, str | None, str]:
    """(fail over to the next provider?, code, text)."""
    if isinstance(exc, ProviderError):
        return exc.retryable or exc.provider_fault, exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return True, "timeout", "The provider did not answer in time."
    return True, type(exc).__name__, str(exc)[:500]


async def _note_attempts(
    vas: Vas,
    message_id: str,
    explanation: list[dict[str, Any]],
    attempts: list[dict[str, Any]],
    retry_reason: str,
) -> None:
    async def change(session: AsyncSession, message: Message) -> None:
        message.attempts += 1
        lifecycle.record(
            session,
            message,
            message.status,
            kind="routing",
            reason=retry_reason,
            data={"candidates": explanation, "attempts": attempts},
        )

    await vas.batches.update(message_id, change)


async def _record_sent_or_failed(
    vas: Vas,
    message_id: str,
    explanation: list[dict[str, Any]],
    attempts: list[dict[str, Any]],
    started: Any,
    *,
    sent: tuple[str, str, Any] | None = None,
    failed: tuple[str | None, str, str] | None = None,
    report: tuple[float, StatusUpdate] | None = None,
) -> None:
    async def change(session: AsyncSession, message: Message) -> None:
        if message.status in lifecycle.FINAL:
            return
        message.attempts += 1
        chosen = sent[0] if sent else (failed[2] if failed else None)
        lifecycle.record(
            session,
            message,
            "sending",
            kind="routing",
            provider_id=chosen,
            reason="routing decision",
            at=started,
            data={"candidates": explanation, "attempts": attempts},
        )
        if message.status == "queued":
            lifecycle.move(session, message, "sending", provider_id=chosen, at=started)
        if sent:
            provider_id, provider_type, result = sent
            message.provider_id, message.provider_type = provider_id, provider_type
            message.provider_message_id = result.provider_message_id
            if result.segments:
                message.segments = result.segments
            lifecycle.move(session, message, "sent", provider_id=provider_id)
            if report is not None:  # in the same transaction: a crash cannot lose it
                delay, update_ = report
                await enqueue_status(
                    session,
                    message.org_id,
                    provider_type,
                    update_,
                    delay_s=delay,
                    message_id=message.id,
                )
        elif failed:
            code, text, provider_id = failed
            message.provider_id = provider_id
            message.error_code, message.error_reason = code, text
            lifecycle.move(session, message, "failed", provider_id=provider_id, reason=text)

    await vas.batches.update(message_id, change)


async def cancel(vas: Vas, session: Any, message: Message) -> bool:
    """Cancel a message that has not been sent yet."""
    if message.status not in {"accepted", "queued"}:
        return False
    return lifecycle.move(session, message, "canceled", reason="Canceled by the API.")
