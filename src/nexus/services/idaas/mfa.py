"""TOTP factors (RFC 6238) with replay protection, and one-time recovery codes."""

from __future__ import annotations

import io
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.crypto import seal, token_hash, unseal
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict, Problem, RateLimited, Unauthorized
from nexus.services.idaas import audit
from nexus.services.idaas.login import Throttle, account_key, address_key, signed_in
from nexus.services.idaas.models import MfaChallenge, MfaFactor, Org, RecoveryCode, User
from nexus.services.idaas.settings import IdaasSettings
from nexus.services.idaas.tokens import TokenIssuer, TokenPair

PURPOSE = "idaas.totp"
RECOVERY_CODES = 10


def _code_hash(code: str) -> str:
    return token_hash(code.replace("-", "").replace(" ", "").lower())


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


async def enroll_totp(session: AsyncSession, secret_key: str, user: User) -> dict[str, str]:
    """Start (or restart) enrollment: a fresh secret, unconfirmed until a code is shown."""
    existing = (
        await session.scalars(
            select(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.kind == "totp")
        )
    ).all()
    if any(f.confirmed_at for f in existing):
        raise Conflict("TOTP is already enabled; disable it first to enroll a new device.")
    for factor in existing:
        await session.delete(factor)
    secret = pyotp.random_base32()
    session.add(
        MfaFactor(
            org_id=user.org_id,
            user_id=user.id,
            kind="totp",
            secret_sealed=seal(secret_key, PURPOSE, secret),
        )
    )
    org = await session.get(Org, user.org_id)
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=f"Nexus ({org.name if org else ''})"
    )
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_svg(uri)}


def _check_totp(secret_key: str, factor: MfaFactor, code: str) -> bool:
    totp = pyotp.TOTP(unseal(secret_key, PURPOSE, factor.secret_sealed))
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return False
    now = time.time()
    for offset in (-1, 0, 1):  # one step of clock drift either way
        step = int(now // 30) + offset
        if step > factor.last_step and totp.verify(code, for_time=step * 30):
            factor.last_step = step
            return True
    return False


async def confirm_totp(session: AsyncSession, secret_key: str, user: User, code: str) -> list[str]:
    factor = await session.scalar(
        select(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.kind == "totp")
    )
    if factor is None:
        raise Conflict("Start TOTP enrollment first (POST /api/v1/me/mfa/totp).")
    if factor.confirmed_at is not None:
        raise Conflict("TOTP is already enabled.")
    if not _check_totp(secret_key, factor, code):
        raise Problem(
            "The code is not right; check the device's clock and try again.",
            status=422,
            slug="invalid-code",
        )
    factor.confirmed_at = utcnow()
    return await replace_recovery_codes(session, user)


async def replace_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = new_recovery_codes()
    session.add_all(
        RecoveryCode(org_id=user.org_id, user_id=user.id, code_hash=_code_hash(c)) for c in codes
    )
    return codes


async def disable_totp(session: AsyncSession, user: User) -> bool:
    result = await session.execute(
        delete(MfaFactor).where(MfaFactor.user_id == user.id, MfaFactor.kind == "totp")
    )
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def has_mfa(session: AsyncSession, user_id: str) -> bool:
    return bool(
        await session.scalar(
            select(MfaFactor.id).where(
                MfaFactor.user_id == user_id, MfaFactor.confirmed_at.is_not(None)
            )
        )
    )


async def verify_challenge(
    session: AsyncSession,
    issuer: TokenIssuer,
    idaas: IdaasSettings,
    secret_key: str,
    *,
    mfa_token: str,
    code: str,
    origin: audit.Origin,
) -> TokenPair | Problem:
    """Finish an MFA login; returns a Problem (to raise after commit) on failure."""
    challenge = await session.scalar(
        select(MfaChallenge).where(MfaChallenge.token_hash == token_hash(mfa_token))
    )
    now = utcnow()
    if challenge is None or challenge.used_at or challenge.expires_at <= now:
        return Unauthorized(
            "The MFA step expired or is not valid; log in again.",
            slug="invalid-mfa-token",
            headers={},
        )
    if challenge.attempts >= idaas.mfa_max_attempts:
        return Unauthorized(
            "Too many wrong codes; log in again.", slug="invalid-mfa-token", headers={}
        )
    user = await session.get(User, challenge.user_id)
    assert user is not None
    keys = [account_key(user.email), address_key(origin.ip)]
    wait = await Throttle(idaas).retry_after(session, keys)
    if wait > 0:
        return RateLimited(
            f"Too many failed attempts; try again in {int(wait) + 1} s.",
            headers={"Retry-After": str(int(wait) + 1)},
            slug="login-throttled",
        )
    factors = (
        await session.scalars(
            select(MfaFactor).where(
                MfaFactor.user_id == user.id, MfaFactor.confirmed_at.is_not(None)
            )
        )
    ).all()
    method = None
    if any(_check_totp(secret_key, f, code) for f in factors if f.kind == "totp"):
        method = "totp"
    else:
        recovery = await session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _code_hash(code),
                RecoveryCode.used_at.is_(None),
            )
        )
        if recovery is not None:
            recovery.used_at = now
            method = "recovery_code"
    if method is None:
        challenge.attempts += 1
        # wrong codes count like wrong passwords: knowing the password is not enough to
        # try codes without end
        await Throttle(idaas).failed(session, keys)
        audit.record(
            session,
            "auth.mfa.failed",
            org_id=user.org_id,
            origin=origin,
            actor_id=user.id,
            actor_type="user",
            result="failure",
        )
        left = idaas.mfa_max_attempts - challenge.attempts
        return Unauthorized(
            f"The code is not right ({left} tries left).", slug="invalid-code", headers={}
        )
    challenge.used_at = now
    return await signed_in(session, issuer, user, origin, mfa=method)
