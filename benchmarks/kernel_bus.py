"""Platform figures (docs: /work/shared/specs/figures.md, "Platform"): the event bus and a
trivial authenticated route.

    .venv/bin/python benchmarks/kernel_bus.py [--mode embedded|services|all]
        [--events N] [--batch B] [--seconds S] [--parts e2e,backlog,http]

Modes:
- embedded: a SQLite file in a temporary directory, the in-process bus (memory://).
- services: a temporary PostgreSQL database, NATS JetStream streams in a fresh
  namespace, Redis; all removed at the end.

Parts, each on fresh storage:
- e2e: the sample services `notes` and `tally` run with their workers; N events are
  emitted through the outbox in transactions of B, while `tally`'s two consumer groups
  (`audit`, `stats`) consume them. Figure: events/s from the first publish to the last
  event consumed, per group and for the slower group; also the publish rate seen while
  the consumers run. The rows the consumers wrote are counted afterwards (lost and
  duplicated events).
- backlog: the same N events published with no consumer running (publish-only: outbox
  commit rate, and the rate until the relay has put them on the bus), then a second
  process-like runtime starts the consumers and drains the backlog (consume-only rate).
- http: a real uvicorn server (benchmarks/kernel_bus_app.py) with the `notes` service;
  `wrk` drives GET /health and GET /api/v1/notes/ping with a bearer token, reporting
  req/s and latency p50/p90/p95/p99, and the ratio of the two.

Each figure is one JSON object per line on stdout; progress goes to stderr. Besides the
rates, the records carry CPU time per event (`cpu_us_per_event`, this process, every
thread) or per request (`server_cpu_us_per_req`) and the machine's load average: when
other work shares the two cores, rates fall but CPU per unit of work stays comparable.
Every loop is bounded in count and time, and all traffic goes to 127.0.0.1. Without wrk
(`apt-get install -y wrk`) an aiohttp client drives the HTTP load instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import drop_services, free_port, wrk
from sqlalchemy import func, select

from nexus.kernel.config import Settings
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.kernel.logging import configure_logging
from nexus.kernel.migrate import upgrade
from nexus.kernel.models import JobRow, OutboxRow
from nexus.kernel.runtime import Runtime, consumer_queue
from nexus.testing.sample_services import Seen, notes, tally
from nexus.testing.tokens import TestIssuer

PG_ADMIN = os.environ.get("NEXUS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

EVENT_TYPE = "nexus.notes.note.created"
ORG = "org-bench"
ISSUER = "http://nexus.bench"
TARGETS = {"embedded": 20_000, "services": 5_000}
HTTP_TARGET = 3_000
POLL_S = 0.005  # how often progress is polled; bounds the measured times' resolution
POLLS = 200_000  # at most this many polls (1,000 s), whatever the timeout
GROUPS = [(tally, c) for c in tally.consumers]  # audit: the exact type; stats: nexus.notes.>


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _load() -> float:
    """The machine's 1-minute load average: other work on these 2 cores skews figures."""
    return round(os.getloadavg()[0], 2)


def progress(message: str) -> None:
    print(f"[kernel_bus] {message}", file=sys.stderr, flush=True)


# -- environments -------------------------------------------------------------------------


@dataclass
class Env:
    """Fresh storage for one part of one mode: a settings object and how to clean it."""

    mode: str
    settings: Settings
    tmp: Path
    pg_database: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return "postgresql+nats" if self.mode == "services" else "sqlite+memory"


def _pg_url(database: str) -> str:
    netloc = PG_ADMIN.split("://", 1)[1].split("/", 1)[0]
    return f"postgresql+asyncpg://{netloc}/{database}"


