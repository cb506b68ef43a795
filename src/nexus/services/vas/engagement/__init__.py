"""Engagement, inside VAS: contacts (consent shared with the core), CSV import and export,
templates, campaigns with A/B variants and throttling, analytics. See docs/vas-engagement.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from nexus.kernel.service import JobHandler
from nexus.services.vas.engagement.campaigns import CAMPAIGN_QUEUE
from nexus.services.vas.engagement.campaigns import run as run_campaign
from nexus.services.vas.engagement.contacts_import import (
    IMPORT_ATTEMPTS,
    IMPORT_QUEUE,
    run_import_chunk,
)
from nexus.services.vas.engagement.rollup import rollup_loop
from nexus.services.vas.engagement.routes import analytics as analytics_routes
from nexus.services.vas.engagement.routes import campaigns as campaign_routes
from nexus.services.vas.engagement.routes import contacts as contact_routes
from nexus.services.vas.engagement.routes import templates as template_routes

PERMISSIONS = {
    "vas:contact:read": "See contacts, their consent, imports and exports.",
    "vas:contact:manage": "Create, change, delete and import contacts.",
    "vas:template:read": "See and preview message templates.",
    "vas:template:manage": "Create, change and delete message templates.",
    "vas:campaign:read": "See campaigns, their progress and stats.",
    "vas:campaign:manage": "Create, start, pause, resume and cancel campaigns.",
    "vas:analytics:read": "See messaging analytics.",
}

router = APIRouter()
for module in (contact_routes, template_routes, campaign_routes, analytics_routes):
    router.include_router(module.router)

JOBS = [
    # a chunk of rows per job, read outside any transaction, written in a short one
    JobHandler(
        IMPORT_QUEUE,
        run_import_chunk,
        transactional=False,
        concurrency=1,
        lease_s=60,
        max_attempts=IMPORT_ATTEMPTS,
        backoff_base_s=1,
    ),
    # a few seconds of paced sending per job, then a continuation
    JobHandler(
        CAMPAIGN_QUEUE,
        run_campaign,
        transactional=False,
        concurrency=4,
        lease_s=15,
        max_attempts=20,
        backoff_base_s=1,
        backoff_max_s=60,
    ),
]

WORKERS = [rollup_loop]  # hourly analytics rollups
