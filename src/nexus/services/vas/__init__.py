"""VAS: omnichannel messaging (SMS, WhatsApp, Telegram, Messenger, e-mail) with routing,
failover, delivery tracking, inbound messages, opt-out and webhooks."""

from __future__ import annotations

import httpx
from fastapi import APIRouter

from nexus.kernel.events import Event
from nexus.kernel.outbound_http import outbound_client
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Consumer, HandlerContext, JobHandler, Service
from nexus.services.vas import dispatch, reports, webhooks_out
from nexus.services.vas.accept import Acceptor
from nexus.services.vas.accounts import Accounts, add_sandbox_providers
from nexus.services.vas.cli import cli
from nexus.services.vas.engagement import JOBS as ENGAGEMENT_JOBS
from nexus.services.vas.engagement import PERMISSIONS as ENGAGEMENT_PERMISSIONS
from nexus.services.vas.engagement import WORKERS as ENGAGEMENT_WORKERS
from nexus.services.vas.engagement import router as engagement_router
from nexus.services.vas.engagement.cli import campaigns_cli, contacts_cli
from nexus.services.vas.health import health_loop
from nexus.services.vas.message_batches import MessageBatches
from nexus.services.vas.models import Base
from nexus.services.vas.reconcile import job_handler as reconcile_job_handler
from nexus.services.vas.reconcile import reconcile_loop
from nexus.services.vas.reports import Reports
from nexus.services.vas.router import CircuitConfig, Router
from nexus.services.vas.routes import inbound as inbound_routes
from nexus.services.vas.routes import messages as message_routes
from nexus.services.vas.routes import org_settings as settings_routes
from nexus.services.vas.routes import providers as provider_routes
from nexus.services.vas.routes import webhooks as webhook_routes
from nexus.services.vas.settings import get_vas_settings
from nexus.services.vas.state import Vas
from nexus.services.vas.twilio_api import callbacks as twilio_callbacks
from nexus.services.vas.twilio_api import management as twilio_management
from nexus.services.vas.twilio_api import routes as twilio_routes

PERMISSIONS = {
    "vas:message:send": "Send and cancel messages.",
    "vas:message:read": "Read the message log and histories.",
    "vas:provider:read": "See provider accounts and their health.",
    "vas:provider:manage": "Add, change and remove provider accounts.",
    "vas:webhook:manage": "Manage webhooks for message events and see their deliveries.",
    "vas:consent:read": "See opt-out state.",
    "vas:consent:manage": "Opt addresses out or back in.",
    **ENGAGEMENT_PERMISSIONS,
    "vas:twilio_credential:manage": "Create and revoke Twilio-style accounts and API keys.",
}

router = APIRouter()
for module in (message_routes, provider_routes, inbound_routes, webhook_routes, settings_routes):
    router.include_router(module.router)
router.include_router(engagement_router)
cli.add_typer(contacts_cli, name="contacts")
cli.add_typer(campaigns_cli, name="campaigns")
router.include_router(twilio_management.router)
public_router = APIRouter()
public_router.include_router(twilio_routes.router)  # /2010-04-01/...: the Twilio-compatible API


async def _start(runtime: Runtime) -> None:
    settings = get_vas_settings()
    http = outbound_client(
        timeout=httpx.Timeout(settings.send_timeout_s, connect=5),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        headers={"user-agent": "Nexus-VAS/1"},
    )
    public = (
        settings.public_url
        or runtime.settings.public_url
        or (f"http://{runtime.settings.host}:{runtime.settings.port}")
    )
    db = runtime.db("vas")
    runtime.state["vas"] = Vas(
        runtime=runtime,
        db=db,
        accounts=Accounts(db, runtime.settings.secret(), http, public),
        router=Router(
            redis=runtime.redis,
            circuit=CircuitConfig(
                failure_streak=settings.circuit_failure_streak,
                cooldown_s=settings.circuit_cooldown_s,
            ),
        ),
        http=http,
        settings=settings,
        acceptor=Acceptor(db),
        batches=MessageBatches(db),
        reports=Reports(db),
    )


async def _on_message_event(event: Event, ctx: HandlerContext) -> None:
    """One consumer group for both kinds of customer callback: a group costs a delivery
    per event, and every message publishes several."""
    await webhooks_out.on_message_event(event, ctx)
    await twilio_callbacks.on_message_event(event, ctx)


async def _on_org_created(event: Event, ctx: HandlerContext) -> None:
    if not get_vas_settings().sandbox_for_new_orgs or ctx.session is None or not event.org_id:
        return
    await add_sandbox_providers(ctx.session, ctx.runtime.settings.secret(), event.org_id)
    vas = ctx.runtime.state.get("vas")
    if vas is not None:
        vas.accounts.forget(event.org_id)


async def _stop(runtime: Runtime) -> None:
    vas = runtime.state.pop("vas", None)
    if vas is not None:
        await vas.acceptor.close()
        await vas.batches.close()
        await vas.reports.close()
        await vas.http.aclose()


_settings = get_vas_settings()
service = Service(
    name="vas",
    router=router,
    public_router=public_router,
    metadata=Base.metadata,
    migrations="nexus.services.vas.migrations",
    permissions=PERMISSIONS,
    jobs=[
        JobHandler(
            "vas.dispatch",
            dispatch.dispatch,
            transactional=False,
            concurrency=_settings.dispatch_concurrency,
            max_attempts=_settings.max_attempts + 2,
            lease_s=max(_settings.dispatch_lease_s, _settings.send_timeout_s * 2),
            backoff_base_s=0.5,
            backoff_max_s=60,
        ),
        JobHandler(
            "vas.status",
            reports.apply_status,
            concurrency=8,
            max_attempts=8,
            backoff_base_s=0.2,
            backoff_max_s=5,
        ),
        JobHandler(
            "vas.webhook",
            webhooks_out.deliver,
            transactional=False,
            concurrency=16,
            max_attempts=10,
            backoff_base_s=1.0,
            backoff_max_s=3600,
        ),
        JobHandler(
            twilio_callbacks.QUEUE,
            twilio_callbacks.deliver,
            transactional=False,
            concurrency=16,
            max_attempts=10,
            backoff_base_s=1.0,
            backoff_max_s=3600,
        ),
        *ENGAGEMENT_JOBS,
        reconcile_job_handler(_settings),
    ],
    consumers=[
        Consumer("webhooks", ("nexus.vas.message.*",), _on_message_event),
        Consumer("sandbox_for_new_orgs", ("nexus.idaas.org.created",), _on_org_created),
    ],
    workers=[health_loop, *ENGAGEMENT_WORKERS, reconcile_loop],
    cli=cli,
    on_startup=[_start],
    on_shutdown=[_stop],
)
