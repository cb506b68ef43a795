"""Scheduled retraining of lead scoring.

`crm.scoring_schedule` runs once per interval (`NEXUS_CRM_SCORING_INTERVAL_S`, a day by
default): it enqueues one `crm.train` job per org that has closed deals, then enqueues
itself for the next interval. Job ids derive from the interval's number, so processes
starting together, or a redelivered job, schedule each run once.
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from nexus.kernel.events import Job, enqueue, job_id_for
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import HandlerContext
from nexus.services.crm import scoring
from nexus.services.crm.models import Deal
from nexus.services.crm.settings import get_crm_settings

SCHEDULE = "crm.scoring_schedule"
TRAIN = "crm.train"


def _slot(interval_s: float, now: float | None = None) -> int:
    return int((time.time() if now is None else now) // interval_s)


async def schedule_next(runtime: Runtime) -> None:
    """Start-up hook: make sure the next scheduled run is enqueued."""
    interval = get_crm_settings().scoring_interval_s
    slot = _slot(interval) + 1
    async with runtime.db("crm").transaction() as session:
        await enqueue(
            session,
            SCHEDULE,
            {"slot": slot},
            job_id=job_id_for("crm", "scoring-schedule", str(slot)),
            run_at=dt.datetime.fromtimestamp(slot * interval, dt.UTC),
        )


async def run_schedule(job: Job, ctx: HandlerContext) -> None:
    assert ctx.session is not None
    interval = get_crm_settings().scoring_interval_s
    slot = int(job.payload.get("slot", _slot(interval)))
    orgs = await ctx.session.scalars(
        select(Deal.org_id).distinct().where(Deal.status.in_(("won", "lost")))
    )
    for org in list(orgs):
        await enqueue(
            ctx.session,
            TRAIN,
            {"org_id": org},
            job_id=job_id_for("crm", "train", org, str(slot)),
            org_id=org,
        )
    await enqueue(
        ctx.session,
        SCHEDULE,
        {"slot": slot + 1},
        job_id=job_id_for("crm", "scoring-schedule", str(slot + 1)),
        run_at=dt.datetime.fromtimestamp((slot + 1) * interval, dt.UTC),
    )


async def train(job: Job, ctx: HandlerContext) -> None:
    await scoring.train_org(ctx.runtime.db("crm"), str(job.payload["org_id"]))
