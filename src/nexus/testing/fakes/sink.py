"""A loopback HTTP server that records what is posted to it: the stand-in for Nexus'
webhook endpoints when a test drives a provider fake without the whole service.

    async with WebhookSink() as sink:
        url = sink.url("/hooks/twilio?token=abc")
        ...
        [request] = await sink.wait(1)
        WebhookRequest(**request.webhook_kwargs())
"""

from __future__ import annotations

import asyncio
import time
from typing import Self

from aiohttp import web

from nexus.testing.fakes._base import ReceivedRequest


class WebhookSink:
    def __init__(self, *, status: int = 200, body: str = "", max_records: int = 10_000) -> None:
        self.status = status  # what the sink answers (set >= 400 to exercise provider retries)
        self.body = body
        self.max_records = max_records
        self.requests: list[ReceivedRequest] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    async def _handle(self, request: web.Request) -> web.Response:
        received = await ReceivedRequest.from_aiohttp(request)
        if len(self.requests) < self.max_records:
            self.requests.append(received)
        return web.Response(status=self.status, text=self.body)

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait(self, count: int, timeout_s: float = 5.0) -> list[ReceivedRequest]:
        """Wait until `count` requests arrived; all requests so far."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.requests)} of {count} requests after {timeout_s}s")
            await asyncio.sleep(0.005)
        return list(self.requests)
