"""/api/v1/vas/twilio-credentials: an org's Twilio-style accounts and API keys.

The auth token of an account and the secret of a key are returned once, when created;
afterwards only their SIDs are shown. Revoking an account revokes its keys.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select, update

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import utcnow
from nexus.kernel.errors import NotFound
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas.routes.messages import get_vas
from nexus.services.vas.state import Vas
from nexus.services.vas.twilio_api import credentials
from nexus.services.vas.twilio_api.models import TwilioCredential

router = APIRouter(prefix="/vas/twilio-credentials", tags=["twilio-compatible"])
PERMISSION = "vas:twilio_credential:manage"


class CredentialIn(BaseModel):
    friendly_name: str = Field("", max_length=200)


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str = Field(description="`account` (an AC… SID) or `key` (an SK… SID).")
    sid: str
    account_sid: str = Field(description="The account a key belongs to; its own SID if one.")
    friendly_name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class AccountCreated(CredentialOut):
    auth_token: str = Field(description="Shown once: store it now.")


class KeyCreated(CredentialOut):
    secret: str = Field(description="Shown once: store it now.")


@router.post("", status_code=201, response_model=AccountCreated, summary="Create an account")
async def create_account(
    body: CredentialIn, principal: Principal = require(PERMISSION), vas: Vas = Depends(get_vas)
) -> AccountCreated:
    """An `AC…` account SID and its auth token, for HTTP Basic auth on `/2010-04-01/…`."""
    async with vas.db.transaction(org_id=principal.org_id) as session:
        row, token = await credentials.create_account(
            session, vas.secret, principal.org_id, body.friendly_name, principal.subject
        )
        await session.flush()
    return AccountCreated.model_validate({**_out(row).model_dump(), "auth_token": token})


@router.post(
    "/{account_sid}/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key of an account",
)
async def create_key(
    account_sid: str,
    body: CredentialIn,
    principal: Principal = require(PERMISSION),
    vas: Vas = Depends(get_vas),
) -> KeyCreated:
    """An `SK…` key SID and its secret: Basic auth as the key, on the account's paths."""
    async with vas.db.transaction(org_id=principal.org_id) as session:
        account = await _get(session, principal.org_id, account_sid)
        if account.kind != "account" or account.revoked_at is not None:
            raise NotFound(f"No active account {account_sid}.")
        row, secret = await credentials.create_key(
            session, account, body.friendly_name, principal.subject
        )
        await session.flush()
    return KeyCreated.model_validate({**_out(row).model_dump(), "secret": secret})


@router.get("", response_model=Page[CredentialOut], summary="Accounts and keys")
async def list_credentials(
    include_revoked: bool = False,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require(PERMISSION),
    vas: Vas = Depends(get_vas),
) -> Page[CredentialOut]:
    stmt = select(TwilioCredential).where(TwilioCredential.org_id == principal.org_id)
    if not include_revoked:
        stmt = stmt.where(TwilioCredential.revoked_at.is_(None))
    async with vas.db.read(org_id=principal.org_id) as session:
        rows = list(await session.scalars(paginate(stmt, TwilioCredential.id, cursor, limit)))
    items, next_cursor = page_of(rows, limit)
    return Page(items=[_out(r) for r in items], next_cursor=next_cursor)


@router.delete("/{sid}", status_code=204, summary="Revoke an account (and its keys) or a key")
async def revoke(
    sid: str, principal: Principal = require(PERMISSION), vas: Vas = Depends(get_vas)
) -> Response:
    async with vas.db.transaction(org_id=principal.org_id) as session:
        row = await _get(session, principal.org_id, sid)
        scope = TwilioCredential.sid == sid
        if row.kind == "account":
            scope = or_(scope, TwilioCredential.account_sid == sid)
        await session.execute(
            update(TwilioCredential)
            .where(scope, TwilioCredential.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    credentials.forget(vas)
    return Response(status_code=204)


async def _get(session: object, org_id: str, sid: str) -> TwilioCredential:
    row = await session.scalar(  # type: ignore[attr-defined]
        select(TwilioCredential).where(
            TwilioCredential.org_id == org_id, TwilioCredential.sid == sid
        )
    )
    if row is None:
        raise NotFound(f"No Twilio credential {sid}.")
    return row  # type: ignore[no-any-return]


def _out(row: TwilioCredential) -> CredentialOut:
    return CredentialOut.model_validate(row)
