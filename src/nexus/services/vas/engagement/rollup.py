"""Hourly rollups of `vas_messages`, so analytics stay fast at tens of millions of messages.

A background loop (`rollup_loop`, every `INTERVAL_S`) aggregates, with INSERT ... SELECT
GROUP BY in the database, every hour older than the last `LIVE_HOURS` into
`vas_message_stats` (counts, segments, cost per org, hour, channel, direction, provider,
status, currency) and `vas_latency_stats` (accepted→sent and accepted→delivered
latencies in log-spaced bins). Hours before `vas_stats_state.settled_until` are read from
those tables; later ones are aggregated live from `vas_messages`. A message that changes
after its hour was settled (a late delivery report) is found by its `updated_at`, and its
hour is aggregated again. Messages loaded in bulk outside Nexus keep old `updated_at`
values: delete the `vas_stats_state` row and the next pass rolls everything up. One
process does it at a time (an advisory lock on PostgreSQL; one writer anyway on
SQLite); each day of hours is one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import structlog
from sqlalchemy import ColumnElement, case, delete, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database, utcnow
from nexus.kernel.runtime import Runtime
from nexus.services.vas.engagement.models import LatencyStats, MessageStats, StatsState
from nexus.services.vas.models import Message

log = structlog.get_logger("nexus.vas.rollup")
LIVE_HOURS = 1  # the current hour and the one before are aggregated live
INTERVAL_S = 30.0
STATE = "messages"
LOCK_ID = 0x7661735F726F6C6C  # "vas_roll"
# upper bounds (ms) of the latency bins; the last bin is everything slower
BOUNDS_MS = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500,
    2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 1_800_000, 3_600_000,
)  # fmt: skip
HOUR = dt.timedelta(hours=1)
CHECK_OVERLAP = dt.timedelta(seconds=60)


def floor_hour(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def hour_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC hour of a timestamp column, in the column's own storage format."""
    if dialect == "postgresql":
        return func.timezone("UTC", func.date_trunc("hour", func.timezone("UTC", column)))
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)


