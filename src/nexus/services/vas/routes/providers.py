"""/api/v1/providers: an org's provider accounts (credentials write-only)."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nexus.kernel.auth import Principal, require
from nexus.kernel.errors import Conflict, NotFound, Problem
from nexus.services.vas import inbound
from nexus.services.vas.accounts import seal_credentials
from nexus.services.vas.addresses import InvalidAddress, normalize
from nexus.services.vas.models import ProviderAccount
from nexus.services.vas.providers import ADAPTERS, adapter_class, sandbox
from nexus.services.vas.routes.messages import get_vas
from nexus.services.vas.schemas import (
    CredentialFieldOut,
    MessageOut,
    ProviderHealthOut,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
    ProviderTypeOut,
)
from nexus.services.vas.state import Vas

router = APIRouter(prefix="/providers", tags=["providers"])


def _out(vas: Vas, account: ProviderAccount, principal: Principal) -> ProviderOut:
    out = ProviderOut.model_validate(account)
    # the URL carries the account's webhook token: for those who manage providers only
    if principal.can("vas:provider:manage") and account.type != "sandbox":
        out.webhook_url = vas.accounts.callback_url(account)
    return out


def _check(type_: str, channel: str, credentials: dict[str, object]) -> None:
    if type_ not in ADAPTERS:
        raise Problem(
            f"Unknown provider type {type_!r}; known: {', '.join(sorted(ADAPTERS))}.",
            status=422,
            slug="unknown-provider",
            field="type",
        )
    cls = adapter_class(type_)
    if channel not in cls.channels:
        raise Problem(
            f"{type_} does not serve {channel} (it serves {', '.join(sorted(cls.channels))}).",
            status=422,
            slug="unsupported-channel",
            field="channel",
        )
    missing = [c for c in cls.required_credentials if not credentials.get(c)]
    if missing:
        raise Problem(
            f"{type_} needs the credentials {', '.join(missing)}.",
            status=422,
            slug="missing-credentials",
            field="credentials",
        )


@router.get("", response_model=list[ProviderOut])
async def list_providers(
    principal: Principal = require("vas:provider:read"), vas: Vas = Depends(get_vas)
) -> list[ProviderOut]:
    async with vas.db.read(org_id=principal.org_id) as session:
        rows = (
            await session.scalars(
                select(ProviderAccount).order_by(
                    ProviderAccount.channel, ProviderAccount.priority, ProviderAccount.name
                )
            )
        ).all()
    return [_out(vas, r, principal) for r in rows]


@router.post("", response_model=ProviderOut, status_code=201, summary="Add a provider account")
async def create_provider(
    body: ProviderIn,
    principal: Principal = require("vas:provider:manage"),
    vas: Vas = Depends(get_vas),
) -> ProviderOut:
    _check(body.type, body.channel, body.credentials)
    try:
        async with vas.db.transaction(org_id=principal.org_id) as session:
            account = ProviderAccount(
                org_id=principal.org_id,
                type=body.type,
                channel=body.channel,
                name=body.name,
                credentials_sealed=seal_credentials(vas.secret, body.credentials),
                base_url=body.base_url,
                sender=body.sender,
                countries=[c.upper() for c in body.countries],
                priority=body.priority,
                cost_per_unit=body.cost_per_unit,
                currency=body.currency,
                rate_limit_per_s=body.rate_limit_per_s,
                enabled=body.enabled,
                options=body.options,
                webhook_token=secrets.token_urlsafe(24),
            )
            session.add(account)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"A provider named {body.name!r} exists.") from None
    vas.accounts.forget(principal.org_id)
    return _out(vas, account, principal)


async def _get(vas: Vas, session: object, provider_id: str) -> ProviderAccount:
    account = await session.get(ProviderAccount, provider_id)  # type: ignore[attr-defined]
    if account is None:
        raise NotFound(f"No provider {provider_id}.")
    return account  # type: ignore[no-any-return]


@router.get(
    "/types",
    response_model=list[ProviderTypeOut],
    summary="Provider types: their channels and credential fields",
)
async def provider_types(
    principal: Principal = require("vas:provider:read"),
) -> list[ProviderTypeOut]:
    out = []
    for type_ in ADAPTERS:
        cls = adapter_class(type_)
        fields = [(name, True) for name in cls.required_credentials]
        fields += [(name, False) for name in cls.optional_credentials]
        out.append(
            ProviderTypeOut(
                type=type_,
                channels=sorted(cls.channels),
                credentials=[
                    CredentialFieldOut(
                        name=name, required=required, secret=name not in cls.public_credentials
                    )
                    for name, required in fields
                ],
            )
        )
    return out


async def _probe(vas: Vas, account: ProviderAccount) -> ProviderHealthOut:
    try:
        health = await asyncio.wait_for(vas.accounts.adapter(account).health(), timeout=5)
        ok, detail, latency = health.ok, health.detail, health.latency_ms
    except Exception as exc:  # a probe must never break the list
        ok, detail, latency = False, f"{type(exc).__name__}: {exc}"[:300], None
    vas.router.set_health(account.id, ok)
    stats = vas.router.stats_of(account.id)
    return ProviderHealthOut(
        id=account.id,
        name=account.name,
        type=account.type,
        channel=account.channel,
        enabled=account.enabled,
        healthy=ok,
        detail=detail,
        latency_ms=latency,
        circuit=vas.router.circuit_state(account.id),
        success_rate=round(stats.success_rate(), 3),
    )


@router.get("/health", response_model=list[ProviderHealthOut], summary="Health and circuit state")
async def providers_health(
    principal: Principal = require("vas:provider:read"), vas: Vas = Depends(get_vas)
) -> list[ProviderHealthOut]:
    async with vas.db.read(org_id=principal.org_id) as session:
        rows = (await session.scalars(select(ProviderAccount).order_by(ProviderAccount.name))).all()
    return list(await asyncio.gather(*(_probe(vas, r) for r in rows)))


@router.get(
    "/{provider_id}/health",
    response_model=ProviderHealthOut,
    summary="Probe one provider account now",
)
async def provider_health(
    provider_id: str,
    principal: Principal = require("vas:provider:read"),
    vas: Vas = Depends(get_vas),
) -> ProviderHealthOut:
    async with vas.db.read(org_id=principal.org_id) as session:
        account = await _get(vas, session, provider_id)
    return await _probe(vas, account)


@router.get("/{provider_id}", response_model=ProviderOut)
async def get_provider(
    provider_id: str,
    principal: Principal = require("vas:provider:read"),
    vas: Vas = Depends(get_vas),
) -> ProviderOut:
    async with vas.db.read(org_id=principal.org_id) as session:
        return _out(vas, await _get(vas, session, provider_id), principal)


@router.patch("/{provider_id}", response_model=ProviderOut)
async def update_provider(
    provider_id: str,
    body: ProviderPatch,
    principal: Principal = require("vas:provider:manage"),
    vas: Vas = Depends(get_vas),
) -> ProviderOut:
    async with vas.db.transaction(org_id=principal.org_id) as session:
        account = await _get(vas, session, provider_id)
        changes = body.model_dump(exclude_unset=True, mode="json")
        if "credentials" in changes:
            _check(account.type, account.channel, changes["credentials"] or {})
            account.credentials_sealed = seal_credentials(
                vas.secret, changes.pop("credentials") or {}
            )
        if "countries" in changes:
            changes["countries"] = [c.upper() for c in changes["countries"] or []]
        for key, value in changes.items():
            setattr(account, key, value)
    vas.accounts.forget(principal.org_id)
    return _out(vas, account, principal)


@router.delete("/{provider_id}", status_code=204)
async def delete_provider(
    provider_id: str,
    principal: Principal = require("vas:provider:manage"),
    vas: Vas = Depends(get_vas),
) -> None:
    async with vas.db.transaction(org_id=principal.org_id) as session:
        await session.delete(await _get(vas, session, provider_id))
    vas.accounts.forget(principal.org_id)


class SandboxInboundIn(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "+14155550123", "body": "Sounds good"}]},
    )

    from_: str = Field(alias="from", min_length=1, max_length=320, description="The sender.")
    body: str = Field(min_length=1, max_length=100_000)
    to: str | None = Field(
        None, max_length=320, description="The recipient; the account's sender if left out."
    )


def _address(channel: str, field: str, raw: str, region: str | None) -> str:
    try:
        return normalize(channel, raw, region)
    except InvalidAddress as exc:
        raise Problem(str(exc), status=422, slug="invalid-address", field=field) from None


@router.post(
    "/{provider_id}/sandbox/inbound",
    response_model=MessageOut,
    status_code=201,
    summary="Simulate an inbound message to a sandbox account (a reply, a STOP...)",
)
async def sandbox_inbound(
    provider_id: str,
    body: SandboxInboundIn,
    principal: Principal = require("vas:provider:manage"),
    vas: Vas = Depends(get_vas),
) -> MessageOut:
    org = await vas.org(principal.org_id)
    async with vas.db.transaction(org_id=principal.org_id) as session:
        account = await _get(vas, session, provider_id)
        if account.type != "sandbox":
            raise Conflict(
                f"{account.name!r} is a {account.type} account; only sandbox accounts "
                "simulate inbound messages (real ones receive them at their webhook_url).",
                slug="not-sandbox",
            )
        region = org.default_region
        sender = _address(account.channel, "from", body.from_, region)
        to = _address(account.channel, "to", body.to, region) if body.to else None
        adapter = vas.accounts.adapter(account)
        assert isinstance(adapter, sandbox.Adapter)
        item = adapter.inbound(sender, to, body.body)
        message = await inbound.receive(session, account, item, org)
        assert message is not None  # a fresh provider message id is never a retry
        await session.flush()
        return MessageOut.model_validate(message)
