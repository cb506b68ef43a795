"""Password login with brute-force protection, and the MFA step that may follow it.

No user enumeration: an unknown e-mail, a wrong password and a suspended account all
get the same answer after the same amount of work (one argon2id verification).
Failures are counted per account and per address: past `backoff_after` failures each
further attempt must wait 2**(n - backoff_after) seconds, past `lock_after` the key is
locked for `lock_s`. A success clears the account's counter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.crypto import random_token, token_hash
from nexus.kernel.db import Database, insert_ignore, utcnow
from nexus.kernel.errors import Problem, RateLimited, Unauthorized
from nexus.services.idaas import audit
from nexus.services.idaas.models import LoginThrottle, MfaChallenge, MfaFactor, Org, User
from nexus.services.idaas.passwords import verify_password
from nexus.services.idaas.settings import IdaasSettings
from nexus.services.idaas.tokens import TokenIssuer, TokenPair

BAD_CREDENTIALS = "The e-mail or password is not right."


@dataclass
class MfaRequired:
    mfa_token: str
    factors: list[str]

    def body(self) -> dict[str, object]:
        return {"mfa_required": True, "mfa_token": self.mfa_token, "factors": self.factors}


class Throttle:
    def __init__(self, idaas: IdaasSettings) -> None:
        self.idaas = idaas

    async def retry_after(self, session: AsyncSession, keys: list[str]) -> float:
        rows = (
            await session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
        ).all()
        now = utcnow()
        wait = 0.0
        for row in rows:
            if now - row.last_failure_at > dt.timedelta(seconds=self.idaas.failure_window_s):
                continue
            if row.blocked_until and row.blocked_until > now:
                wait = max(wait, (row.blocked_until - now).total_seconds())
        return wait

    async def failed(self, session: AsyncSession, keys: list[str]) -> None:
        now = utcnow()
        await insert_ignore(
            session,
            LoginThrottle,
            [{"key": k, "failures": 0, "last_failure_at": now} for k in keys],
        )
        rows = (
            await session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
        ).all()
        for row in rows:
            if now - row.last_failure_at > dt.timedelta(seconds=self.idaas.failure_window_s):
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            n = row.failures
            if n >= self.idaas.lock_after:
                row.blocked_until = now + dt.timedelta(seconds=self.idaas.lock_s)
            elif n >= self.idaas.backoff_after:
                delay = min(2 ** (n - self.idaas.backoff_after), self.idaas.lock_s)
                row.blocked_until = now + dt.timedelta(seconds=delay)

    async def succeeded(self, session: AsyncSession, key: str) -> None:
        row = await session.get(LoginThrottle, key)
        if row is not None:
            await session.delete(row)


def account_key(email: str) -> str:
    return f"acct:{email.lower()}"


def address_key(ip: str | None) -> str:
    return f"ip:{ip or 'unknown'}"


async def resolve_org(session: AsyncSession, org: str | None) -> Org | None:
    if not org:
        return None
    return await session.scalar(select(Org).where((Org.id == org) | (Org.slug == org.lower())))


async def _candidates(session: AsyncSession, email: str, org: str | None) -> list[User]:
    """The active users with this e-mail (in the named org, when one is named)."""
    stmt = select(User).where(User.email == email, User.kind == "user")
    if org is not None:
        target_org = await resolve_org(session, org)
        stmt = stmt.where(User.org_id == (target_org.id if target_org else "-"))
    # users of a suspended org cannot log in (they look like any failed login)
    stmt = stmt.join(Org, Org.id == User.org_id).where(Org.status == "active")
    return list((await session.scalars(stmt)).all())


async def check_password(
    db: Database,
    idaas: IdaasSettings,
    *,
    email: str,
    password: str,
    org: str | None,
    origin: audit.Origin,
) -> set[str]:
    """The ids of the users whose password this is. Runs before the login's transaction,
    in a read session, with argon2 in a thread: a login never holds the write lock (or
    the event loop) for the ~30 ms a hash check costs. Throttled: nothing is checked."""
    email = email.strip().lower()
    async with db.read() as session:
        if await Throttle(idaas).retry_after(session, [account_key(email), address_key(origin.ip)]):
            return set()
        candidates = await _candidates(session, email, org)
    if not candidates:
        await asyncio.to_thread(verify_password, password, None)  # same work as a wrong one
        return set()
    return {
        u.id
        for u in candidates
        if await asyncio.to_thread(verify_password, password, u.password_hash)
    }


async def password_login(
    session: AsyncSession,
    issuer: TokenIssuer,
    idaas: IdaasSettings,
    *,
    email: str,
    matched_ids: set[str],
    org: str | None,
    origin: audit.Origin,
) -> TokenPair | MfaRequired | Problem:
    """Finish a login whose password `check_password` checked; the caller commits, then
    raises a returned Problem."""
    email = email.strip().lower()
    throttle = Throttle(idaas)
    # One counter per e-mail address, whichever org is named (or none): naming the org
    # differently must not buy an attacker fresh attempts.
    keys = [account_key(email), address_key(origin.ip)]
    candidates = await _candidates(session, email, org)
    wait = await throttle.retry_after(session, keys)
    if wait > 0:  # refused without checking the password, and audited
        for candidate in candidates:
            audit.record(
                session,
                "auth.login.throttled",
                org_id=candidate.org_id,
                origin=origin,
                actor_id=candidate.id,
                actor_type="user",
                target_type="user",
                target_id=candidate.id,
                result="failure",
                retry_after_s=int(wait) + 1,
            )
        return RateLimited(
            f"Too many failed logins; try again in {int(wait) + 1} s.",
            headers={"Retry-After": str(int(wait) + 1)},
            slug="login-throttled",
        )
    matched = [u for u in candidates if u.id in matched_ids]
    user = matched[0] if len(matched) == 1 else None
    if len(matched) > 1:
        return Problem(
            "This e-mail belongs to several organizations; say which one with `org`.",
            status=409,
            slug="org-required",
            orgs=[u.org_id for u in matched],
        )
    if user is None or user.status != "active":
        await throttle.failed(session, keys)
        for candidate in candidates:
            audit.record(
                session,
                "auth.login.failed",
                org_id=candidate.org_id,
                origin=origin,
                actor_id=candidate.id,
                actor_type="user",
                target_type="user",
                target_id=candidate.id,
                result="failure",
                reason="inactive" if candidate in matched else "bad_password",
            )
        return Unauthorized(BAD_CREDENTIALS, slug="invalid-credentials", headers={})
    await throttle.succeeded(session, keys[0])
    factors = (
        await session.scalars(
            select(MfaFactor.kind).where(
                MfaFactor.user_id == user.id, MfaFactor.confirmed_at.is_not(None)
            )
        )
    ).all()
    if factors:
        mfa_token = random_token("nxm_")
        session.add(
            MfaChallenge(
                org_id=user.org_id,
                token_hash=token_hash(mfa_token),
                user_id=user.id,
                expires_at=utcnow() + dt.timedelta(seconds=idaas.mfa_challenge_ttl_s),
                ip=origin.ip,
                user_agent=origin.user_agent,
            )
        )
        audit.record(
            session,
            "auth.login.mfa_required",
            org_id=user.org_id,
            origin=origin,
            actor_id=user.id,
            actor_type="user",
        )
        return MfaRequired(mfa_token, [*sorted(set(factors)), "recovery_code"])
    return await signed_in(session, issuer, user, origin, mfa=None)


async def signed_in(
    session: AsyncSession,
    issuer: TokenIssuer,
    user: User,
    origin: audit.Origin,
    *,
    mfa: str | None,
) -> TokenPair:
    """The end of every successful login: a session with its tokens, audited."""
    pair = await issuer.start_session(session, user, origin=origin, mfa=mfa is not None)
    audit.record(
        session,
        "auth.login.succeeded",
        org_id=user.org_id,
        origin=origin,
        actor_id=user.id,
        actor_type="user",
        target_type="session",
        target_id=pair.session_id,
        **({"mfa": mfa} if mfa else {}),
    )
    return pair