def latency_ms(dialect: str, end: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", end - Message.created_at) * 1000
    return (func.julianday(end) - func.julianday(Message.created_at)) * 86_400_000.0


def bin_of(ms: ColumnElement[Any]) -> ColumnElement[Any]:
    # half a millisecond of slack: SQLite's julianday arithmetic is not exact to the ms
    return case(
        *[(ms <= bound + 0.5, i) for i, bound in enumerate(BOUNDS_MS)], else_=len(BOUNDS_MS)
    )


def bin_range(index: int) -> tuple[float, float]:
    low = float(BOUNDS_MS[index - 1]) if index > 0 else 0.0
    high = float(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else low * 2
    return low, high


def _range(since: dt.datetime, until: dt.datetime, org_id: str | None) -> list[Any]:
    where = [Message.created_at >= since, Message.created_at < until]
    if org_id is not None:
        where.append(Message.org_id == org_id)
    return where


def message_facts(
    dialect: str, since: dt.datetime, until: dt.datetime, *, org_id: str | None = None
) -> Any:
    """SELECT of `vas_message_stats` rows computed from the messages of [since, until)."""
    hour = hour_of(dialect, Message.created_at)
    keys = (
        hour,
        Message.channel,
        Message.direction,
        func.coalesce(Message.provider_id, ""),
        func.coalesce(Message.provider_type, ""),
        Message.status,
        func.coalesce(Message.currency, ""),
    )
    return (
        select(
            Message.org_id,
            *keys,
            func.count(),
            func.coalesce(func.sum(Message.segments), 0),
            func.coalesce(func.sum(func.coalesce(Message.cost, Message.estimated_cost, 0)), 0),
            func.coalesce(func.sum(func.coalesce(Message.estimated_cost, 0)), 0),
        )
        .where(*_range(since, until, org_id))
        .group_by(Message.org_id, *keys)
    )


def latency_facts(
    dialect: str, since: dt.datetime, until: dt.datetime, kind: str, *, org_id: str | None = None
) -> Any:
    end, condition = (
        (Message.sent_at, Message.sent_at.is_not(None))
        if kind == "sent"
        else (Message.done_at, (Message.status == "delivered") & Message.done_at.is_not(None))
    )
    hour = hour_of(dialect, Message.created_at)
    bin_ = bin_of(latency_ms(dialect, end))
    return (
        select(Message.org_id, hour, Message.channel, literal(kind), bin_, func.count())
        .where(*_range(since, until, org_id), Message.direction == "outbound", condition)
        .group_by(Message.org_id, hour, Message.channel, bin_)
    )


async def _settle(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> None:
    dialect = session.bind.dialect.name
    for model in (MessageStats, LatencyStats):
        await session.execute(delete(model).where(model.hour >= since, model.hour < until))
    columns = [
        "org_id", "hour", "channel", "direction", "provider_id", "provider_type", "status",
        "currency", "messages", "segments", "cost", "estimated_cost",
    ]  # fmt: skip
    await session.execute(
        insert(MessageStats).from_select(columns, message_facts(dialect, since, until))
    )
    for kind in ("sent", "done"):
        await session.execute(
            insert(LatencyStats).from_select(
                ["org_id", "hour", "channel", "kind", "bin", "messages"],
                latency_facts(dialect, since, until, kind),
            )
        )


async def _late_hours(
    session: AsyncSession, checked_at: dt.datetime, settled: dt.datetime
) -> list[dt.datetime]:
    """Settled hours with a message changed since `checked_at`."""
    hour = hour_of(session.bind.dialect.name, Message.created_at)
    rows = await session.scalars(
        select(hour)
        .where(Message.updated_at >= checked_at, Message.created_at < settled)
        .group_by(hour)
    )
    out = []
    for value in rows:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        out.append(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return sorted(out)


async def _lock(session: AsyncSession) -> None:
    """Serialize rollups for this transaction (PostgreSQL; SQLite has one writer)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_ID})"))


async def _state(session: AsyncSession) -> StatsState:
    state = await session.get(StatsState, STATE, with_for_update=True)
    if state is None:
        state = StatsState(name=STATE)
        session.add(state)
        await session.flush()
    return state


async def refresh(db: Database, *, now: dt.datetime | None = None) -> int:
    """Settle what is due; returns how many hours were (re)aggregated."""
    now = now or utcnow()
    boundary = floor_hour(now) - LIVE_HOURS * HOUR
    async with db.transaction() as session:
        await _lock(session)
        state = await _state(session)
        settled, checked = state.settled_until, state.checked_at
        if settled is None:
            first = await session.scalar(select(func.min(Message.created_at)))
            settled = floor_hour(first) if first else boundary
        late = await _late_hours(session, checked, settled) if checked else []
    spans = [(h, h + HOUR) for h in late]
    start = settled
    while start < boundary:  # a day of hours per transaction
        end = min(boundary, start + 24 * HOUR)
        spans.append((start, end))
        start = end
    for since, until in spans:
        async with db.transaction() as session:
            await _lock(session)
            await _settle(session, since, until)
            state = await _state(session)
            state.settled_until = max(until, state.settled_until or until)
            state.updated_at = utcnow()
    async with db.transaction() as session:
        await _lock(session)
        state = await _state(session)
        state.settled_until = max(boundary, settled, state.settled_until or boundary)
        # overlap: a change stamped before `now` may commit after it
        state.checked_at = now - CHECK_OVERLAP
        state.updated_at = utcnow()
    hours = sum(int((b - a) / HOUR) for a, b in spans)
    if hours:
        log.info("analytics rollup", hours=hours, settled_until=str(state.settled_until))
    return hours


async def settled_until(session: AsyncSession) -> dt.datetime | None:
    state = await session.get(StatsState, STATE)
    return state.settled_until if state else None


async def rollup_loop(runtime: Runtime) -> None:
    """Keep the hourly stats up to date (a service worker)."""
    db = runtime.db("vas")
    while True:
        try:
            await refresh(db)
        except Exception:
            log.exception("analytics rollup failed; trying again later")
        await asyncio.sleep(INTERVAL_S)
