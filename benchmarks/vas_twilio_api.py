"""The Twilio-compatible API's figures, next to VAS's own API in the same run.

    .venv/bin/python benchmarks/vas_twilio_api.py [--seconds S] [--callbacks N] [--quick]

Embedded mode (a SQLite file in a temporary directory, the in-process bus), one server
process (`benchmarks/vas_app.py`, uvicorn, workers in the process), a sandbox SMS
provider (sends at once, delivery report 50 ms later), all on 127.0.0.1 and removed at
the end. Figures, one JSON object per line:
- native_send: wrk -c16 POSTs `/api/v1/messages/send` (JSON, bearer token), a new `To`
  per request: accepted msg/s, p50/p95/p99.
- twilio_create: the same through `POST /2010-04-01/Accounts/{sid}/Messages.json` (form,
  HTTP Basic auth): the cost of the Twilio layer is the difference.
- twilio_list: wrk -c8 GETs of a 50-message page of the list.
- status_callbacks: N messages created with a `StatusCallback` to a loopback receiver
  (8 in flight): create→`delivered` callback p50/p95/p99, callbacks whose signature
  Twilio's `RequestValidator` rejects, lost (no `delivered` within 30 s) and duplicated.
Progress goes to stderr. Figures on a shared 2-core machine vary by tens of percent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _common import WRK_DONE, free_port, wrk
from aiohttp import web
from twilio.request_validator import RequestValidator
from vas_throughput import _write_private, spawn, stop_process

from nexus.kernel.config import Settings
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer

HERE = Path(__file__).resolve().parent
ISSUER = "http://nexus.bench"
FROM = "+15005550006"

SEND_LUA = r"""
local n = 0
wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local form = os.getenv("BENCH_CONTENT_TYPE") ~= "application/json"
local base = tonumber(os.getenv("BENCH_BASE"))
request = function()
  n = n + 1
  local to = string.format("+1415%03d%04d", 200 + math.floor((base + n) / 9000) % 800,
                           1000 + (base + n) % 9000)
  local body
  if form then
    body = "To=" .. to:gsub("+", "%%2B") .. "&From=%2B15005550006&Body=bench+" .. n
  else
    body = string.format('{"channel":"sms","to":"%s","body":"bench %d"}', to, n)
  end
  return wrk.format(nil, nil, nil, body)
