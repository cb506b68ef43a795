"""/api/v1/auth: login, MFA step, refresh, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from nexus.kernel.auth import Principal, current_principal
from nexus.kernel.errors import Problem
from nexus.kernel.ratelimit import client_ip, enforce
from nexus.services.idaas import audit, mfa
from nexus.services.idaas.deps import Idaas, get_idaas, idaas_of, origin
from nexus.services.idaas.login import MfaRequired, check_password, password_login
from nexus.services.idaas.models import Session
from nexus.services.idaas.schemas import LoginIn, MfaRequiredOut, MfaVerifyIn, RefreshIn, TokensOut
from nexus.services.idaas.tokens import TokenPair

router = APIRouter(prefix="/auth", tags=["auth"])


def _limit(name: str) -> Any:
    """Per source address; the brute-force throttle (per account too) is separate."""

    async def limit_for(request: Request) -> None:
        idaas = idaas_of(request)
        per_minute = idaas.idaas.login_rate_per_minute
        await enforce(request, f"idaas.{name}", client_ip(request), limit=per_minute, per_s=60)

    return Depends(limit_for)


def _answer(outcome: TokenPair | MfaRequired | Problem) -> dict[str, Any]:
    if isinstance(outcome, Problem):
        raise outcome
    return outcome.body()


@router.post(
    "/login",
    response_model=TokensOut | MfaRequiredOut,
    summary="Log in with e-mail and password",
    responses={401: {"description": "Wrong e-mail or password"}, 429: {"description": "Throttled"}},
    dependencies=[_limit("login")],
)
async def login(
    body: LoginIn, request: Request, idaas: Idaas = Depends(get_idaas)
) -> dict[str, Any]:
    """Returns tokens, or `mfa_required` with an `mfa_token` for `/auth/mfa/verify`."""
    where = origin(request)
    matched = await check_password(
        idaas.db, idaas.idaas, email=body.email, password=body.password, org=body.org, origin=where
    )
    async with idaas.db.transaction() as session:
        outcome = await password_login(
            session,
            idaas.issuer,
            idaas.idaas,
            email=body.email,
            matched_ids=matched,
            org=body.org,
            origin=where,
        )
    return _answer(outcome)


@router.post(
    "/mfa/verify",
    response_model=TokensOut,
    dependencies=[_limit("mfa")],
    summary="Finish a login with a TOTP or recovery code",
)
async def mfa_verify(
    body: MfaVerifyIn, request: Request, idaas: Idaas = Depends(get_idaas)
) -> dict[str, Any]:
    async with idaas.db.transaction() as session:
        outcome = await mfa.verify_challenge(
            session,
            idaas.issuer,
            idaas.idaas,
            idaas.secret,
            mfa_token=body.mfa_token,
            code=body.code,
            origin=origin(request),
        )
    return _answer(outcome)


@router.post(
    "/refresh",
    response_model=TokensOut,
    dependencies=[_limit("refresh")],
    summary="Exchange a refresh token for a new pair (rotation)",
)
async def refresh(
    body: RefreshIn, request: Request, idaas: Idaas = Depends(get_idaas)
) -> dict[str, Any]:
    async with idaas.db.transaction() as session:
        outcome = await idaas.issuer.refresh(session, body.refresh_token, origin=origin(request))
    return _answer(outcome)


@router.post("/logout", status_code=204, summary="End this session and its refresh tokens")
async def logout(
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    if not principal.session_id:
        return
    async with idaas.db.transaction() as session:
        login = await session.scalar(
            select(Session).where(
                Session.id == principal.session_id, Session.org_id == principal.org_id
            )
        )
        if login is not None:
            await idaas.issuer.revoke_session(session, login, reason="logout")
            audit.record(
                session,
                "auth.logout",
                org_id=principal.org_id,
                origin=origin(request),
                actor=principal,
                target_type="session",
                target_id=login.id,
            )
