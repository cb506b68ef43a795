"""Reconciliation: ask providers about messages whose delivery report never came.

A provider's delivery callback can be lost (our endpoint was down, the provider gave up
retrying), leaving a message `sent` for good. A run looks up, oldest first, the messages
`sent` longer than `reconcile_after_s` (and not longer than `reconcile_max_age_s`) whose
provider has a status lookup (`ProviderAdapter.status_lookup`), at most
`reconcile_rate_per_s` lookups a second per provider account. A final status found is
recorded in the message's history (kind `reconcile`) and queued, in the same
transaction, as a `vas.status` job, which applies it as a delivery report: it never
moves a message backwards, and a second run that finds the same status changes nothing.
A provider that does not know the message, or does not answer, leaves it `sent` for a
later run.

Every process's `reconcile_loop` enqueues the job of the next interval under one id, so
each interval's run is one job, leased by one worker. After its lookups the job
refreshes the gauge of messages that stay unconfirmed past their validity or the
maximum age.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge
from sqlalchemy import and_, func, or_, select

from nexus.kernel.db import Database, utcnow
from nexus.kernel.events import Job, enqueue, job_id_for
from nexus.kernel.metrics import REGISTRY
from nexus.kernel.ratelimit import RateLimiter
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import HandlerContext, JobHandler
from nexus.services.vas import lifecycle
from nexus.services.vas.models import Message, MessageEvent
from nexus.services.vas.providers import ADAPTERS, adapter_class
from nexus.services.vas.providers.base import ProviderAdapter, SentMessage, StatusUpdate
from nexus.services.vas.reports import enqueue_status
from nexus.services.vas.settings import VasSettings
from nexus.services.vas.state import Vas, vas_of

log = structlog.get_logger("nexus.vas.reconcile")

QUEUE = "vas.reconcile"
KIND = "reconcile"  # the history rows of reconciliation
FINAL = frozenset({"delivered", "read", "undelivered", "failed"})
PAGE = 200
PARALLEL_PROVIDERS = 8

LOOKUPS = MetricCounter(
    "nexus_vas_reconcile_lookups_total",
    "Status lookups of messages without a delivery report, by provider type and outcome.",
    ["provider_type", "outcome"],
    registry=REGISTRY,
)
UNCONFIRMED = Gauge(
    "nexus_vas_unconfirmed_messages",
    "Messages still `sent` past their validity (providers without a status lookup) or the "
    "reconciliation's maximum age, by provider type.",
    ["provider_type"],
    registry=REGISTRY,
)


def _types(*, lookup: bool) -> list[str]:
    """Provider types that report deliveries, with (or without) a status lookup."""
    classes = {t: adapter_class(t) for t in ADAPTERS}
    return [t for t, c in classes.items() if c.delivery_reports and c.status_lookup == lookup]


@dataclass(frozen=True)
class Candidate:
    id: str
    org_id: str
    provider_id: str
    provider_type: str
    provider_message_id: str
    sent_at: dt.datetime


@dataclass
class Summary:
    """What a run did. Outcomes: `applied` (a final status queued), `pending` (the
    provider has no final status yet), `unknown` (the provider does not know the id),
    `error` (no answer; a later run asks again), `skipped` (changed meanwhile, or another
    run applied it first), `no_lookup` (the account is gone or cannot be asked)."""

    checked: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)  # final statuses found
    stopped_early: bool = False  # the time budget ran out

    def count(self, outcome: str, provider_type: str, dry_run: bool) -> None:
        self.checked += 1
        self.outcomes[outcome] += 1
        if not dry_run:
            LOOKUPS.labels(provider_type, outcome).inc()


async def _candidates(
    db: Database,
    types: list[str],
    *,
    until: dt.datetime,
    since: dt.datetime,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[Candidate]:
    stmt = select(
        Message.id,
        Message.org_id,
        Message.provider_id,
        Message.provider_type,
        Message.provider_message_id,
        Message.sent_at,
    ).where(
        Message.status == "sent",
        Message.direction == "outbound",
        Message.provider_type.in_(types),
        Message.provider_id.is_not(None),
        Message.provider_message_id.is_not(None),
        Message.sent_at <= until,
        Message.sent_at >= since,
    )
    if after is not None:
        stmt = stmt.where(
            or_(
                Message.sent_at > after[0], and_(Message.sent_at == after[0], Message.id > after[1])
            )
        )
    stmt = stmt.order_by(Message.sent_at, Message.id).limit(limit)
    async with db.read() as session:
        rows = (await session.execute(stmt)).all()
    return [Candidate(*row) for row in rows]


async def _apply(vas: Vas, candidate: Candidate, update: StatusUpdate) -> bool:
    """Record the found status and queue it for `vas.status`, once per message and
    status (the row lock, or SQLite's single writer, orders concurrent runs)."""
    async with vas.db.transaction() as session:
        message = await session.scalar(
            select(Message).where(Message.id == candidate.id).with_for_update()
        )
        if message is None or message.status != "sent":
            return False
        done_before = await session.scalar(
            select(MessageEvent.id)
            .where(
                MessageEvent.message_id == message.id,
                MessageEvent.kind == KIND,
                MessageEvent.status == update.status,
            )
            .limit(1)
        )
        if done_before is not None:
            return False
        minutes = max(1, round((utcnow() - candidate.sent_at).total_seconds() / 60))
        lifecycle.record(
            session,
            message,
            update.status,
            kind=KIND,
            provider_id=message.provider_id,
            reason=(
                f"No delivery report {minutes} min after sending: "
                f"the provider's status lookup says {update.status}."
            ),
            data={"source": "reconciliation", "error_code": update.error_code},
        )
        await enqueue_status(
            session, message.org_id, candidate.provider_type, update, message_id=message.id
        )
    return True


class _Run:
    def __init__(self, vas: Vas, *, dry_run: bool, deadline: float) -> None:
        self.vas, self.dry_run, self.deadline = vas, dry_run, deadline
        self.summary = Summary()
        self.limiter = RateLimiter(vas.runtime.redis, prefix="nexus:vas:reconcile")
        self._parallel = asyncio.Semaphore(PARALLEL_PROVIDERS)

    async def adapter(self, provider_id: str) -> ProviderAdapter | None:
        account = await self.vas.accounts.by_id(provider_id)  # cached by Accounts
        if account is None:
            return None
        adapter = self.vas.accounts.adapter(account)
        return adapter if adapter.status_lookup else None

    async def _pace(self, provider_id: str) -> bool:
        """Wait for the provider's rate limit (shared by every process through Redis);
        False when the run's time is up first."""
        rate = self.vas.settings.reconcile_rate_per_s
        while time.monotonic() < self.deadline:
            wait = await self.limiter.hit("lookup", provider_id, rate, 1.0)
            if not wait:
                return True
            await asyncio.sleep(min(wait, 0.1))
        return False

    async def one(self, candidate: Candidate) -> str | None:
        """The outcome for one message; None when the run's time ran out first."""
        adapter = await self.adapter(candidate.provider_id)
        if adapter is None:
            return "no_lookup"
        if not await self._pace(candidate.provider_id):
            return None
        sent = SentMessage(candidate.id, candidate.sent_at)
        try:
            update = await asyncio.wait_for(
                adapter.fetch_status(candidate.provider_message_id, sent),
                timeout=self.vas.settings.send_timeout_s,
            )
        except Exception as exc:  # no answer of any kind: leave it for a later run
            log.warning(
                "status lookup failed",
                provider_id=candidate.provider_id,
                message_id=candidate.id,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return "error"
        if update is None:
            return "unknown"
        if update.status not in FINAL:
            return "pending"
        self.summary.found[update.status] += 1
        if self.dry_run:
            return "applied"
        return "applied" if await _apply(self.vas, candidate, update) else "skipped"

    async def provider(
        self, candidates: list[Candidate], on_checked: Callable[[Candidate, str], None]
    ) -> None:
        """One provider's messages, in order (its rate limit paces them)."""
        async with self._parallel:
            for candidate in candidates:
                outcome = await self.one(candidate) if time.monotonic() < self.deadline else None
                if outcome is None:
                    self.summary.stopped_early = True
                    return
                self.summary.count(outcome, candidate.provider_type, self.dry_run)
                on_checked(candidate, outcome)


async def reconcile(
    vas: Vas,
    *,
    older_than_s: float | None = None,
    dry_run: bool = False,
    budget_s: float | None = None,
    on_page: Callable[[int], None] | None = None,
    on_checked: Callable[[Candidate, str], None] | None = None,
) -> Summary:
    """Look up every message `sent` longer than `older_than_s` (the setting by default)
    and apply the final statuses found (`dry_run`: only count them)."""
    settings = vas.settings
    now = utcnow()
    until = now - dt.timedelta(
        seconds=settings.reconcile_after_s if older_than_s is None else older_than_s
    )
    since = now - dt.timedelta(seconds=settings.reconcile_max_age_s)
    run = _Run(
        vas,
        dry_run=dry_run,
        deadline=time.monotonic() + (settings.reconcile_budget_s if budget_s is None else budget_s),
    )
    types = _types(lookup=True)
    after: tuple[dt.datetime, str] | None = None
    while not run.summary.stopped_early:
        page = await _candidates(vas.db, types, until=until, since=since, after=after, limit=PAGE)
        if not page:
            break
        if on_page is not None:
            on_page(len(page))
        groups: dict[str, list[Candidate]] = {}
        for candidate in page:
            groups.setdefault(candidate.provider_id, []).append(candidate)
        await asyncio.gather(
            *(run.provider(group, on_checked or _ignore) for group in groups.values())
        )
        after = (page[-1].sent_at, page[-1].id)
        if len(page) < PAGE:
            break
    if run.summary.checked:
        log.info(
            "reconciliation",
            checked=run.summary.checked,
            dry_run=dry_run,
            **dict(run.summary.outcomes),
        )
    return run.summary


def _ignore(_candidate: Candidate, _outcome: str) -> None:
    return None


async def count_unconfirmed(vas: Vas) -> dict[str, int]:
    """Messages still `sent` that nothing will confirm any more: past the maximum age
    (any provider that reports deliveries), or past their validity where the provider
    cannot be asked. Sets the gauge; returns the counts by provider type."""
    now = utcnow()
    too_old = Message.sent_at < now - dt.timedelta(seconds=vas.settings.reconcile_max_age_s)
    expired = and_(
        Message.provider_type.in_(_types(lookup=False)),
        Message.expires_at.is_not(None),
        Message.expires_at < now,
    )
    stmt = (
        select(Message.provider_type, func.count())
        .where(
            Message.status == "sent",
            Message.direction == "outbound",
            Message.provider_type.in_(_types(lookup=True) + _types(lookup=False)),
            or_(too_old, expired),
        )
        .group_by(Message.provider_type)
    )
    async with vas.db.read() as session:
        counts = {str(t): int(n) for t, n in (await session.execute(stmt)).all()}
    for provider_type in ADAPTERS:
        UNCONFIRMED.labels(provider_type).set(counts.get(provider_type, 0))
    return counts


async def run_job(job: Job, ctx: HandlerContext) -> None:
    """The `vas.reconcile` job: one run, then the gauge."""
    vas = vas_of(ctx.runtime)
    await reconcile(vas)
    await count_unconfirmed(vas)


async def schedule_next(db: Database, interval_s: float, now_s: float | None = None) -> str:
    """Enqueue the run of the next interval; every process asks for the same job id, so
    the interval has one run (the job waits until then, which keeps the id taken)."""
    window = int((time.time() if now_s is None else now_s) // interval_s) + 1
    run_at = dt.datetime.fromtimestamp(window * interval_s, dt.UTC)
    async with db.transaction() as session:
        return await enqueue(
            session, QUEUE, {}, run_at=run_at, job_id=job_id_for(QUEUE, str(window))
        )


async def reconcile_loop(runtime: Runtime) -> None:
    """A service worker: schedules each interval's run shortly before it starts. Every
    process does so within the same minute, inside the bus's duplicate window (2 min),
    so the run is one job on NATS as on the SQL queue."""
    settings = vas_of(runtime).settings
    if not settings.reconcile_enabled:
        return
    interval = settings.reconcile_interval_s
    lead = min(interval / 2, 60.0)
    while True:
        now = time.time()
        at = (now // interval + 1) * interval - lead
        if at < now:
            at += interval
        await asyncio.sleep(at - now)
        try:
            await schedule_next(vas_of(runtime).db, interval, now_s=at)
        except Exception as exc:
            log.warning("could not schedule reconciliation", error=str(exc))
        await asyncio.sleep(lead)


def job_handler(settings: VasSettings) -> JobHandler:
    """The queue's handler: one run at a time per process, leased for longer than a run
    may take."""
    return JobHandler(
        QUEUE,
        run_job,
        transactional=False,
        concurrency=1,
        max_attempts=3,
        lease_s=settings.reconcile_budget_s + 2 * settings.send_timeout_s + 60,
    )
