"""/api/v1/analytics: messaging figures over time buckets (SQL aggregation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import utcnow
from nexus.kernel.errors import BadRequest
from nexus.services.vas.engagement import analytics, rollup
from nexus.services.vas.engagement.analytics import Window
from nexus.services.vas.engagement.models import StatsState

router = APIRouter(prefix="/analytics", tags=["analytics"])
ChannelQuery = Query(None, pattern="^(sms|whatsapp|telegram|messenger|email)$")
BucketQuery = Query("day", pattern="^(hour|day|week|month)$")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def window(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    bucket: str = BucketQuery,
    channel: str | None = ChannelQuery,
    principal: Principal = require("vas:analytics:read"),
) -> Window:
    """The range, bucket and channel every analytics endpoint takes (a dependency)."""
    end = _utc(until) or utcnow()
    start = _utc(since) or end - dt.timedelta(days=7)
    if start >= end:
        raise BadRequest("since must be before until.")
    w = Window(principal.org_id, start, end, bucket, channel)
    if w.buckets() > analytics.MAX_BUCKETS:
        raise BadRequest(
            f"{w.buckets()} {bucket} buckets is too many (at most {analytics.MAX_BUCKETS}): "
            "use a larger bucket or a shorter range."
        )
    return w


def _meta(w: Window) -> dict[str, Any]:
    return {"since": w.since, "until": w.until, "bucket": w.bucket, "channel": w.channel}


async def _read(request: Request, fn: Any, w: Window, *args: Any) -> Any:
    async with request.app.state.runtime.db("vas").read() as session:
        return await fn(session, w, *args)


@router.get("/overview", summary="Totals and a series of outbound/inbound counts, cost")
async def overview(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    """Range defaults to the last 7 days; `sent` counts messages that reached a provider
    (sent, delivered, undelivered); `delivery_rate` is delivered / sent."""
    return _meta(w) | await _read(request, analytics.overview, w)


@router.get("/by-channel", summary="Status counts per bucket and channel")
async def by_channel(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    return _meta(w) | {"series": await _read(request, analytics.grouped, w, "channel")}


@router.get("/by-provider", summary="Status counts per bucket and provider")
async def by_provider(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    return _meta(w) | {"series": await _read(request, analytics.grouped, w, "provider")}


@router.get("/delivery-rates", summary="Delivery and failure rates per bucket and channel")
async def delivery_rates(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    rows = await _read(request, analytics.grouped, w, "channel")
    keys = ("bucket", "channel", "sent", "delivered", "failed", "delivery_rate", "failure_rate")
    return _meta(w) | {"series": [{k: row[k] for k in keys} for row in rows]}


@router.get("/cost-analysis", summary="Messages, segments and cost per bucket, channel, currency")
async def cost_analysis(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    """Actual cost where the provider reported it, else the estimate made at acceptance."""
    return _meta(w) | await _read(request, analytics.cost_analysis, w)


@router.get("/latency", summary="Latency percentiles (p50/p95/p99) per bucket")
async def latency(
    request: Request,
    w: Window = Depends(window),
) -> dict[str, Any]:
    return _meta(w) | {"series": await _read(request, analytics.latency, w)}


@router.get("/status", summary="How far the hourly rollup of messages has got")
async def rollup_status(
    request: Request, principal: Principal = require("vas:analytics:read")
) -> dict[str, Any]:
    """Hours before `settled_until` are read from the rollup; later ones live."""
    async with request.app.state.runtime.db("vas").read() as session:
        state = await session.get(StatsState, rollup.STATE)
    return {
        "settled_until": state.settled_until if state else None,
        "checked_at": state.checked_at if state else None,
        "live_hours": rollup.LIVE_HOURS,
        "interval_s": rollup.INTERVAL_S,
    }
