"""Login, tokens, refresh rotation, MFA: the acceptance path of the IDaaS issue."""

from __future__ import annotations

import pyotp

from tests.services.idaas.conftest import IdaasEnv


async def test_login_then_me(idaas: IdaasEnv) -> None:
    me = await idaas.client.get("/api/v1/me", headers=idaas.a.headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == idaas.a.email
    assert body["org"]["id"] == idaas.a.org_id
    assert body["roles"] == ["owner"]


async def test_wrong_password_and_unknown_email_look_the_same(idaas: IdaasEnv) -> None:
    wrong = await idaas.login(idaas.a.email, "not-the-password-1")
    unknown = await idaas.login("nobody@nowhere.example.com", "not-the-password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_refresh_rotates_and_reuse_revokes_the_family(idaas: IdaasEnv) -> None:
    first = idaas.a.refresh_token
    rotated = await idaas.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    replay = await idaas.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    # the whole family is gone: the legitimate newer token no longer works either
    after = await idaas.client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401


async def test_totp_enrollment_then_login_needs_the_code(idaas: IdaasEnv) -> None:
    enroll = await idaas.client.post("/api/v1/me/mfa/totp", headers=idaas.a.headers)
    assert enroll.status_code == 200, enroll.text
    secret = enroll.json()["secret"]
    assert enroll.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert "<svg" in enroll.json()["qr_svg"]
    confirm = await idaas.client.post(
        "/api/v1/me/mfa/totp/confirm",
        json={"code": pyotp.TOTP(secret).now()},
        headers=idaas.a.headers,
    )
    assert confirm.status_code == 200, confirm.text
    recovery = confirm.json()["recovery_codes"]
    assert len(recovery) == 10

    step = await idaas.login(idaas.a.email)
    assert step.status_code == 200
    assert step.json()["mfa_required"] is True
    assert "access_token" not in step.json()
    mfa_token = step.json()["mfa_token"]
    bad = await idaas.client.post(
        "/api/v1/auth/mfa/verify", json={"mfa_token": mfa_token, "code": "000000"}
    )
    assert bad.status_code == 401
    # the code used at confirmation cannot be replayed; a recovery code works once
    ok = await idaas.client.post(
        "/api/v1/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["access_token"]
    again = await idaas.login(idaas.a.email)
    reuse = await idaas.client.post(
        "/api/v1/auth/mfa/verify",
        json={"mfa_token": again.json()["mfa_token"], "code": recovery[0]},
    )
    assert reuse.status_code == 401
