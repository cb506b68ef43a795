"""What a new user does after `make run`: log in, send on three channels through the
sandbox providers every new org gets, and see each message delivered with its history."""

from __future__ import annotations

import asyncio

import httpx

from nexus.kernel.http import create_app
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.vas import service as vas_service
from tests.conftest import RuntimeFactory

PASSWORD = "correct-horse-battery-staple"


async def test_login_and_send_on_three_channels(make_runtime: RuntimeFactory, settings) -> None:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([idaas_service, vas_service])
    await idaas_service.on_startup[0](runtime)  # IDaaS's own keys, not the test issuer
    await create_org_with_owner(
        runtime.db("idaas"), org_name="Demo", email="owner@demo.example.com", password=PASSWORD
    )
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"email": "owner@demo.example.com", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for _ in range(100):  # the sandbox providers come with the org.created event
            providers = (await client.get("/api/v1/providers", headers=headers)).json()
            if len(providers) == 5:
                break
            await asyncio.sleep(0.05)
        assert {p["channel"] for p in providers} == {
            "sms",
            "whatsapp",
            "telegram",
            "messenger",
            "email",
        }
        ids = []
        for channel, to in (
            ("sms", "+14155550123"),
            ("whatsapp", "+14155550124"),
            ("telegram", "42"),
        ):
            sent = await client.post(
                f"/api/v1/{channel}/send",
                json={"to": to, "body": f"hi on {channel}"},
                headers=headers,
            )
            assert sent.status_code == 202, sent.text
            ids.append(sent.json()["id"])
        for message_id in ids:
            for _ in range(200):
                message = (
                    await client.get(f"/api/v1/messages/{message_id}", headers=headers)
                ).json()
                if message["status"] == "delivered":
                    break
                await asyncio.sleep(0.05)
            assert message["status"] == "delivered"
            assert [s["status"] for s in message["history"] if s["kind"] == "status"] == [
                "accepted",
                "queued",
                "sending",
                "sent",
                "delivered",
            ]
