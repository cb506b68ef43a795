"""CRM: contacts, companies, deals and pipelines, activity timelines, search and dedupe,
forecasting, lead scoring, and messaging contacts through VAS."""

from __future__ import annotations

from fastapi import APIRouter

from nexus.kernel.service import Consumer, JobHandler, Service
from nexus.services.crm import importing, jobs, messaging
from nexus.services.crm.cli import cli
from nexus.services.crm.models import Base
from nexus.services.crm.routes import activities, companies, contacts, deals, insights, io

PERMISSIONS = {
    **{
        f"crm:{kind}:{action}": f"{action.capitalize()} {plural}."
        for kind, plural in (
            ("contact", "contacts"),
            ("company", "companies"),
            ("deal", "deals (and see pipelines and the forecast)"),
            ("activity", "activities and tasks"),
        )
        for action in ("read", "write", "delete")
    },
    "crm:pipeline:write": "Create and change pipelines and their stages.",
    "crm:field:read": "See the custom field definitions.",
    "crm:field:write": "Declare, change and remove custom fields.",
    "crm:scoring:train": "Retrain the lead-scoring model.",
    "crm:data:import": "Import contacts, companies and deals from CSV.",
    "crm:data:export": "Export records as CSV.",
}

router = APIRouter(prefix="/crm")
for sub in (
    contacts.router,
    companies.router,
    deals.pipelines,
    deals.router,
    activities.router,
    activities.fields,
    insights.router,
    io.router,
):
    router.include_router(sub)

service = Service(
    name="crm",
    router=router,
    metadata=Base.metadata,
    migrations="nexus.services.crm.migrations",
    permissions=PERMISSIONS,
    consumers=[
        Consumer("inbound_messages", ("nexus.vas.message.received",), messaging.on_received),
        Consumer(
            "message_status",
            (
                "nexus.vas.message.sent",
                "nexus.vas.message.delivered",
                "nexus.vas.message.undelivered",
                "nexus.vas.message.failed",
                "nexus.vas.message.rejected",
                "nexus.vas.message.expired",
            ),
            messaging.on_status,
        ),
    ],
    jobs=[
        JobHandler(importing.QUEUE, importing.run, transactional=False, concurrency=2, lease_s=120),
        JobHandler(jobs.SCHEDULE, jobs.run_schedule, concurrency=1, max_attempts=20),
        JobHandler(
            jobs.TRAIN,
            jobs.train,
            transactional=False,
            concurrency=1,
            lease_s=600,
            max_attempts=3,
            backoff_base_s=60,
        ),
    ],
    cli=cli,
    on_startup=[jobs.schedule_next],
)
