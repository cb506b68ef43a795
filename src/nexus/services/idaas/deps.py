"""What IDaaS routes share: the service state, the acting org, transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal, current_principal
from nexus.kernel.config import Settings
from nexus.kernel.db import Database, scope_to_org
from nexus.kernel.errors import Forbidden, NotFound, Unauthorized
from nexus.kernel.runtime import Runtime
from nexus.services.idaas.audit import Origin
from nexus.services.idaas.keys import KeyStore
from nexus.services.idaas.models import Org
from nexus.services.idaas.settings import IdaasSettings
from nexus.services.idaas.tokens import TokenIssuer


@dataclass
class Idaas:
    runtime: Runtime
    db: Database
    keys: KeyStore
    issuer: TokenIssuer
    settings: Settings
    idaas: IdaasSettings

    @property
    def secret(self) -> str:
        return self.settings.secret()


def idaas_of(request: Request) -> Idaas:
    return request.app.state.runtime.state["idaas"]  # type: ignore[no-any-return]


async def get_idaas(request: Request) -> Idaas:
    """The dependency (async: a plain `def` dependency costs a thread hop per request)."""
    return idaas_of(request)


def origin(request: Request) -> Origin:
    return Origin.of(request)


async def descendants(session: AsyncSession, org_id: str) -> set[str]:
    """The org and every org below it."""
    found, frontier = {org_id}, [org_id]
    while frontier:
        children = (await session.scalars(select(Org.id).where(Org.parent_id.in_(frontier)))).all()
        frontier = [c for c in children if c not in found]
        found.update(frontier)
    return found


async def acting_org(request: Request, session: AsyncSession, principal: Principal) -> str:
    """The org a request acts in: the caller's, or (header `X-Org-Id`) a child org of it,
    which an administrator of a parent org may administer."""
    wanted = request.headers.get("x-org-id")
    if not wanted or wanted == principal.org_id:
        return principal.org_id
    if wanted not in await descendants(session, principal.org_id):
        raise NotFound(f"No org {wanted}.")
    if not principal.can("idaas:org:manage"):
        raise Forbidden("Acting in a child org needs the permission idaas:org:manage.")
    return wanted


@asynccontextmanager
async def in_org(
    idaas: Idaas, request: Request, principal: Principal, *, write: bool = True
) -> AsyncIterator[tuple[AsyncSession, str]]:
    """A unit of work (or a read) scoped to the org the request acts in."""
    unit = idaas.db.transaction() if write else idaas.db.read()
    async with unit as session:
        org_id = await acting_org(request, session, principal)
        scope_to_org(session, org_id)
        yield session, org_id


async def refuse_foreign_org(request: Request) -> None:
    """Router-wide: a request that names an org (`X-Org-Id`) the caller may not act in is
    refused on every route, even those that act in the caller's own org only."""
    wanted = request.headers.get("x-org-id")
    if not wanted:
        return
    try:
        principal = await current_principal(request)
    except Unauthorized:
        return  # unauthenticated routes (login, refresh): the header means nothing there
    if wanted != principal.org_id:
        async with idaas_of(request).db.read() as session:
            await acting_org(request, session, principal)
