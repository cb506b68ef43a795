"""Messaging analytics over time buckets, by SQL aggregation.

Every endpoint is computed from "facts": message counts, segments and cost per hour,
channel, direction, provider, status and currency. Settled hours come from the hourly
rollup (`rollup.py`), the last hours are aggregated live from `vas_messages` with the
same GROUP BY, so a 30-day query reads a few thousand rows whatever the number of
messages. Both are bucketed in SQL (hour, day, week starting Monday, month; UTC) on
SQLite and PostgreSQL alike. Latency percentiles come from log-spaced histogram bins
(interpolated within a bin: about ±20 % of the value).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.services.vas.engagement import rollup
from nexus.services.vas.engagement.models import LatencyStats, MessageStats

_SPAN = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400}
MAX_BUCKETS = 2000
SENT = frozenset({"sent", "delivered", "undelivered"})
FAILED = frozenset({"failed", "undelivered", "expired"})
PENDING = frozenset({"accepted", "queued", "sending"})
COUNTS = ("messages", "sent", "delivered", "failed", "rejected", "pending")
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Window:
    org_id: str
    since: dt.datetime
    until: dt.datetime
    bucket: str
    channel: str | None = None

    def buckets(self) -> int:
        return int((self.until - self.since).total_seconds() // _SPAN[self.bucket]) + 1

    def hours(self) -> tuple[dt.datetime, dt.datetime]:
        """The window widened to whole hours (the rollup's grain)."""
        until = rollup.floor_hour(self.until)
        return rollup.floor_hour(self.since), until if until == self.until else until + rollup.HOUR


@dataclass
class Fact:
    bucket: str
    channel: str
    direction: str
    provider_id: str
    provider_type: str
    status: str
    currency: str
    messages: int
    segments: int
    cost: Decimal
    estimated_cost: Decimal


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


async def _split(session: AsyncSession, w: Window) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(since, settled, until): [since, settled) from the rollup, [settled, until) live."""
    since, until = w.hours()
    settled = await rollup.settled_until(session) or since
    return since, min(max(settled, since), until), until


async def facts(session: AsyncSession, w: Window) -> list[Fact]:
    dialect = session.bind.dialect.name
    since, settled, until = await _split(session, w)
    s = MessageStats
    rows: list[Any] = []
    if since < settled:
        bucket = bucket_of(dialect, s.hour, w.bucket)
        keys = (
            bucket,
            s.channel,
            s.direction,
            s.provider_id,
            s.provider_type,
            s.status,
            s.currency,
        )
        stmt = (
            select(
                *keys,
                func.sum(s.messages),
                func.sum(s.segments),
                func.sum(s.cost),
                func.sum(s.estimated_cost),
            )
            .where(s.org_id == w.org_id, s.hour >= since, s.hour < settled)
            .group_by(*keys)
        )
        if w.channel:
            stmt = stmt.where(s.channel == w.channel)
        rows += (await session.execute(stmt)).all()
    if settled < until:
        live = rollup.message_facts(dialect, settled, until, org_id=w.org_id).subquery()
        cols = list(live.c)
        bucket = bucket_of(dialect, cols[1], w.bucket)
        keys = (bucket, *cols[2:8])
        stmt = (
            select(*keys, *(func.sum(col) for col in cols[8:12]))
            .where(cols[0] == w.org_id)
            .group_by(*keys)
        )
        if w.channel:
            stmt = stmt.where(cols[2] == w.channel)
        rows += (await session.execute(stmt)).all()
    merged: dict[tuple[Any, ...], Fact] = {}
    for row in rows:
        key = (_iso(row[0]), *row[1:7])
        fact = merged.get(key)
        if fact is None:
            merged[key] = Fact(
                key[0],
                *key[1:],
                int(row[7]),
                int(row[8] or 0),
                Decimal(row[9] or 0),
                Decimal(row[10] or 0),
            )
        else:
            fact.messages += int(row[7])
            fact.segments += int(row[8] or 0)
            fact.cost += Decimal(row[9] or 0)
            fact.estimated_cost += Decimal(row[10] or 0)
    return sorted(merged.values(), key=lambda f: (f.bucket, f.channel, f.provider_id, f.status))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _tally(items: list[Fact], *, outbound: bool = True) -> dict[str, Any]:
    out = dict.fromkeys(COUNTS, 0)
    cost = Decimal(0)
    for f in items:
        if outbound and f.direction != "outbound":
            continue
        out["messages"] += f.messages
        out["sent"] += f.messages if f.status in SENT else 0
        out["delivered"] += f.messages if f.status == "delivered" else 0
        out["failed"] += f.messages if f.status in FAILED else 0
        out["rejected"] += f.messages if f.status == "rejected" else 0
        out["pending"] += f.messages if f.status in PENDING else 0
        cost += f.cost
    return out | {
        "delivery_rate": _rate(out["delivered"], out["sent"]),
        "failure_rate": _rate(out["failed"], out["sent"]),
        "cost": cost,
    }


def _group(items: list[Fact], *keys: str) -> dict[tuple[Any, ...], list[Fact]]:
    groups: dict[tuple[Any, ...], list[Fact]] = defaultdict(list)
    for f in items:
        groups[tuple(getattr(f, k) for k in keys)].append(f)
    return dict(sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])))


async def overview(session: AsyncSession, w: Window) -> dict[str, Any]:
    items = await facts(session, w)
    series = []
    for (bucket,), group in _group(items, "bucket").items():
        tally = _tally(group)
        series.append(
            {
                "bucket": bucket,
                "inbound": sum(f.messages for f in group if f.direction == "inbound"),
                **tally,
                "segments": sum(f.segments for f in group if f.direction == "outbound"),
            }
        )
    totals = _tally(items)
    totals["inbound"] = sum(f.messages for f in items if f.direction == "inbound")
    totals["segments"] = sum(f.segments for f in items if f.direction == "outbound")
    return {"totals": totals, "series": series}


async def grouped(session: AsyncSession, w: Window, by: str) -> list[dict[str, Any]]:
    """Status counts per bucket and channel (`by="channel"`) or provider (`"provider"`)."""
    keys = ("channel",) if by == "channel" else ("provider_id", "provider_type")
    items = [f for f in await facts(session, w) if f.direction == "outbound"]
    out = []
    for key, group in _group(items, "bucket", *keys).items():
        row: dict[str, Any] = {"bucket": key[0]}
        for name, value in zip(keys, key[1:], strict=True):
            row[name] = value or None
        out.append(row | _tally(group))
    return out


async def cost_analysis(session: AsyncSession, w: Window) -> dict[str, Any]:
    items = [
        f for f in await facts(session, w) if f.direction == "outbound" and f.status != "rejected"
    ]
    series = []
    totals: dict[str, dict[str, Any]] = {}
    for (bucket, channel, currency), group in _group(
        items, "bucket", "channel", "currency"
    ).items():
        messages = sum(f.messages for f in group)
        segments = sum(f.segments for f in group)
        cost = sum((f.cost for f in group), Decimal(0))
        series.append(
            {
                "bucket": bucket,
                "channel": channel,
                "currency": currency or None,
                "messages": messages,
                "segments": segments,
                "cost": cost,
                "estimated_cost": sum((f.estimated_cost for f in group), Decimal(0)),
                "cost_per_message": cost / messages if messages else None,
                "cost_per_segment": cost / segments if segments else None,
            }
        )
        total = totals.setdefault(currency, {"messages": 0, "segments": 0, "cost": Decimal(0)})
        total["messages"] += messages
        total["segments"] += segments
        total["cost"] += cost
    return {"totals_by_currency": totals, "series": series}


async def latency(session: AsyncSession, w: Window) -> list[dict[str, Any]]:
    """Accepted → sent and accepted → delivered, in ms, per bucket (from histogram bins)."""
    dialect = session.bind.dialect.name
    since, settled, until = await _split(session, w)
    bins: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    rows: list[Any] = []
    if since < settled:
        s = LatencyStats
        bucket = bucket_of(dialect, s.hour, w.bucket)
        stmt = (
            select(bucket, s.kind, s.bin, func.sum(s.messages))
            .where(s.org_id == w.org_id, s.hour >= since, s.hour < settled)
            .group_by(bucket, s.kind, s.bin)
        )
        if w.channel:
            stmt = stmt.where(s.channel == w.channel)
        rows += (await session.execute(stmt)).all()
    if settled < until:
        for kind in ("sent", "done"):
            live = rollup.latency_facts(dialect, settled, until, kind, org_id=w.org_id).subquery()
            cols = list(live.c)  # org, hour, channel, kind, bin, count
            bucket = bucket_of(dialect, cols[1], w.bucket)
            stmt = (
                select(bucket, cols[3], cols[4], func.sum(cols[5]))
                .where(cols[0] == w.org_id)
                .group_by(bucket, cols[3], cols[4])
            )
            if w.channel:
                stmt = stmt.where(cols[2] == w.channel)
            rows += (await session.execute(stmt)).all()
    for bucket_value, kind, bin_, count in rows:
        bins[(_iso(bucket_value), kind)][int(bin_)] += int(count)
    out = []
    for bucket in sorted({b for b, _ in bins}):
        item: dict[str, Any] = {"bucket": bucket}
        for kind, name in (("sent", "accepted_to_sent_ms"), ("done", "accepted_to_delivered_ms")):
            counts = bins.get((bucket, kind))
            item[name] = _percentiles(counts) if counts else None
        out.append(item)
    return out


def _percentiles(counts: dict[int, int]) -> dict[str, Any]:
    total = sum(counts.values())
    out: dict[str, Any] = {"count": total}
    for name, p in PERCENTILES.items():
        target, seen = p * total, 0
        for index in sorted(counts):
            if seen + counts[index] >= target:
                low, high = rollup.bin_range(index)
                share = (target - seen) / counts[index]
                out[name] = round(low + (high - low) * share, 1)
                break
            seen += counts[index]
    return out
