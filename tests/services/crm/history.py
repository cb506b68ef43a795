"""A generated won/lost history with a learnable signal, written with bulk inserts.

Whether a deal is won depends on its contact's lead source, its company's industry, how
many meetings and inbound messages it had (up), how many calls (slightly down: chasing),
and its amount (down); the lifecycle stage is random noise. The rule-based score rewards
lifecycle stage, calls and meetings, so it sees part of the signal, wrongly weighted.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from nexus.kernel.db import Database, utcnow
from nexus.kernel.ids import new_id
from nexus.services.crm.deals import ensure_default_pipeline, stages_of
from nexus.services.crm.models import Activity, Company, Contact, Deal, DealContact

SOURCES = {"referral": 1.5, "partner": 1.0, "webinar": 0.3, "paid_ads": -0.8, "cold_call": -1.5}
INDUSTRIES = {"software": 0.7, "finance": 0.3, "manufacturing": 0.0, "retail": -0.5}
STAGES = ["subscriber", "lead", "mql", "sql", "opportunity"]


async def generate(db: Database, org_id: str, deals: int, *, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = utcnow()
    async with db.transaction(org_id=org_id) as session:
        pipeline = await ensure_default_pipeline(session, org_id)
        stage_id = (await stages_of(session, pipeline.id))[-1].id
    companies = [
        {
            "id": new_id(),
            "org_id": org_id,
            "name": f"Company {i}",
            "domain": None,
            "industry": rng.choice(list(INDUSTRIES)),
            "size": rng.randint(5, 5000),
            "owner_id": "admin-1",
            "custom": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(max(deals // 25, 4))
    ]
    contacts: list[dict[str, Any]] = []
    deal_rows: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    activities: list[dict[str, Any]] = []
    for i in range(deals):
        company = rng.choice(companies)
        source = rng.choice(list(SOURCES))
        meetings, calls, replies = rng.randint(0, 4), rng.randint(0, 6), rng.randint(0, 3)
        amount = rng.choice([1_000, 5_000, 20_000, 80_000])
        logit = (
            SOURCES[source]
            + INDUSTRIES[company["industry"]]
            + 0.3 * meetings
            - 0.1 * calls
            + 0.5 * replies
            - 0.3 * math.log10(amount)
            + 0.6
        )
        won = rng.random() < 1 / (1 + math.exp(-logit))
        closed = now - dt.timedelta(days=rng.uniform(1, 365))
        created = closed - dt.timedelta(days=rng.uniform(20, 90))
        contact_id, deal_id = new_id(), new_id()
        contacts.append(
            {
                "id": contact_id,
                "org_id": org_id,
                "first_name": f"First{i}",
                "last_name": "Last",
                "emails": [f"c{i}@example.com"],
                "phones": [],
                "company_id": company["id"],
                "owner_id": "admin-1",
                "lifecycle_stage": rng.choice(STAGES),
                "lead_source": source,
                "tags": [],
                "custom": {},
                "consent": {},
                "created_at": created,
                "updated_at": created,
            }
        )
        deal_rows.append(
            {
                "id": deal_id,
                "org_id": org_id,
                "name": f"Deal {i}",
                "amount": Decimal(amount),
                "currency": "USD",
                "pipeline_id": pipeline.id,
                "stage_id": stage_id,
                "owner_id": "admin-1",
                "company_id": company["id"],
                "status": "won" if won else "lost",
                "lost_reason": None if won else "generated",
                "closed_at": closed,
                "custom": {},
                "created_at": created,
                "updated_at": closed,
            }
        )
        links.append({"deal_id": deal_id, "contact_id": contact_id, "org_id": org_id})
        for kind, count, direction in (
            ("meeting", meetings, None),
            ("call", calls, None),
            ("message", replies, "inbound"),
        ):
            for _ in range(count):
                at = created + (closed - created) * rng.random()
                activities.append(
                    {
                        "id": new_id(),
                        "org_id": org_id,
                        "kind": kind,
                        "contact_id": contact_id,
                        "company_id": company["id"],
                        "deal_id": deal_id,
                        "direction": direction,
                        "done": False,
                        "occurred_at": at,
                        "data": {},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
    async with db.transaction(org_id=org_id) as session:
        for model, rows in (
            (Company, companies),
            (Contact, contacts),
            (Deal, deal_rows),
            (DealContact, links),
            (Activity, activities),
        ):
            for start in range(0, len(rows), 5000):
                await session.execute(insert(model), rows[start : start + 5000])
