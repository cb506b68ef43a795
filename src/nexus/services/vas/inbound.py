"""Inbound messages and opt-out keywords: normalized, stored, published."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import insert_ignore, utcnow
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.services.vas import lifecycle
from nexus.services.vas.models import Consent, Message, ProviderAccount
from nexus.services.vas.providers.base import InboundMessage
from nexus.services.vas.state import OrgView


def keyword_of(body: str | None, org: OrgView) -> tuple[str, bool] | None:
    """('STOP', True) for an opt-out keyword, ('START', False) for an opt-in; else None."""
    word = (body or "").strip().upper().rstrip(".!")
    if word in org.stop_keywords:
        return word, True
    if word in org.start_keywords:
        return word, False
    return None


async def set_consent(
    session: AsyncSession,
    org_id: str,
    channel: str,
    address: str,
    opted_out: bool,
    *,
    source: str,
    keyword: str | None = None,
) -> None:
    await insert_ignore(
        session,
        Consent,
        [
            {
                "id": new_id(),
                "org_id": org_id,
                "channel": channel,
                "address": address,
                "opted_out": opted_out,
                "source": source,
                "keyword": keyword,
                "updated_at": utcnow(),
            }
        ],
    )
    consent = await session.scalar(
        select(Consent).where(
            Consent.org_id == org_id, Consent.channel == channel, Consent.address == address
        )
    )
    assert consent is not None
    consent.opted_out, consent.source, consent.keyword = opted_out, source, keyword
    consent.updated_at = utcnow()


async def receive(
    session: AsyncSession,
    account: ProviderAccount,
    item: InboundMessage,
    org: OrgView,
) -> Message | None:
    """Store an inbound message once (by provider id), handle keywords, publish it."""
    existing = await session.scalar(
        select(Message.id).where(
            Message.org_id == account.org_id,
            Message.provider_type == account.type,
            Message.provider_message_id == item.provider_message_id,
            Message.direction == "inbound",
        )
    )
    if existing:
        return None  # a provider retry of the same webhook
    now = utcnow()
    message = Message(
        id=new_id(),
        org_id=account.org_id,
        channel=item.channel,
        direction="inbound",
        to=item.to or account.sender or "",
        sender=item.sender,
        body=item.body,
        content={"media": item.media} if item.media else {},
        status="received",
        provider_id=account.id,
        provider_type=account.type,
        provider_message_id=item.provider_message_id,
        created_at=item.at or now,
        updated_at=now,
        done_at=now,
    )
    session.add(message)
    lifecycle.record(session, message, "received", provider_id=account.id)
    keyword = keyword_of(item.body, org)
    if keyword is not None:
        word, opted_out = keyword
        await set_consent(
            session,
            account.org_id,
            item.channel,
            item.sender,
            opted_out,
            source="keyword",
            keyword=word,
        )
        lifecycle.record(
            session,
            message,
            "received",
            kind="consent",
            provider_id=account.id,
            reason=f"{word}: {'opted out' if opted_out else 'opted back in'}",
        )
    data = lifecycle.event_data(message) | {
        "from": item.sender,
        "body": item.body,
        "keyword": keyword[0] if keyword else None,
    }
    emit(session, "nexus.vas.message.received", data, org_id=account.org_id)
    return message
