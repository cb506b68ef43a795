"""Messaging analytics over time buckets, computed by SQL aggregation on `vas_messages`.

Every query is one GROUP BY over the org's messages in a time range, served by the index
(org_id, created_at); buckets are truncated timestamps in UTC (hour, day, week starting
Monday, month) on SQLite and PostgreSQL alike. Latency percentiles use
`percentile_cont` on PostgreSQL and window functions on SQLite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.services.vas.models import Message

BUCKETS = ("hour", "day", "week", "month")
_SPAN = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400}
MAX_BUCKETS = 2000

SENT = ("sent", "delivered", "undelivered")
FAILED = ("failed", "undelivered", "expired")
PENDING = ("accepted", "queued", "sending")


@dataclass(frozen=True)
class Window:
    org_id: str
    since: dt.datetime
    until: dt.datetime
    bucket: str
    channel: str | None = None

    def buckets(self) -> int:
        return int((self.until - self.since).total_seconds() // _SPAN[self.bucket]) + 1


def bucket_of(dialect: str, column: Any, bucket: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.date_trunc(bucket, func.timezone("UTC", column))
    if bucket == "week":
        return func.strftime("%Y-%m-%d 00:00:00", column, "weekday 0", "-6 days")
    fmt = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00", "month": "%Y-%m-01 00:00:00"}
    return func.strftime(fmt[bucket], column)


def _iso(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return str(value.isoformat())


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _rate(part: Any, whole: Any) -> float | None:
    return round(float(part or 0) / float(whole), 4) if whole else None


def _where(w: Window, *, direction: str | None = "outbound") -> list[ColumnElement[bool]]:
    clauses = [
        Message.org_id == w.org_id,
        Message.created_at >= w.since,
        Message.created_at < w.until,
    ]
    if direction:
        clauses.append(Message.direction == direction)
    if w.channel:
        clauses.append(Message.channel == w.channel)
    return clauses


def _cost() -> ColumnElement[Any]:
    return func.coalesce(Message.cost, Message.estimated_cost, 0)


def _status_counts() -> list[ColumnElement[Any]]:
    return [
        func.count().label("messages"),
        _count(Message.status.in_(SENT)).label("sent"),
        _count(Message.status == "delivered").label("delivered"),
        _count(Message.status.in_(FAILED)).label("failed"),
        _count(Message.status == "rejected").label("rejected"),
        _count(Message.status.in_(PENDING)).label("pending"),
    ]


def _counts(row: Any) -> dict[str, Any]:
    out = {
        k: int(getattr(row, k) or 0)
        for k in ("messages", "sent", "delivered", "failed", "rejected", "pending")
    }
    out["delivery_rate"] = _rate(out["delivered"], out["sent"])
    out["failure_rate"] = _rate(out["failed"], out["sent"])
    return out


async def overview(session: AsyncSession, w: Window) -> dict[str, Any]:
    bucket = bucket_of(session.bind.dialect.name, Message.created_at, w.bucket).label("bucket")
    stmt = (
        select(
            bucket,
            _count(Message.direction == "inbound").label("inbound"),
            func.sum(case((Message.direction == "outbound", Message.segments), else_=0)).label(
                "segments"
            ),
            func.sum(case((Message.direction == "outbound", _cost()), else_=0)).label("cost"),
            *[
                func.sum(case((Message.direction == "outbound", 1), else_=0)).label("messages"),
                *_status_counts()[1:],
            ],
        )
        .where(*_where(w, direction=None))
        .group_by(bucket)
        .order_by(bucket)
    )
    series, totals = [], {"inbound": 0, "segments": 0, "cost": Decimal(0)}
    summed: dict[str, int] = {}
    for row in (await session.execute(stmt)).all():
        counts = _counts(row)
        item = {"bucket": _iso(row.bucket), "inbound": int(row.inbound or 0), **counts}
        item["segments"], item["cost"] = int(row.segments or 0), Decimal(row.cost or 0)
        series.append(item)
        totals["inbound"] += item["inbound"]
        totals["segments"] += item["segments"]
        totals["cost"] += item["cost"]
        for key in ("messages", "sent", "delivered", "failed", "rejected", "pending"):
            summed[key] = summed.get(key, 0) + counts[key]
    summed.setdefault("messages", 0)
    total = {**totals, **summed}
    total["delivery_rate"] = _rate(summed.get("delivered"), summed.get("sent"))
    return {"totals": total, "series": series}


async def grouped(session: AsyncSession, w: Window, by: str) -> list[dict[str, Any]]:
    """Status counts per bucket and channel (`by="channel"`) or provider (`"provider"`)."""
    bucket = bucket_of(session.bind.dialect.name, Message.created_at, w.bucket).label("bucket")
    keys = [Message.channel] if by == "channel" else [Message.provider_id, Message.provider_type]
    stmt = (
        select(bucket, *keys, *_status_counts(), func.sum(_cost()).label("cost"))
        .where(*_where(w))
        .group_by(bucket, *keys)
        .order_by(bucket, *keys)
    )
    out = []
    for row in (await session.execute(stmt)).all():
        item: dict[str, Any] = {"bucket": _iso(row.bucket)}
        if by == "channel":
            item["channel"] = row.channel
        else:
            item["provider_id"], item["provider_type"] = row.provider_id, row.provider_type
        item.update(_counts(row))
        item["cost"] = Decimal(row.cost or 0)
        out.append(item)
    return out


async def cost_analysis(session: AsyncSession, w: Window) -> dict[str, Any]:
    bucket = bucket_of(session.bind.dialect.name, Message.created_at, w.bucket).label("bucket")
    stmt = (
        select(
            bucket,
            Message.channel,
            Message.currency,
            func.count().label("messages"),
            func.sum(Message.segments).label("segments"),
            func.sum(_cost()).label("cost"),
            func.sum(func.coalesce(Message.estimated_cost, 0)).label("estimated"),
        )
        .where(*_where(w), Message.status != "rejected")
        .group_by(bucket, Message.channel, Message.currency)
        .order_by(bucket, Message.channel, Message.currency)
    )
    series, totals = [], {}
    for row in (await session.execute(stmt)).all():
        cost, messages, segments = Decimal(row.cost or 0), int(row.messages), int(row.segments or 0)
        series.append(
            {
                "bucket": _iso(row.bucket),
                "channel": row.channel,
                "currency": row.currency,
                "messages": messages,
                "segments": segments,
                "cost": cost,
                "estimated_cost": Decimal(row.estimated or 0),
                "cost_per_message": cost / messages if messages else None,
                "cost_per_segment": cost / segments if segments else None,
            }
        )
        total = totals.setdefault(
            row.currency or "", {"messages": 0, "segments": 0, "cost": Decimal(0)}
        )
        total["messages"] += messages
        total["segments"] += segments
        total["cost"] += cost
    return {"totals_by_currency": totals, "series": series}


def _latency_ms(dialect: str, end: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", end - Message.created_at) * 1000
    return (func.julianday(end) - func.julianday(Message.created_at)) * 86_400_000.0


PERCENTILES = (0.5, 0.95, 0.99)


async def _percentiles(
    session: AsyncSession, w: Window, end: Any, condition: ColumnElement[bool]
) -> dict[str, dict[str, Any]]:
    dialect = session.bind.dialect.name
    bucket = bucket_of(dialect, Message.created_at, w.bucket).label("bucket")
    latency = _latency_ms(dialect, end).label("ms")
    where = [*_where(w), condition]
    out: dict[str, dict[str, Any]] = {}
    if dialect == "postgresql":
        stmt = (
            select(
                bucket,
                func.count(),
                *[func.percentile_cont(p).within_group(latency) for p in PERCENTILES],
            )
            .where(*where)
            .group_by(bucket)
        )
        for row in (await session.execute(stmt)).all():
            out[_iso(row[0])] = {
                "count": row[1],
                **dict(zip(("p50", "p95", "p99"), row[2:], strict=True)),
            }
        return out
    inner = select(bucket, latency).where(*where).subquery()
    ranked = select(
        inner.c.bucket,
        inner.c.ms,
        func.row_number().over(partition_by=inner.c.bucket, order_by=inner.c.ms).label("rn"),
        func.count().over(partition_by=inner.c.bucket).label("n"),
    ).subquery()
    picks = [
        func.max(
            case((ranked.c.rn == func.cast(p * (ranked.c.n - 1), Integer) + 1, ranked.c.ms))
        ).label(f"p{round(p * 100)}")
        for p in PERCENTILES
    ]
    stmt = select(ranked.c.bucket, func.max(ranked.c.n), *picks).group_by(ranked.c.bucket)
    for row in (await session.execute(stmt)).all():
        out[_iso(row[0])] = {
            "count": row[1],
            **dict(zip(("p50", "p95", "p99"), row[2:], strict=True)),
        }
    return out


async def latency(session: AsyncSession, w: Window) -> list[dict[str, Any]]:
    """Accepted → sent, and accepted → delivered, in milliseconds, per bucket."""
    to_sent = await _percentiles(session, w, Message.sent_at, Message.sent_at.is_not(None))
    to_done = await _percentiles(
        session,
        w,
        Message.done_at,
        and_(Message.status == "delivered", Message.done_at.is_not(None)),
    )

    def rounded(values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is None:
            return None
        return {
            k: (round(float(v), 1) if k != "count" and v is not None else v)
            for k, v in values.items()
        }

    return [
        {
            "bucket": b,
            "accepted_to_sent_ms": rounded(to_sent.get(b)),
            "accepted_to_delivered_ms": rounded(to_done.get(b)),
        }
        for b in sorted(set(to_sent) | set(to_done))
    ]
