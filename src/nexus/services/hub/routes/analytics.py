"""Messaging analytics: volume over time, delivery rate by provider, cost.

From VAS's analytics API (SQL aggregation over the whole range) when the person may
read it; otherwise from the latest messages they may read (a sample, said so)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub import charts
from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.messaging import FINAL, providers_of
from nexus.services.hub.web import Ctx, HubRoute, render, signed_in

router = APIRouter(route_class=HubRoute, include_in_schema=False)
RANGES = {  # name -> (length, bucket, label format)
    "24h": (dt.timedelta(hours=24), "hour", "%H:00"),
    "7d": (dt.timedelta(days=7), "day", "%m-%d"),
    "30d": (dt.timedelta(days=30), "day", "%m-%d"),
}
SAMPLE = 500


def _range(request: Request) -> str:
    name = request.query_params.get("range", "7d")
    return name if name in RANGES else "7d"


@router.get("/analytics")
async def analytics(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    """The page at once; its charts come in a second request (aggregating a month of
    messages can take longer than a page should)."""
    full = ctx.can("vas:analytics:read")
    return render(
        request, "analytics.html", ctx, ranges=RANGES if full else None, range=_range(request)
    )


@router.get("/analytics/charts")
async def charts_fragment(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    name = _range(request)
    if ctx.can("vas:analytics:read"):
        try:
            figures = await _from_api(ctx, name)
        except ApiError as exc:
            if exc.status != 404:  # an older VAS without the analytics API: sample below
                raise
        else:
            return render(request, "_analytics_charts.html", ctx, ranges=RANGES, **figures)
    page, providers = await asyncio.gather(
        ctx.get("vas", "/messages", limit=SAMPLE), providers_of(ctx)
    )
    items = [m for m in page["items"] if m["direction"] == "outbound"]
    names = {p["id"]: p["name"] for p in providers}
    return render(
        request,
        "_analytics_charts.html",
        ctx,
        ranges=None,
        sample=len(items),
        limit=SAMPLE,
        **_from_sample(items, names),
    )


def _key(bucket: Any, kind: str) -> str:
    """A bucket as the API gives it (ISO or 'YYYY-MM-DD HH:MM:SS') -> a comparable key."""
    text = str(bucket).replace("T", " ")
    return text[:13] if kind == "hour" else text[:10]


async def _from_api(ctx: Ctx, name: str) -> dict[str, Any]:
    length, bucket, fmt = RANGES[name]
    now = dt.datetime.now(dt.UTC)
    start = now - length
    start = start.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        start = start.replace(hour=0)
    params = {"since": start.isoformat(), "until": now.isoformat(), "bucket": bucket}
    overview, by_provider, providers = await asyncio.gather(
        ctx.get("vas", "/analytics/overview", **params),
        ctx.get("vas", "/analytics/by-provider", **params),
        providers_of(ctx),
    )
    step = dt.timedelta(hours=1) if bucket == "hour" else dt.timedelta(days=1)
    slots, cursor = [], start
    while cursor <= now:
        slots.append(cursor)
        cursor += step
    rows = {_key(item["bucket"], bucket): item for item in overview["series"]}

    def at(slot: dt.datetime, field: str) -> float:
        key = slot.strftime("%Y-%m-%d %H" if bucket == "hour" else "%Y-%m-%d")
        return float(rows.get(key, {}).get(field) or 0)

    names = {p["id"]: p["name"] for p in providers}
    currencies = {p["currency"] for p in providers}
    per_provider: dict[str, Counter[str]] = defaultdict(Counter)
    for item in by_provider["series"]:
        if item["provider_id"]:
            per_provider[item["provider_id"]]["sent"] += item["sent"]
            per_provider[item["provider_id"]]["delivered"] += item["delivered"]
    rate_rows = [
        (
            names.get(pid, pid[:8]),
            c["delivered"] / c["sent"],
            f"{c['delivered'] / c['sent']:.0%} of {c['sent']}",
        )
        for pid, c in sorted(per_provider.items(), key=lambda kv: -kv[1]["sent"])
        if c["sent"]
    ]
    totals = overview["totals"]
    unit = "hour (UTC)" if bucket == "hour" else "day (UTC)"
    currency = next(iter(currencies)) if len(currencies) == 1 else None
    return {
        "volume": charts.columns(
            [(s.strftime(fmt), at(s, "messages")) for s in slots], label=f"Messages per {unit}"
        )
        if totals["messages"]
        else None,
        "cost": charts.columns(
            [(s.strftime(fmt), at(s, "cost")) for s in slots],
            label=f"Cost per {unit}",
            width=460,
            height=200,
        ),
        "rates": charts.rates(rate_rows, label="Delivery rate by provider") if rate_rows else None,
        "unit": unit,
        "messages": totals["messages"],
        "delivered_share": totals.get("delivery_rate"),
        "total_cost": Decimal(str(totals.get("cost") or 0)),
        "currency": currency,
        "statuses": [
            (k, totals[k]) for k in ("delivered", "failed", "rejected", "pending") if totals.get(k)
        ],
        "inbound": totals.get("inbound", 0),
    }


def _rate_row(name: str, delivered: int, sent: int) -> tuple[str, float, str]:
    return name, delivered / sent, f"{delivered / sent:.0%} of {sent:,}"


def _from_sample(items: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    if not items:
        return {"volume": None, "messages": 0}
    times = [dt.datetime.fromisoformat(m["created_at"]) for m in items]
    start, end = min(times), max(times)
    span = end - start
    if span <= dt.timedelta(hours=2):  # 5-minute buckets
        step, unit, fmt = dt.timedelta(minutes=5), "5 minutes (UTC)", "%H:%M"
        start = start.replace(minute=start.minute - start.minute % 5, second=0, microsecond=0)
    elif span <= dt.timedelta(hours=48):
        step, unit, fmt = dt.timedelta(hours=1), "hour (UTC)", "%H:00"
        start = start.replace(minute=0, second=0, microsecond=0)
    else:
        step, unit, fmt = dt.timedelta(days=1), "day (UTC)", "%m-%d"
        start = start.replace(hour=0, minute=0, second=0, microsecond=0)

    def bucket(t: dt.datetime) -> str:
        return (start + step * int((t - start) / step)).strftime(fmt)

    counts: Counter[str] = Counter(bucket(t) for t in times)
    cost_by: defaultdict[str, Decimal] = defaultdict(Decimal)
    currency = None
    for m, t in zip(items, times, strict=True):
        value = m.get("cost") or m.get("estimated_cost")
        if value is not None:
            cost_by[bucket(t)] += Decimal(str(value))
            currency = currency or m.get("currency")
    labels, cursor = [], start
    while cursor <= end and len(labels) < 400:
        labels.append(cursor.strftime(fmt))
        cursor += step
    by_provider: dict[str, Counter[str]] = defaultdict(Counter)
    for m in items:
        if m["provider_id"] and m["status"] in FINAL:
            ok = m["status"] in {"delivered", "read"}
            by_provider[m["provider_id"]]["ok" if ok else "bad"] += 1
    rate_rows = []
    for provider_id, c in sorted(by_provider.items(), key=lambda kv: -sum(kv[1].values())):
        total = c["ok"] + c["bad"]
        rate_rows.append(
            (
                names.get(provider_id, provider_id[:8]),
                c["ok"] / total,
                f"{c['ok'] / total:.0%} of {total}",
            )
        )
    statuses = Counter(m["status"] for m in items)
    delivered = sum(statuses[s] for s in ("delivered", "read"))
    return {
        "volume": charts.columns(
            [(label, counts.get(label, 0)) for label in labels], label=f"Messages per {unit}"
        ),
        "cost": charts.columns(
            [(label, float(cost_by.get(label, 0))) for label in labels],
            label=f"Cost per {unit}",
            unit=f" {currency or ''}",
            width=460,
            height=200,
        ),
        "rates": charts.rates(rate_rows, label="Delivery rate by provider") if rate_rows else None,
        "unit": unit,
        "messages": len(items),
        "delivered_share": delivered / len(items),
        "total_cost": sum(cost_by.values(), Decimal(0)),
        "currency": currency,
        "statuses": statuses.most_common(),
    }
