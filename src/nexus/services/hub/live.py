"""A Nexus process for a browser to talk to: the app served by uvicorn on a loopback port
of this event loop, and a demo org with some traffic (for screenshots and benchmarks)."""

from __future__ import annotations

import asyncio
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
