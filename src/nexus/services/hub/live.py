"""A Nexus process for a browser to talk to: the app served by uvicorn on a loopback port
of this event loop, and a demo org with some traffic and a sales pipeline (for screenshots
and benchmarks), made through the published APIs."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: Any, port: int, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1:`port` until the block ends; yields the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan=lifespan,  # type: ignore[arg-type]
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the server stopped at start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Demo:
    base_url: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def api_login(base_url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        answer = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])


async def seed_messages(demo: Demo, count: int = 24) -> list[str]:
    """Some traffic on the sandbox providers: mostly delivered, a few that fail."""
    ids = []
    async with httpx.AsyncClient(base_url=demo.base_url, headers=demo.headers, timeout=30) as c:
        for _ in range(100):  # the sandbox providers come with the org.created event
            if len((await c.get("/api/v1/providers")).json()) >= 5:
                break
            await asyncio.sleep(0.05)
        samples = [
            ("sms", "+1415555{:04d}", "Your code is 4821. It expires in 10 minutes."),
            ("whatsapp", "+1415556{:04d}", "Hi! Your order #1042 has shipped 📦"),
            ("telegram", "42{:04d}", "Reminder: team meeting at 10:00."),
            ("email", "user{:04d}@example.com", "Welcome to Acme. Here is how to get started."),
        ]
        for i in range(count):
            channel, to, body = samples[i % len(samples)]
            number = 2000 + i if i % 9 else 1  # ...0001: accepted, never delivered
            payload: dict[str, Any] = {"channel": channel, "to": to.format(number), "body": body}
            if channel == "email":
                payload["subject"] = "Welcome"
            answer = await c.post("/api/v1/messages/send", json=payload)
            if answer.status_code == 202:
                ids.append(answer.json()["id"])
    return ids


DEMO_DEALS = (  # company, domain, contact, phone, deal, amount, stage index
    ("Globex", "globex.example", "Hank Scorpio", "+14155550123", "Doomsday device", "48000", 3),
    (
        "Initech",
        "initech.example",
        "Bill Lumbergh",
        "+14155550124",
        "TPS reports suite",
        "12500",
        2,
    ),
    (
        "Umbrella",
        "umbrella.example",
        "Alice Abernathy",
        "+14155550125",
        "Lab safety audit",
        "7200",
        1,
    ),
    ("Soylent", "soylent.example", "Sol Roth", "+14155550126", "Catering contract", "3400", 0),
    ("Hooli", "hooli.example", "Gavin Belson", "+14155550127", "Compression licence", "96000", 1),
    ("Vandelay", "vandelay.example", "Art Vandelay", "+14155550128", "Latex import", "5100", 0),
)

CLOSED = {
    "Latex import": {"status": "won"},
    "Catering contract": {"status": "lost", "lost_reason": "Went with a cheaper caterer"},
}


async def seed_crm(demo: Demo) -> dict[str, str]:
    """A pipeline with a handful of deals through CRM's API, one texted contact: the
    board, a deal, a contact and the forecast have something to show. Returns the ids of
    the first deal and its contact."""
    close = dt.date.today() + dt.timedelta(days=20)
    async with httpx.AsyncClient(
        base_url=f"{demo.base_url}/api/v1/crm", headers=demo.headers, timeout=30
    ) as c:
        stages = (await c.get("/pipelines")).raise_for_status().json()[0]["stages"]
        ids: dict[str, str] = {}
        for i, (company, domain, person, phone, deal, amount, stage) in enumerate(DEMO_DEALS):
            first, last = person.split(" ", 1)
            co = (await c.post("/companies", json={"name": company, "domain": domain})).json()
            contact = (
                await c.post(
                    "/contacts",
                    json={
                        "first_name": first,
                        "last_name": last,
                        "phones": [phone],
                        "emails": [f"{first.lower()}@{domain}"],
                        "company_id": co["id"],
                        "lifecycle_stage": "sql" if stage > 1 else "lead",
                    },
                )
            ).json()
            made = await c.post(
                "/deals",
                json={
                    "name": deal,
                    "amount": amount,
                    "company_id": co["id"],
                    "contact_ids": [contact["id"]],
                    "stage_id": stages[stage]["id"],
                    "expected_close": (close + dt.timedelta(days=9 * i)).isoformat(),
                },
            )
            if closing := CLOSED.get(deal):
                await c.patch(f"/deals/{made.json()['id']}", json=closing)
            ids.setdefault("deal", made.json()["id"])
            ids.setdefault("contact", contact["id"])
        await c.post(
            "/activities",
            json={
                "kind": "call",
                "subject": "Discovery call",
                "deal_id": ids["deal"],
                "body": "Wants a demo for the board next week.",
            },
        )
        await c.post(
            f"/contacts/{ids['contact']}/messages",
            json={"body": "Hank, the proposal is in your inbox.", "deal_id": ids["deal"]},
        )
    return ids
