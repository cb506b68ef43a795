"""/api/v1/vas/settings: an org's default region and extra opt-out keywords."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from nexus.kernel.auth import Principal, require
from nexus.services.vas.models import OrgSettings
from nexus.services.vas.routes.messages import get_vas
from nexus.services.vas.state import Vas

router = APIRouter(prefix="/vas", tags=["settings"])


class SettingsIn(BaseModel):
    default_region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Region of numbers given without +<country>."
    )
    stop_keywords: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Opt-out words besides STOP, UNSUBSCRIBE, ...",
    )
    start_keywords: list[str] = Field(default_factory=list, max_length=50)


class SettingsOut(BaseModel):
    default_region: str | None
    stop_keywords: list[str] = Field(description="Every word that opts a sender out.")
    start_keywords: list[str]


async def _view(vas: Vas, org_id: str) -> SettingsOut:
    org = await vas.org(org_id)
    return SettingsOut(
        default_region=org.default_region,
        stop_keywords=sorted(org.stop_keywords),
        start_keywords=sorted(org.start_keywords),
    )


@router.get("/settings", response_model=SettingsOut)
async def get_settings(
    principal: Principal = require("vas:message:read"), vas: Vas = Depends(get_vas)
) -> SettingsOut:
    return await _view(vas, principal.org_id)


@router.put("/settings", response_model=SettingsOut)
async def put_settings(
    body: SettingsIn,
    principal: Principal = require("vas:provider:manage"),
    vas: Vas = Depends(get_vas),
) -> SettingsOut:
    async with vas.db.transaction() as session:
        row = await session.get(OrgSettings, principal.org_id)
        if row is None:
            row = OrgSettings(org_id=principal.org_id)
            session.add(row)
        row.default_region = body.default_region
        row.stop_keywords = sorted({k.strip().upper() for k in body.stop_keywords if k.strip()})
        row.start_keywords = sorted({k.strip().upper() for k in body.start_keywords if k.strip()})
    vas.forget_org(principal.org_id)
    return await _view(vas, principal.org_id)
