"""Forecast: the weighted pipeline by period and owner, committed and best case, win rate
and average sales cycle from the stage history.

Per period (month or quarter of the expected close date, of the close date for closed
deals), owner and currency:
- `pipeline`: the amount of open deals; `weighted`: Σ amount * probability;
- `won`: the amount won in the period;
- `committed`: won + open deals with probability ≥ `commit_at` (default 0.7);
- `best_case`: won + open deals with probability ≥ `best_case_at` (default 0.2).
Over the whole range: `win_rate` = won / (won + lost) deals closed in it, and
`avg_cycle_days` = mean days from a won deal's first stage-history entry to its win;
`stage_days`: per stage, the mean days deals stayed in it before moving on.
Open deals without an expected close date are counted in the `unscheduled` period.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.services.crm.models import Deal, Stage, StageChange

TWO = Decimal("0.01")


def period_of(day: dt.date | None, grain: str) -> str:
    if day is None:
        return "unscheduled"
    if grain == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


@dataclass
class Row:
    period: str
    owner_id: str
    currency: str
    open_deals: int = 0
    pipeline: Decimal = Decimal(0)
    weighted: Decimal = Decimal(0)
    won: Decimal = Decimal(0)
    committed: Decimal = Decimal(0)
    best_case: Decimal = Decimal(0)

    def out(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "owner_id": self.owner_id,
            "currency": self.currency,
            "open_deals": self.open_deals,
            **{
                k: str(getattr(self, k).quantize(TWO))
                for k in ("pipeline", "weighted", "won", "committed", "best_case")
            },
        }


@dataclass
class Forecast:
    rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    won_count: int = 0
    lost_count: int = 0
    cycle_days: list[float] = field(default_factory=list)

    def row(self, period: str, owner: str, currency: str) -> Row:
        key = (period, owner, currency)
        if key not in self.rows:
            self.rows[key] = Row(period, owner, currency)
        return self.rows[key]


async def forecast(
    session: AsyncSession,
    org_id: str,
    *,
    visible: ColumnElement[bool],
    start: dt.date,
    end: dt.date,
    grain: str = "month",
    pipeline_id: str | None = None,
    owner_id: str | None = None,
    commit_at: float = 0.7,
    best_case_at: float = 0.2,
) -> dict[str, Any]:
    since = dt.datetime.combine(start, dt.time(), dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    where = [Deal.org_id == org_id, visible]
    if pipeline_id:
        where.append(Deal.pipeline_id == pipeline_id)
    if owner_id:
        where.append(Deal.owner_id == owner_id)
    in_range = or_(
        (Deal.status == "open")
        & (
            Deal.expected_close.is_(None)
            | ((Deal.expected_close >= start) & (Deal.expected_close <= end))
        ),
        (Deal.status != "open") & (Deal.closed_at >= since) & (Deal.closed_at < until),
    )
    rows = await session.execute(
        select(
            Deal.id,
            Deal.status,
            Deal.amount,
            Deal.currency,
            Deal.owner_id,
            Deal.expected_close,
            Deal.closed_at,
            Deal.probability_override,
            Stage.probability,
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .where(*where, in_range)
    )
    result = Forecast()
    won_ids: list[str] = []
    all_ids: list[str] = []
    for deal_id, status, amount, currency, owner, expected, closed, override, stage_p in rows:
        amount = Decimal(amount or 0)
        all_ids.append(deal_id)
        if status == "open":
            p = override if override is not None else stage_p
            row = result.row(period_of(expected, grain), owner, currency)
            row.open_deals += 1
            row.pipeline += amount
            row.weighted += amount * Decimal(str(p))
            if p >= commit_at:
                row.committed += amount
            if p >= best_case_at:
                row.best_case += amount
            continue
        if status == "won":
            result.won_count += 1
            won_ids.append(deal_id)
            row = result.row(period_of(closed.date() if closed else None, grain), owner, currency)
            row.won += amount
            row.committed += amount
            row.best_case += amount
        else:
            result.lost_count += 1
    result.cycle_days = await _cycle_days(session, won_ids)
    stage_days = await _stage_days(session, all_ids)
    closed_count = result.won_count + result.lost_count
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in result.rows.values():
        for k in ("pipeline", "weighted", "won", "committed", "best_case"):
            totals[row.currency][k] += getattr(row, k)
    return {
        "grain": grain,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "rows": [r.out() for _, r in sorted(result.rows.items())],
        "totals": {
            cur: {k: str(v.quantize(TWO)) for k, v in values.items()}
            for cur, values in sorted(totals.items())
        },
        "won_deals": result.won_count,
        "lost_deals": result.lost_count,
        "win_rate": round(result.won_count / closed_count, 4) if closed_count else None,
        "stage_days": stage_days,
        "avg_cycle_days": (
            round(sum(result.cycle_days) / len(result.cycle_days), 2) if result.cycle_days else None
        ),
    }


async def _cycle_days(session: AsyncSession, won_ids: list[str]) -> list[float]:
    """Days from each deal's first history entry to the entry that won it."""
    out: list[float] = []
    for i in range(0, len(won_ids), 500):
        chunk = won_ids[i : i + 500]
        rows = await session.execute(
            select(
                StageChange.deal_id,
                func.min(StageChange.at),
                func.max(StageChange.at).filter(StageChange.to_status == "won"),
            )
            .where(StageChange.deal_id.in_(chunk))
            .group_by(StageChange.deal_id)
        )
        for _, first, won in rows:
            if first is not None and won is not None:
                out.append(_days(first, won))
    return out


async def _stage_days(session: AsyncSession, deal_ids: list[str]) -> list[dict[str, Any]]:
    """How long the deals stayed in each stage they left (from their stage history)."""
    spent: dict[str, list[float]] = defaultdict(list)
    for i in range(0, len(deal_ids), 500):
        rows = await session.execute(
            select(StageChange.deal_id, StageChange.to_stage_id, StageChange.at)
            .where(StageChange.deal_id.in_(deal_ids[i : i + 500]))
            .order_by(StageChange.deal_id, StageChange.at, StageChange.id)
        )
        previous: tuple[str, str, Any] | None = None
        for deal_id, stage_id, at in rows:
            if previous and previous[0] == deal_id and previous[1] != stage_id:
                spent[previous[1]].append(_days(previous[2], at))
            if not previous or previous[0] != deal_id or previous[1] != stage_id:
                previous = (deal_id, stage_id, at)
    if not spent:
        return []
    names = dict(
        (await session.execute(select(Stage.id, Stage.name).where(Stage.id.in_(list(spent))))).all()
    )
    return [
        {
            "stage_id": stage_id,
            "stage": names.get(stage_id),
            "deals": len(days),
            "avg_days": round(sum(days) / len(days), 2),
        }
        for stage_id, days in spent.items()
    ]


def _days(first: Any, last: Any) -> float:
    if isinstance(first, str):  # SQLite aggregates come back as text
        first, last = dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)
    return max((last - first).total_seconds(), 0.0) / 86400
