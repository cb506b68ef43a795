"""Twilio-style credentials: `AC…` accounts with an auth token, `SK…` API keys with a
secret, and HTTP Basic authentication of the Twilio paths with either.

An account is one org's door into the Twilio-compatible API: whoever holds its auth
token (or one of its keys) may send and read that org's SMS and WhatsApp messages.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass

import structlog
from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.crypto import constant_time_equals, seal, token_hash, unseal
from nexus.kernel.db import utcnow
from nexus.kernel.ratelimit import client_ip, get_rate_limiter
from nexus.services.vas.state import Vas
from nexus.services.vas.twilio_api.errors import TwilioError
from nexus.services.vas.twilio_api.models import TwilioCredential

PURPOSE = "vas.twilio-auth-token"
CACHE_S = 10.0  # how long a checked credential is trusted in this process
# Credential checks (cache misses) per client address and minute: a legitimate client
# needs one per credential every CACHE_S; guessing needs one per guess.
CHECKS_PER_MINUTE = 120
_CACHE_KEY = "vas.twilio_auth"


@dataclass(frozen=True)
class TwilioCaller:
    """An authenticated caller of the Twilio paths."""

    org_id: str
    account_sid: str
    credential_sid: str  # the account SID, or the SK key SID used


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


async def create_account(
    session: AsyncSession, secret_key: str, org_id: str, friendly_name: str, created_by: str
) -> tuple[TwilioCredential, str]:
    """A new account; returns it with its auth token (shown once)."""
    token = secrets.token_hex(16)
    sid = new_sid("AC")
    row = TwilioCredential(
        org_id=org_id,
        kind="account",
        sid=sid,
        account_sid=sid,
        friendly_name=friendly_name,
        secret_hash=token_hash(token),
        secret_sealed=seal(secret_key, PURPOSE, token),
        created_by=created_by,
    )
    session.add(row)
    return row, token


async def create_key(
    session: AsyncSession, account: TwilioCredential, friendly_name: str, created_by: str
) -> tuple[TwilioCredential, str]:
    """A new API key bound to `account`; returns it with its secret (shown once)."""
    secret = secrets.token_urlsafe(24)
    row = TwilioCredential(
        org_id=account.org_id,
        kind="key",
        sid=new_sid("SK"),
        account_sid=account.sid,
        friendly_name=friendly_name,
        secret_hash=token_hash(secret),
        created_by=created_by,
    )
    session.add(row)
    return row, secret


def auth_token(vas: Vas, account: TwilioCredential) -> str:
    """The account's auth token (to sign status callbacks)."""
    assert account.secret_sealed is not None
    return unseal(vas.secret, PURPOSE, account.secret_sealed)


def forget(vas: Vas) -> None:
    """Drop this process's cache of checked credentials (after a revocation)."""
    vas.runtime.state.pop(_CACHE_KEY, None)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user and password else None


async def authenticate(vas: Vas, request: Request, account_sid: str) -> TwilioCaller:
    """The caller of `/2010-04-01/Accounts/{account_sid}/…`, or TwilioError 20003."""
    pair = _basic(request)
    if pair is None:
        raise TwilioError(20003)
    user, password = pair
    cache: dict[tuple[str, str], tuple[float, TwilioCaller]] = vas.runtime.state.setdefault(
        _CACHE_KEY, {}
    )
    key = (user, token_hash(password))
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        caller = hit[1]
    else:
        retry = await get_rate_limiter(request).hit(
            "vas.twilio_auth", client_ip(request), CHECKS_PER_MINUTE, 60
        )
        if retry:
            raise TwilioError(
                20429,
                f"Too many requests; try again in {int(retry)} s.",
                headers={"Retry-After": str(int(retry))},
            )
        caller = await _check(vas, user, key[1])
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = (time.monotonic() + CACHE_S, caller)
    if caller.account_sid != account_sid:
        raise TwilioError(20003)
    structlog.contextvars.bind_contextvars(org_id=caller.org_id, credential=caller.credential_sid)
    return caller


async def _check(vas: Vas, user: str, password_hash: str) -> TwilioCaller:
    async with vas.db.read() as session:
        rows = {
            row.sid: row
            for row in await session.scalars(
                select(TwilioCredential).where(  # the credential and its account
                    (TwilioCredential.sid == user)
                    | TwilioCredential.sid.in_(
                        select(TwilioCredential.account_sid).where(TwilioCredential.sid == user)
                    )
                )
            )
        }
    row = rows.get(user)
    if row is None or row.revoked_at is not None:
        raise TwilioError(20003)
    account = rows.get(row.account_sid)
    if account is None or account.revoked_at is not None:
        raise TwilioError(20003)
    if not constant_time_equals(row.secret_hash, password_hash):
        raise TwilioError(20003)
    if row.last_used_at is None or (utcnow() - row.last_used_at).total_seconds() > 300:
        async with vas.db.transaction() as session:
            await session.execute(
                update(TwilioCredential)
                .where(TwilioCredential.id == row.id)
                .values(last_used_at=utcnow())
            )
    return TwilioCaller(org_id=row.org_id, account_sid=row.account_sid, credential_sid=row.sid)
