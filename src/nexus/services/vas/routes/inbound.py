"""Provider webhooks: delivery reports and inbound messages, verified before anything else.

Every call names its provider account (`?account=<id>`, part of the webhook URL the
provider account shows); the adapter verifies the provider's signature or token, and a
call that fails verification is refused (401) and logged without being stored.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from nexus.kernel.errors import NotFound, Unauthorized
from nexus.services.vas import inbound
from nexus.services.vas.models import ProviderAccount
from nexus.services.vas.providers.base import InboundMessage, StatusUpdate, WebhookRequest
from nexus.services.vas.routes.messages import get_vas
from nexus.services.vas.state import Vas

log = structlog.get_logger("nexus.vas.webhooks")
router = APIRouter(tags=["provider webhooks"])
Account = Query(..., max_length=64, description="The provider account id (from its webhook URL).")


async def _webhook_request(request: Request, vas: Vas) -> WebhookRequest:
    url = str(request.url)
    if vas.settings.public_url or vas.runtime.settings.public_url:
        base = (vas.settings.public_url or vas.runtime.settings.public_url or "").rstrip("/")
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return WebhookRequest(
        method=request.method,
        url=url,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        query=dict(request.query_params),
    )


async def _account(
    vas: Vas, account_id: str, provider_type: str | None, channel: str
) -> ProviderAccount:
    account = await vas.accounts.by_id(account_id)
    if (
        account is None
        or (provider_type and account.type != provider_type)
        or account.channel != channel
    ):
        raise NotFound("No such provider account.")
    return account


async def _handle(
    request: Request, vas: Vas, account_id: str, channel: str, provider_type: str | None = None
) -> Response:
    hook = await _webhook_request(request, vas)  # the body first: the provider is waiting
    account = await _account(vas, account_id, provider_type, channel)
    adapter = vas.accounts.adapter(account)
    if not adapter.verify_webhook(hook):
        log.warning(
            "webhook refused: bad signature",
            provider=account.type,
            account=account.id,
            client=request.client.host if request.client else None,
        )
        raise Unauthorized("The webhook signature is not valid.", headers={})
    items = adapter.parse_webhook(hook)
    await asyncio.gather(
        *(
            vas.reports.apply(account.org_id, account.type, item)
            for item in items
            if isinstance(item, StatusUpdate)
        )
    )
    received = [item for item in items if isinstance(item, InboundMessage)]
    if received:
        org = await vas.org(account.org_id)
        async with vas.db.transaction() as session:
            for item in received:
                await inbound.receive(session, account, item, org)
    if account.type == "twilio":
        return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', media_type="text/xml")
    return Response(status_code=200)


async def _handshake(request: Request, vas: Vas, account_id: str, channel: str) -> Response:
    account = await _account(vas, account_id, None, channel)
    challenge = vas.accounts.adapter(account).handshake(await _webhook_request(request, vas))
    if challenge is None:
        raise Unauthorized("The verify token does not match.", headers={})
    return PlainTextResponse(challenge)


@router.post("/sms/webhook/{provider}", summary="SMS delivery reports and inbound SMS")
async def sms_webhook(
    provider: str, request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handle(request, vas, account, "sms", provider)


@router.post("/whatsapp/webhook", summary="WhatsApp statuses and inbound messages")
async def whatsapp_webhook(
    request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handle(request, vas, account, "whatsapp")


@router.get("/whatsapp/webhook", summary="Meta's webhook verification handshake")
async def whatsapp_verify(
    request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handshake(request, vas, account, "whatsapp")


@router.post("/telegram/webhook", summary="Telegram updates")
async def telegram_webhook(
    request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handle(request, vas, account, "telegram")


@router.post("/messenger/webhook", summary="Messenger deliveries and inbound messages")
async def messenger_webhook(
    request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handle(request, vas, account, "messenger")


@router.get("/messenger/webhook", summary="Meta's webhook verification handshake")
async def messenger_verify(
    request: Request, account: str = Account, vas: Vas = Depends(get_vas)
) -> Response:
    return await _handshake(request, vas, account, "messenger")
