"""/api/v1/webhooks (customer endpoints for message events) and /api/v1/consents."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from nexus.kernel.auth import Principal, require
from nexus.kernel.errors import NotFound, Problem
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas import webhooks_out
from nexus.services.vas.addresses import InvalidAddress, normalize
from nexus.services.vas.inbound import set_consent
from nexus.services.vas.models import Consent, Webhook, WebhookDelivery
from nexus.services.vas.routes.messages import get_vas
from nexus.services.vas.schemas import (
    ConsentIn,
    ConsentOut,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from nexus.services.vas.state import Vas

router = APIRouter(tags=["webhooks"])


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(
    principal: Principal = require("vas:webhook:manage"), vas: Vas = Depends(get_vas)
) -> list[Webhook]:
    async with vas.db.read(org_id=principal.org_id) as session:
        return list((await session.scalars(select(Webhook).order_by(Webhook.created_at))).all())


@router.post(
    "/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    summary="Register a URL for message events (the signing secret is shown once)",
)
async def create_webhook(
    body: WebhookIn,
    principal: Principal = require("vas:webhook:manage"),
    vas: Vas = Depends(get_vas),
) -> WebhookCreated:
    unknown = [e for e in body.events if not e.startswith("nexus.vas.message.")]
    if unknown:
        raise Problem(f"Not message events: {', '.join(unknown)}.", status=422, field="events")
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with vas.db.transaction(org_id=principal.org_id) as session:
        hook = Webhook(
            org_id=principal.org_id,
            url=str(body.url),
            events=body.events,
            description=body.description,
            enabled=body.enabled,
            secret_sealed=webhooks_out.seal_secret(vas.secret, secret),
        )
        session.add(hook)
        await session.flush()
    return WebhookCreated.model_validate(
        {**WebhookOut.model_validate(hook).model_dump(), "secret": secret}
    )


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: str,
    principal: Principal = require("vas:webhook:manage"),
    vas: Vas = Depends(get_vas),
) -> None:
    async with vas.db.transaction(org_id=principal.org_id) as session:
        hook = await session.get(Webhook, webhook_id)
        if hook is None:
            raise NotFound(f"No webhook {webhook_id}.")
        await session.delete(hook)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="Delivery attempts with the responses, newest first",
)
async def deliveries(
    webhook_id: str,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:webhook:manage"),
    vas: Vas = Depends(get_vas),
) -> Page[DeliveryOut]:
    async with vas.db.read(org_id=principal.org_id) as session:
        if await session.get(Webhook, webhook_id) is None:
            raise NotFound(f"No webhook {webhook_id}.")
        stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        rows = list(
            (
                await session.scalars(
                    paginate(stmt, WebhookDelivery.id, cursor, limit, descending=True)
                )
            ).all()
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[DeliveryOut.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get(
    "/consents",
    response_model=list[ConsentOut],
    tags=["consent"],
    summary="Opt-out state of addresses",
)
async def list_consents(
    channel: str | None = None,
    address: str | None = Query(None, max_length=320),
    principal: Principal = require("vas:consent:read"),
    vas: Vas = Depends(get_vas),
) -> list[Consent]:
    async with vas.db.read(org_id=principal.org_id) as session:
        stmt = select(Consent).order_by(Consent.updated_at.desc()).limit(500)
        if channel:
            stmt = stmt.where(Consent.channel == channel)
        if address and channel:
            try:
                region = (await vas.org(principal.org_id)).default_region
                address = normalize(channel, address, region)
            except InvalidAddress as exc:
                raise Problem(str(exc), status=422, field="address") from None
        if address:
            stmt = stmt.where(Consent.address == address)
        return list((await session.scalars(stmt)).all())


@router.put(
    "/consents",
    response_model=ConsentOut,
    tags=["consent"],
    summary="Opt an address out of (or back into) a channel",
)
async def put_consent(
    body: ConsentIn,
    principal: Principal = require("vas:consent:manage"),
    vas: Vas = Depends(get_vas),
) -> Consent:
    try:
        region = (await vas.org(principal.org_id)).default_region
        address = normalize(body.channel, body.address, region)
    except InvalidAddress as exc:
        raise Problem(str(exc), status=422, field="address") from None
    async with vas.db.transaction(org_id=principal.org_id) as session:
        await set_consent(
            session, principal.org_id, body.channel, address, body.opted_out, source="api"
        )
        consent = await session.scalar(
            select(Consent).where(Consent.channel == body.channel, Consent.address == address)
        )
        assert consent is not None
        return consent
