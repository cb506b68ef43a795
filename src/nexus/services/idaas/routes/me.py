"""/api/v1/me: the caller's own account, sessions, password and MFA."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from nexus.kernel.auth import Principal, current_principal
from nexus.kernel.db import utcnow
from nexus.kernel.errors import Forbidden, NotFound, Problem
from nexus.services.idaas import audit, mfa
from nexus.services.idaas.deps import Idaas, get_idaas, origin
from nexus.services.idaas.models import Org, Session, User
from nexus.services.idaas.passwords import check_policy, hash_password, verify_password
from nexus.services.idaas.schemas import (
    CodeIn,
    MeOut,
    OrgOut,
    PasswordChangeIn,
    SessionOut,
    UserOut,
)

router = APIRouter(prefix="/me", tags=["me"])


async def _me(session: Any, principal: Principal) -> User:
    user = await session.get(User, principal.subject)
    if user is None or user.org_id != principal.org_id:
        raise NotFound("Your account no longer exists.")
    return user  # type: ignore[no-any-return]


def _human(principal: Principal) -> None:
    if principal.kind != "user" or not principal.session_id:
        raise Forbidden("Only a person logged in with a session can do this.")


@router.get("", response_model=MeOut, summary="Who am I")
async def me(
    principal: Principal = Depends(current_principal), idaas: Idaas = Depends(get_idaas)
) -> MeOut:
    async with idaas.db.read(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        org = await session.get(Org, principal.org_id)
        assert org is not None
        return MeOut(
            user=UserOut.model_validate(user),
            org=OrgOut.model_validate(org),
            roles=list(principal.roles),
            permissions=sorted(principal.permissions),
            mfa_enabled=await mfa.has_mfa(session, user.id),
            session_id=principal.session_id,
        )


@router.get("/sessions", response_model=list[SessionOut], summary="My active sessions")
async def my_sessions(
    principal: Principal = Depends(current_principal), idaas: Idaas = Depends(get_idaas)
) -> list[SessionOut]:
    async with idaas.db.read(org_id=principal.org_id) as session:
        rows = (
            await session.scalars(
                select(Session)
                .where(
                    Session.user_id == principal.subject,
                    Session.revoked_at.is_(None),
                    Session.expires_at > utcnow(),
                )
                .order_by(Session.created_at.desc())
            )
        ).all()
    out = []
    for row in rows:
        item = SessionOut.model_validate(row)
        item.current = row.id == principal.session_id
        out.append(item)
    return out


@router.delete("/sessions/{session_id}", status_code=204, summary="Revoke one of my sessions")
async def revoke_my_session(
    session_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        login = await session.get(Session, session_id)
        if login is None or login.user_id != principal.subject:
            raise NotFound(f"No session {session_id}.")
        await idaas.issuer.revoke_session(session, login, reason="revoked_by_user")
        audit.record(
            session,
            "session.revoked",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="session",
            target_id=session_id,
        )


@router.post("/password", status_code=204, summary="Change my password")
async def change_password(
    body: PasswordChangeIn,
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    _human(principal)
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        ok = verify_password(body.current_password, user.password_hash)
        if ok:
            check_policy(body.new_password, email=user.email, name=user.name)
            user.password_hash = hash_password(body.new_password)
            user.password_changed_at = utcnow()
            others = (
                await session.scalars(
                    select(Session).where(
                        Session.user_id == user.id,
                        Session.id != principal.session_id,
                        Session.revoked_at.is_(None),
                    )
                )
            ).all()
            for other in others:  # a changed password ends every other session
                await idaas.issuer.revoke_session(session, other, reason="password_changed")
        audit.record(
            session,
            "user.password.changed",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="user",
            target_id=user.id,
            result="success" if ok else "failure",
        )
    if not ok:
        raise Problem("The current password is not right.", status=403, slug="wrong-password")


@router.post("/mfa/totp", summary="Start TOTP enrollment: secret, otpauth URI and QR code")
async def enroll_totp(
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> dict[str, str]:
    _human(principal)
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        enrollment = await mfa.enroll_totp(session, idaas.secret, user)
        audit.record(
            session,
            "mfa.totp.enrollment_started",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="user",
            target_id=user.id,
        )
    return enrollment


@router.post("/mfa/totp/confirm", summary="Confirm TOTP with a code; returns recovery codes once")
async def confirm_totp(
    body: CodeIn,
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> dict[str, list[str]]:
    _human(principal)
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        codes = await mfa.confirm_totp(session, idaas.secret, user, body.code)
        audit.record(
            session,
            "mfa.totp.enabled",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="user",
            target_id=user.id,
        )
    return {"recovery_codes": codes}


@router.delete("/mfa/totp", status_code=204, summary="Disable TOTP")
async def disable_totp(
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> None:
    _human(principal)
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        if not await mfa.disable_totp(session, user):
            raise NotFound("TOTP is not enabled.")
        audit.record(
            session,
            "mfa.totp.disabled",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="user",
            target_id=user.id,
        )


@router.post("/mfa/recovery-codes", summary="Replace my recovery codes (shown once)")
async def new_recovery_codes(
    request: Request,
    principal: Principal = Depends(current_principal),
    idaas: Idaas = Depends(get_idaas),
) -> dict[str, list[str]]:
    _human(principal)
    async with idaas.db.transaction(org_id=principal.org_id) as session:
        user = await _me(session, principal)
        if not await mfa.has_mfa(session, user.id):
            raise Problem("Enable TOTP first.", status=409, slug="mfa-not-enabled")
        codes = await mfa.replace_recovery_codes(session, user)
        audit.record(
            session,
            "mfa.recovery_codes.replaced",
            org_id=principal.org_id,
            origin=origin(request),
            actor=principal,
            target_type="user",
            target_id=user.id,
        )
    return {"recovery_codes": codes}
