"""The Hub: Nexus in the browser. Server-rendered pages (Jinja2 + htmx) over the
services' published APIs, served at the root of the process; the APIs stay under /api/v1.

The Hub holds no business data: its only table is the browser sessions, which keep the
signed-in person's IDaaS tokens server-side behind an opaque cookie.
"""

from __future__ import annotations

from fastapi import APIRouter

from nexus.kernel.service import Service
from nexus.services.hub.cli import cli
from nexus.services.hub.models import Base
from nexus.services.hub.routes import (
    admin,
    analytics,
    auth,
    crm,
    crm_actions,
    crm_lists,
    crm_record,
    engagement,
    home,
    messaging,
    profile,
)

public_router = APIRouter(include_in_schema=False)
for module in (
    auth,
    home,
    messaging,
    analytics,
    engagement,
    crm,
    crm_lists,
    crm_record,
    crm_actions,
    admin,
    profile,
):
    public_router.include_router(module.router)

service = Service(
    name="hub",
    public_router=public_router,
    metadata=Base.metadata,
    migrations="nexus.services.hub.migrations",
    cli=cli,
)