@contextlib.asynccontextmanager
async def environment(mode: str) -> AsyncIterator[Env]:
    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    data_dir = tmp / "var"
    data_dir.mkdir()
    values: dict[str, Any] = {
        "env": "production",
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "secret_key": "bench-secret-" + "x" * 32,
        "shutdown_timeout_s": 5.0,
        "jwt_issuer": ISSUER,
        "log_level": "WARNING",
    }
    database = None
    if mode == "services":
        import asyncpg

        database = f"nexus_bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
        values.update(
            database_url=_pg_url(database),
            bus_url=NATS_URL,
            bus_namespace=f"bench{uuid.uuid4().hex[:10]}",
            redis_url=REDIS_URL,
        )
    settings = Settings(**values)
    env_vars = {
        "NEXUS_ENV": "production",
        "NEXUS_DATA_DIR": str(data_dir),
        "NEXUS_HOST": "127.0.0.1",
        "NEXUS_SECRET_KEY": values["secret_key"],
        "NEXUS_JWT_ISSUER": ISSUER,
        "NEXUS_BUS_URL": settings.bus_url,
        "NEXUS_BUS_NAMESPACE": settings.bus_namespace,
        "NEXUS_LOG_LEVEL": "INFO",
        "NEXUS_LOG_FORMAT": "json",
    }
    if settings.database_url:
        env_vars["NEXUS_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env_vars["NEXUS_REDIS_URL"] = settings.redis_url
    env = Env(mode, settings, tmp, database, env_vars)
    try:
        yield env
    finally:
        if mode == "services":
            await drop_services(
                namespace=settings.bus_namespace,
                database=database,
                nats_url=NATS_URL,
                pg_admin=PG_ADMIN,
            )
        shutil.rmtree(tmp, ignore_errors=True)


# -- the bus ------------------------------------------------------------------------------


async def publish(runtime: Runtime, events: int, batch: int) -> float:
    """Emit `events` events through the outbox, `batch` per transaction; seconds taken."""
    db = runtime.db("notes")
    started = time.perf_counter()
    for first in range(0, events, batch):
        async with db.transaction() as session:
            for n in range(first, min(first + batch, events)):
                emit(session, EVENT_TYPE, {"note_id": new_id(), "n": n}, org_id=ORG)
    return time.perf_counter() - started


def _relayed(runtime: Runtime) -> int:
    return sum(relay.published for relay in runtime.relays)


async def wait_groups(
    runtime: Runtime, target: int, started: float, deadline: float
) -> dict[str, float | None]:
    """Poll the runners' `processed` counters: when did each group reach `target`?"""
    done: dict[str, float | None] = {c.name: None for _s, c in GROUPS}
    runners = {c.name: runtime.runners[consumer_queue(s, c)] for s, c in GROUPS}
    for _ in range(POLLS):
        now = time.perf_counter()
        if now > deadline:
            break
        for name, runner in runners.items():
            if done[name] is None and runner.processed >= target:
                done[name] = now - started
        if all(v is not None for v in done.values()):
            break
        await asyncio.sleep(POLL_S)
    return done


async def count_seen(runtime: Runtime) -> dict[str, dict[str, int]]:
    """Per group: rows the consumer wrote, distinct events among them."""
    async with runtime.db("tally").read() as session:
        rows = await session.execute(
            select(Seen.consumer, func.count(), func.count(func.distinct(Seen.event_id))).group_by(
                Seen.consumer
            )
        )
        return {c: {"rows": n, "distinct": d} for c, n, d in rows.all()}


async def leftovers(runtime: Runtime) -> dict[str, int]:
    """What did not go through: outbox rows, SQL jobs left or dead, dead letters on NATS."""
    result: dict[str, int] = {}
    async with runtime.db("notes").read() as session:
        result["outbox_left"] = int(
            await session.scalar(select(func.count()).select_from(OutboxRow)) or 0
        )
        if runtime.nats is None:
            result["jobs_left"] = int(
                await session.scalar(select(func.count()).select_from(JobRow)) or 0
            )
            result["jobs_dead"] = int(
                await session.scalar(
                    select(func.count()).select_from(JobRow).where(JobRow.status == "dead")
                )
                or 0
            )
    if runtime.nats is not None and runtime.nats.js is not None:
        info = await runtime.nats.js.stream_info(runtime.nats.dlq_stream)
        result["dead_lettered"] = int(info.state.messages)
    return result


def _group_figures(
    done: dict[str, float | None], seen: dict[str, dict[str, int]], events: int
) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for name, elapsed in done.items():
        counts = seen.get(name, {"rows": 0, "distinct": 0})
        groups[name] = {
            "consumed": counts["distinct"],
            "lost": events - counts["distinct"],
            "duplicated": counts["rows"] - counts["distinct"],
            "seconds": round(elapsed, 3) if elapsed is not None else None,
            "events_per_s": round(events / elapsed) if elapsed else None,
        }
    return groups


async def part_e2e(env: Env, args: argparse.Namespace) -> dict[str, Any]:
    runtime = Runtime(env.settings, [notes, tally])
    await upgrade(runtime)
    await runtime.start(workers=True)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        deadline = started + args.timeout
        waiter = asyncio.create_task(wait_groups(runtime, args.events, started, deadline))
        publish_s = await publish(runtime, args.events, args.batch)
        done = await waiter
        cpu = time.process_time() - cpu
        seen = await count_seen(runtime)
        left = await leftovers(runtime)
    finally:
        await runtime.stop()
    groups = _group_figures(done, seen, args.events)
    finished = [v for v in done.values() if v is not None]
    complete = len(finished) == len(done)
    elapsed = max(finished) if complete else None
    target = TARGETS[env.mode]
    rate = round(args.events / elapsed) if elapsed else None
    return {
        "benchmark": "kernel_bus",
        "mode": env.mode,
        "backend": env.backend,
        "figure": "events_published_to_consumed",
        "events": args.events,
        "batch": args.batch,
        "events_per_s": rate,
        "deliveries_per_s": round(args.events * len(done) / elapsed) if elapsed else None,
        "seconds": round(elapsed, 3) if elapsed else None,
        "publish_per_s_while_consuming": round(args.events / publish_s),
        "cpu_us_per_event": round(cpu / args.events * 1e6),
        "groups": groups,
        **left,
        "complete": complete,
        "loadavg_1m": _load(),
        "target_per_s": target,
        "meets_target": bool(rate and rate >= target),
    }


async def part_backlog(env: Env, args: argparse.Namespace) -> list[dict[str, Any]]:
    producer = Runtime(env.settings, [notes, tally])
    await upgrade(producer)
    await producer.start(workers=False)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        publish_s = await publish(producer, args.events, args.batch)
        deadline = started + args.timeout
        for _ in range(POLLS):
            if _relayed(producer) >= args.events or time.perf_counter() > deadline:
                break
            await asyncio.sleep(POLL_S)
        relayed = _relayed(producer)
        relayed_s = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await producer.stop()
    publish_record = {
        "benchmark": "kernel_bus",
        "mode": env.mode,
        "backend": env.backend,
        "figure": "events_publish_only",
        "events": args.events,
        "batch": args.batch,
        "outbox_commit_per_s": round(args.events / publish_s),
        "relayed": relayed,
        "relayed_per_s": round(relayed / relayed_s),
        "seconds": round(relayed_s, 3),
        "cpu_us_per_event": round(cpu / args.events * 1e6),
        "loadavg_1m": _load(),
    }

    consumer = Runtime(env.settings, [notes, tally])
    cpu = time.process_time()
    started = time.perf_counter()
    await consumer.start(workers=True)
    try:
        done = await wait_groups(consumer, args.events, started, started + args.timeout)
        cpu = time.process_time() - cpu
        seen = await count_seen(consumer)
        left = await leftovers(consumer)
    finally:
        await consumer.stop()
    finished = [v for v in done.values() if v is not None]
    elapsed = max(finished) if len(finished) == len(done) else None
    consume_record = {
        "benchmark": "kernel_bus",
        "mode": env.mode,
        "backend": env.backend,
        "figure": "events_consume_backlog",
        "events": args.events,
        "events_per_s": round(args.events / elapsed) if elapsed else None,
        "deliveries_per_s": round(args.events * len(done) / elapsed) if elapsed else None,
        "seconds": round(elapsed, 3) if elapsed else None,
        "cpu_us_per_event": round(cpu / args.events * 1e6),
        "groups": _group_figures(done, seen, args.events),
        **left,
        "complete": elapsed is not None,
        "loadavg_1m": _load(),
    }
    return [publish_record, consume_record]


# -- the route ----------------------------------------------------------------------------

WRK_SCRIPT = r"""
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%.0f,"p90_us":%.0f,' ..
    '"p95_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _spawn_server(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The server in a session of its own (so its workers stop with it), logs to a file."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [PYTHON, str(HERE / "kernel_bus_app.py")],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _wait_up(base: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.1) + 1):
        if time.monotonic() > deadline:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if await asyncio.to_thread(_get, f"{base}/health") == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout_s} s")


def _group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total / ticks


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _secs(seconds: float) -> int:
    return max(1, round(seconds))


def run_wrk(
    url: str, token: str | None, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    return wrk(
        url,
        Path(args.wrk_script),
        threads=args.wrk_threads,
        connections=args.connections,
        seconds=seconds,
        env={**os.environ, "BENCH_TOKEN": token or ""},
    )


async def run_aiohttp(
    url: str, token: str | None, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    """The fallback load generator when wrk is missing: `connections` keep-alive clients."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = {"status": 0, "other": 0}
    max_requests = 2_000_000  # a bound besides the clock
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            for _ in range(max_requests // args.connections):
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        if response.status >= 400:
                            errors["status"] += 1
                except aiohttp.ClientError:
                    errors["other"] += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(client() for _ in range(args.connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e3, 2)

    return {
        "req_per_s": round(len(latencies) / elapsed),
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors["status"] + errors["other"],
        "non_2xx": errors["status"],
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(latencies[-1] * 1e3, 2) if latencies else 0.0,
    }


async def drive(
    url: str, token: str | None, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    if args.generator == "wrk":
        return await asyncio.to_thread(run_wrk, url, token, seconds, args)
    return await run_aiohttp(url, token, seconds, args)


async def part_http(env: Env, args: argparse.Namespace) -> list[dict[str, Any]]:
    args.generator = "wrk" if shutil.which("wrk") and not args.aiohttp else "aiohttp"
    if args.generator != "wrk":
        progress("wrk not found (apt-get install -y wrk): falling back to an aiohttp client")
    migrator = Runtime(env.settings, [notes])
    try:
        await upgrade(migrator)
    finally:
        await migrator.databases.dispose()
    issuer = TestIssuer(issuer=ISSUER, audience=env.settings.jwt_audience)
    key_file = env.tmp / "issuer-key.json"
    key_file.touch(mode=0o600)
    key_file.write_text(json.dumps(issuer.key.as_dict(private=True)))
    token = issuer.token(org_id=ORG, permissions=["notes:note:read"], ttl_s=3600)
    wrk_script = env.tmp / "bench.lua"
    wrk_script.write_text(WRK_SCRIPT)
    args.wrk_script = str(wrk_script)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {
        **os.environ,
        **env.env_vars,
        "NEXUS_PORT": str(port),
        "NEXUS_BENCH_ISSUER_KEY": str(key_file),
        "NEXUS_BENCH_WORKERS": str(args.http_workers),
        "NEXUS_LOG_LEVEL": args.server_log_level,
    }
    log_path = env.tmp / "server.log"
    proc = _spawn_server(server_env, log_path)
    try:
        try:
            await _wait_up(base, proc, 60)
        except RuntimeError as exc:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; the server's log ends with:\n{tail}") from None
        route = f"{base}/api/v1/notes/ping"
        checks = {
            "with_token": await asyncio.to_thread(_get, route, token),
            "without_token": await asyncio.to_thread(_get, route),
        }
        if checks != {"with_token": 200, "without_token": 401}:
            raise RuntimeError(f"the route does not answer as expected: {checks}")
        progress(f"{env.mode}: http warm-up")
        await drive(route, token, args.warmup, args)
        results: dict[str, dict[str, Any]] = {}
        for name, url, tok in (("health", f"{base}/health", None), ("auth", route, token)):
            progress(f"{env.mode}: {args.generator} {url} for {args.seconds} s")
            server_cpu, wrk_cpu = _group_cpu_s(proc.pid), _children_cpu_s()
            result = await drive(url, tok, args.seconds, args)
            server_cpu = _group_cpu_s(proc.pid) - server_cpu
            wrk_cpu = _children_cpu_s() - wrk_cpu
            result["server_cpu_us_per_req"] = round(server_cpu / max(result["requests"], 1) * 1e6)
            result["server_cores_busy"] = round(server_cpu / result["seconds"], 2)
            if args.generator == "wrk":
                result["wrk_cores_busy"] = round(wrk_cpu / result["seconds"], 2)
            result["loadavg_1m"] = _load()
            results[name] = result
    finally:
        _stop_server(proc)
    common = {
        "benchmark": "kernel_bus",
        "mode": env.mode,
        "backend": env.backend,
        "server": f"uvicorn, {args.http_workers} worker(s), log level {args.server_log_level}"
        + (" (JSON access log on)" if args.server_log_level.upper() in {"DEBUG", "INFO"} else ""),
        "load": (
            f"wrk -t{args.wrk_threads} -c{args.connections} -d{_secs(args.seconds)}s"
            if args.generator == "wrk"
            else f"aiohttp, {args.connections} connections, {args.seconds} s (in the benchmark)"
        ),
    }
    health, auth = results["health"], results["auth"]
    return [
        {**common, "figure": "http_health", "route": "GET /health", **health},
        {
            **common,
            "figure": "http_authenticated_route",
            "route": "GET /api/v1/notes/ping (bearer JWT, ES256, verified-token cache)",
            **auth,
            "ratio_to_health": round(auth["req_per_s"] / health["req_per_s"], 3),
            "target_req_per_s": HTTP_TARGET,
            "meets_target": auth["req_per_s"] >= HTTP_TARGET and auth["errors"] == 0,
        },
    ]


# -- main ---------------------------------------------------------------------------------


async def run_mode(mode: str, args: argparse.Namespace) -> None:
    if "e2e" in args.parts:
        async with environment(mode) as env:
            progress(f"{mode}: e2e, {args.events} events in batches of {args.batch}")
            out(await part_e2e(env, args))
    if "backlog" in args.parts:
        async with environment(mode) as env:
            progress(f"{mode}: publish-only, then consume the backlog")
            for record in await part_backlog(env, args):
                out(record)
    if "http" in args.parts:
        async with environment(mode) as env:
            for record in await part_http(env, args):
                out(record)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services", "all"], default="all")
    parser.add_argument("--events", type=int, default=20_000, help="events per bus run")
    parser.add_argument("--batch", type=int, default=500, help="events per transaction")
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run (s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up (s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of each bus run (s)")
    parser.add_argument("--parts", default="e2e,backlog,http", help="e2e,backlog,http")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--aiohttp", action="store_true", help="drive HTTP with aiohttp even if wrk is there"
    )
    parser.add_argument("--http-workers", type=int, default=1, help="uvicorn workers")
    parser.add_argument(
        "--server-log-level", default="INFO", help="the server's log level (INFO: access log on)"
    )
    args = parser.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.parts - {"e2e", "backlog", "http"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if not 1 <= args.events <= 5_000_000 or not 1 <= args.batch <= 50_000:
        parser.error("--events must be in 1..5,000,000 and --batch in 1..50,000")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be in 1..600")
    return args


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("WARNING", "json", stream=sys.stderr)
    modes = ["embedded", "services"] if args.mode == "all" else [args.mode]
    for mode in modes:
        await run_mode(mode, args)


if __name__ == "__main__":
    asyncio.run(main())