end
"""
LIST_LUA = r"""
wrk.method = "GET"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
"""


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def progress(message: str) -> None:
    print(f"[vas_twilio_api {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
    }


class Receiver:
    """A loopback status-callback receiver: when each (sid, status) arrived, signatures."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.arrived: dict[tuple[str, str], list[float]] = {}
        self.bad_signatures = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.validator.validate(self.url, form, signature):
            self.bad_signatures += 1
        key = (str(form.get("MessageSid")), str(form.get("MessageStatus")))
        self.arrived.setdefault(key, []).append(time.perf_counter())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/status", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/status"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nexus-twilio-bench-"))
    issuer = TestIssuer(issuer=ISSUER)
    settings = Settings(data_dir=tmp / "var", secret_key="bench-" + "k" * 40, jwt_issuer=ISSUER)
    settings.data_dir.mkdir(parents=True)
    migrator = Runtime(settings, [vas_service])
    try:
        await upgrade(migrator)
    finally:
        await migrator.databases.dispose()
    key_file = tmp / "issuer-key.json"
    _write_private(key_file, json.dumps(issuer.key.as_dict(private=True)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NEXUS_ENV": "production",
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "NEXUS_HOST": "127.0.0.1",
        "NEXUS_PORT": str(port),
        "NEXUS_SECRET_KEY": settings.secret(),
        "NEXUS_JWT_ISSUER": ISSUER,
        "NEXUS_LOG_LEVEL": "WARNING",
        "NEXUS_SERVICES": "vas",
        "NEXUS_VAS_PUBLIC_URL": base,
        "NEXUS_RUN_WORKERS": "true",
        "NEXUS_BENCH_ISSUER_KEY": str(key_file),
    }
    server = spawn([sys.executable, str(HERE / "vas_app.py")], env, tmp / "server.log")
    receiver: Receiver | None = None
    bearer = "Bearer " + issuer.token(org_id="bench", permissions=["*"], ttl_s=3600)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": bearer}) as http:
            for _ in range(600):
                try:
                    async with http.get(f"{base}/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the server did not start; see {tmp / 'server.log'}")
            provider = {"type": "sandbox", "channel": "sms", "name": "sandbox", "sender": FROM}
            async with http.post(f"{base}/api/v1/providers", json=provider) as r:
                assert r.status == 201, await r.text()
            async with http.post(f"{base}/api/v1/vas/twilio-credentials", json={}) as r:
                account = await r.json()
            sid, token = account["sid"], account["auth_token"]
            basic = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()
            script = tmp / "send.lua"
            script.write_text(SEND_LUA + WRK_DONE)
            list_script = tmp / "list.lua"
            list_script.write_text(LIST_LUA + WRK_DONE)

            for part, url, auth, content_type, offset in (
                ("native_send", f"{base}/api/v1/messages/send", bearer, "application/json", 0),
                (
                    "twilio_create",
                    f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
                    basic,
                    "application/x-www-form-urlencoded",
                    3_000_000,
                ),
            ):
                progress(f"{part}: wrk -c16 for {args.seconds} s")
                result = await asyncio.to_thread(
                    wrk,
                    url,
                    script,
                    threads=1,
                    connections=16,
                    seconds=args.seconds,
                    env={
                        **os.environ,
                        "BENCH_AUTH": auth,
                        "BENCH_CONTENT_TYPE": content_type,
                        "BENCH_BASE": str(offset),
                    },
                )
                out({"part": part, **result})
                await drain(http, base)

            progress(f"twilio_list: wrk -c8 for {args.seconds} s")
            result = await asyncio.to_thread(
                wrk,
                f"{base}/2010-04-01/Accounts/{sid}/Messages.json?PageSize=50",
                list_script,
                threads=1,
                connections=8,
                seconds=args.seconds,
                env={**os.environ, "BENCH_AUTH": basic},
            )
            out({"part": "twilio_list", "page_size": 50, **result})

            await drain(http, base)
            receiver = Receiver(token)
            await receiver.start()
            out(await callbacks(http, base, sid, basic, receiver, args.callbacks))
    finally:
        stop_process(server)
        if receiver is not None:
            await receiver.stop()
        progress(f"server log: {tmp / 'server.log'}")


async def drain(http: aiohttp.ClientSession, base: str, timeout_s: float = 120) -> None:
    """Wait until no message is open, so the next part does not pay for this one's."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        open_ = 0
        for status in ("accepted", "queued", "sending", "sent"):
            url = f"{base}/api/v1/messages?status={status}&limit=1"
            async with http.get(url) as r:
                open_ += len((await r.json())["items"])
        if not open_:
            break
        await asyncio.sleep(0.5)
    progress(f"drained in {time.perf_counter() - started:.1f} s")


async def callbacks(
    http: aiohttp.ClientSession, base: str, sid: str, basic: str, receiver: Receiver, count: int
) -> dict[str, Any]:
    progress(f"status_callbacks: {count} messages")
    url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
    created: dict[str, float] = {}
    slots = asyncio.Semaphore(8)

    async def create(n: int) -> None:
        form = {
            "To": f"+1628{200 + n // 9000 % 800:03d}{1000 + n % 9000:04d}",
            "From": FROM,
            "Body": f"callback {n}",
            "StatusCallback": receiver.url,
        }
        async with slots, http.post(url, data=form, headers={"Authorization": basic}) as r:
            body = await r.json()
            if r.status == 201:
                created[body["sid"]] = time.perf_counter()

    await asyncio.gather(*(create(n) for n in range(count)))
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if all((s, "delivered") in receiver.arrived for s in created):
            break
        await asyncio.sleep(0.05)
    latencies = [
        (receiver.arrived[(s, "delivered")][0] - at) * 1000
        for s, at in created.items()
        if (s, "delivered") in receiver.arrived
    ]
    return {
        "part": "status_callbacks",
        "messages": count,
        "created": len(created),
        "delivered_callbacks": len(latencies),
        "lost": len(created) - len(latencies),
        "duplicated": sum(len(times) - 1 for times in receiver.arrived.values()),
        "bad_signatures": receiver.bad_signatures,
        **percentiles(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--callbacks", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="3 s runs, 100 callbacks")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.callbacks = 3, 100
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
