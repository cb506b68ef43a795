"""My profile: account, sessions, password, and TOTP enrollment by QR code."""

from __future__ import annotations

import io
from typing import Any

import segno
from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub import sessions
from nexus.services.hub.api import ApiError
from nexus.services.hub.web import Ctx, HubRoute, redirect, render, signed_in, svg

router = APIRouter(route_class=HubRoute, include_in_schema=False)


def qr_svg(uri: str) -> Any:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True)
    return svg(out.getvalue().decode())


async def _profile(request: Request, ctx: Ctx, **values: Any) -> Response:
    me = await ctx.get("idaas", "/me")
    mine = await ctx.get("idaas", "/me/sessions")
    if me["mfa_enabled"] != ctx.row.mfa_enabled:
        await sessions.update(request, ctx.row, mfa_enabled=me["mfa_enabled"])
    return render(request, "profile.html", ctx, me=me, sessions=mine, **values)


@router.get("/me")
async def profile(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    flash = {"password": "Your password is changed. Your other sessions have ended."}.get(
        request.query_params.get("done", "")
    )
    return await _profile(request, ctx, flash=flash)


@router.post("/me/sessions/{session_id}/revoke")
async def revoke_session(
    session_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    await ctx.call("idaas", "DELETE", f"/me/sessions/{session_id}")
    return redirect("/me#sessions", request)


@router.post("/me/password")
async def change_password(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    current, new, again = (str(form.get(n) or "") for n in ("current", "new", "again"))
    if new != again:
        return await _profile(request, ctx, pw_problem="The new passwords are not the same.")
    try:
        await ctx.post("idaas", "/me/password", {"current_password": current, "new_password": new})
    except ApiError as exc:
        if exc.status not in {400, 403, 422}:
            raise
        return await _profile(request, ctx, pw_problem=exc.detail)
    return redirect("/me?done=password", request)


@router.post("/me/totp")
async def start_totp(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    enrollment = await ctx.post("idaas", "/me/mfa/totp")
    return render(
        request,
        "totp.html",
        ctx,
        secret=enrollment["secret"],
        uri=enrollment["otpauth_uri"],
        qr=qr_svg(enrollment["otpauth_uri"]),
    )


@router.post("/me/totp/confirm")
async def confirm_totp(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    code = "".join(str(form.get("code") or "").split())[:10]
    secret = str(form.get("secret") or "")[:64]
    uri = str(form.get("uri") or "")[:1000]
    try:
        answer = await ctx.post("idaas", "/me/mfa/totp/confirm", {"code": code})
    except ApiError as exc:
        if exc.status not in {400, 401, 403, 409, 422}:
            raise
        if not uri.startswith("otpauth://totp/"):
            return redirect("/me#mfa", request)
        return render(
            request,
            "totp.html",
            ctx,
            secret=secret,
            uri=uri,
            qr=qr_svg(uri),
            error="That code is not right. Enter the code your app shows now.",
        )
    await sessions.update(request, ctx.row, mfa_enabled=True)
    return render(request, "recovery_codes.html", ctx, codes=answer["recovery_codes"], fresh=True)


@router.post("/me/totp/disable")
async def disable_totp(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    await ctx.call("idaas", "DELETE", "/me/mfa/totp")
    await sessions.update(request, ctx.row, mfa_enabled=False)
    return redirect("/me#mfa", request)


@router.post("/me/recovery-codes")
async def new_codes(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    answer = await ctx.post("idaas", "/me/mfa/recovery-codes")
    return render(request, "recovery_codes.html", ctx, codes=answer["recovery_codes"], fresh=False)
