"""VAS figures (docs: /work/shared/specs/figures.md, "VAS"): accept rates, end to end
through real provider fakes with delivery callbacks, failover cost, memory, scale-out.

    .venv/bin/python benchmarks/vas_throughput.py [--mode embedded|services|all]
        [--seconds S] [--quick] [--parts single,bulk,e2e,failover,scale] [--profile DIR]

Set-up, per mode, all on 127.0.0.1 and all removed at the end:
- embedded: a SQLite file in a temporary directory, the in-process bus; one server
  process with its workers (`NEXUS_RUN_WORKERS` true), as `nexus serve` runs it.
- services: a temporary PostgreSQL database, NATS JetStream streams in a fresh
  namespace, Redis; the API process runs with no workers and `nexus worker --service
  vas` processes do the work (one, then two for the scale-out figure).
- The server is `benchmarks/vas_app.py`: uvicorn, one process, no reload, JSON logs at
  WARNING, tokens of a `TestIssuer` whose key the benchmark writes (permissions "*").
- SMS providers: three fake processes (`benchmarks/vas_fake.py`, which is
  `python -m nexus.testing.fakes` plus a list of accepted destinations): Twilio,
  Infobip, and a second Twilio in an "error" outage (answers 503). They answer like the
  real APIs and post signed delivery callbacks (50 ms later; a callback not answered
  within 15 s is dropped, not retried) to the server's webhook URLs
  (`NEXUS_VAS_PUBLIC_URL`). Provider accounts are created through the API.
- Every message has its own destination number, so a number a fake accepted twice is
  a duplicated send (Twilio's request does not carry the Nexus message id).

Parts (figures), each in its own org(s) so their messages are counted apart:
- single: wrk -c32 POSTs /api/v1/messages/send (a new `to` per request): accepted
  msg/s, p50/p95/p99; then the backlog drains (delivered msg/s with no accept load).
- bulk: requests of 1,000 messages (`/api/v1/messages/send/bulk`, 2 in flight):
  accepted msg/s; then the backlog drains.
- e2e: messages offered at `--e2e-rate` (default 1,000/s, the target) for `--seconds`
  through the bulk API in small chunks every 50 ms, half to an org whose first
  provider is Twilio, half to one whose first is Infobip, with at most `--window`
  messages accepted but not final (the producer waits beyond that, so a saturated
  pipeline shows as a lower delivered rate rather than a runaway backlog). Figures:
  delivered msg/s over the steady part of the run, accepted→delivered p50/p95/p99
  (from `created_at`/`done_at`), lost (accepted, not final after the drain) and
  duplicated sends. Then a lighter run at half the delivered rate gives the latency of
  a pipeline that is not saturated.
- failover: single sends at a steady 5/s to a baseline org (first provider: Infobip)
  and to an org whose first provider is the failing Twilio (then Infobip); then the
  first message of each of `--failover-orgs` fresh orgs whose first provider is the
  failing Twilio (fresh router statistics, so each tries it first: the router soon
  ranks a failing provider last, so in the steady run only the first messages pay for
  the failover). Added latency = p95 of accepted→sent of the messages that failed over
  minus the baseline's p95 (also from the per-attempt `ms` of the routing history).
- memory: peak RSS (VmHWM, and the per-part peak of sampled VmRSS) of each Nexus
  process.
- scale (services only): the e2e run at a saturating rate with one worker process,
  then with two: delivered msg/s each and the ratio.

Also in each record: CPU cores busy per process (Nexus, fakes, this client, wrk), the
share of time Nexus threads waited for a CPU (/proc schedstat: other load on the
machine), CPU pressure (PSI), Nexus CPU ms per finished message (load and drain), and
the per-part peak RSS. Before each part the previous one's work (outbox, jobs, events)
is let finish. Accept figures are taken with the workers running, as in production.
`done_at` is the provider's delivery time where it reports one (Infobip's `doneAt`).
`--profile DIR` records py-spy profiles (`--gil`, raw/collapsed stacks) of every Nexus
process during the single-send and e2e parts.

Each figure is one JSON object per line on stdout, then a summary per mode against the
targets; progress goes to stderr. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _common import drop_services, free_port, wrk

from nexus.kernel.config import Settings
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer

PG_ADMIN = os.environ.get("NEXUS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

ISSUER = "http://nexus.bench"
SENDER = "+15005550006"
FINAL = ("delivered", "undelivered", "failed", "rejected", "expired", "canceled")
OPEN = ("accepted", "queued", "sending", "sent")
TARGETS = {
    "single_send_per_s": 1_500,
    "single_send_p95_ms": 50,
    "single_send_p99_ms": 100,
    "bulk_per_s": 20_000,
    "e2e_delivered_per_s": 1_000,
    "failover_added_p95_ms": 20,
    "peak_rss_mb": 300,
}
AREAS = ("415", "628", "650", "212", "646", "312", "617", "206")
MAX_POLLS = 100_000  # bound of every polling loop, whatever its deadline
MAX_BULK = 500  # messages per request of the paced producer
TICK_S = 0.05  # the paced producer's period
MAX_INFLIGHT_REQUESTS = 8  # bulk requests the paced producer has in flight at most


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def progress(message: str) -> None:
    print(f"[vas_throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def phone(n: int) -> str:
    """The n-th benchmark destination: valid US numbers, never ending in 0000-0003 (the
    fakes' steering suffixes). Same formula as the wrk script."""
    area = AREAS[(n // 7_200_000) % len(AREAS)]
    return f"+1{area}{200 + (n // 9000) % 800:03d}{1000 + n % 9000:04d}"


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def dist(values: list[float]) -> dict[str, Any]:
    """p50/p95/p99/max (nearest rank) of milliseconds."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))], 1)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 1),
    }


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return float(value.timestamp())


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- processes ----------------------------------------------------------------------------


def spawn(cmd: list[str], env: dict[str, str], log: Path, *, pipe: bool = False) -> Any:
    """A child in a session of its own (stopped with its children), stderr to `log`."""
    with log.open("ab") as log_file:
        return subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE if pipe else log_file,
            stderr=log_file,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def status_kb(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children_cpu_s() -> float:
    """CPU seconds of the children already waited for (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sched_s(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of all threads of a
    process, from /proc/<pid>/task/*/schedstat: the wait shows CPU starvation."""
    run = wait = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().split()
            run += int(fields[0])
            wait += int(fields[1])
    return run / 1e9, wait / 1e9


def cpu_pressure() -> float | None:
    """The share of the last 10 s in which some runnable task waited for a CPU (PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(line.split("avg10=")[1].split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Sampler:
    """Samples the RSS of the watched processes; keeps the peak since the last reset."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.pids: dict[str, int] = {}
        self.peak_kb: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = status_kb(pid, "VmRSS")
            if rss is not None:
                self.peak_kb[name] = max(self.peak_kb.get(name, 0), rss)

    async def _run(self) -> None:
        for _ in range(MAX_POLLS * 10):
            if self._stop.is_set():
                return
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)


@dataclass
class Meter:
    """CPU and peak memory of the watched processes over one part."""

    bench: Bench
    started: float = 0.0
    cpu0: dict[str, float] = field(default_factory=dict)
    sched0: dict[str, tuple[float, float]] = field(default_factory=dict)

    def start(self) -> Meter:
        self.bench.sampler.peak_kb = {}
        self.bench.sampler.sample()
        self.cpu0 = {name: cpu_s(pid) for name, pid in self.all_pids().items()}
        self.cpu0["wrk"] = _children_cpu_s()
        self.sched0 = {name: sched_s(pid) for name, pid in self.bench.nexus_pids().items()}
        self.started = time.perf_counter()
        return self

    def nexus_cpu_s(self) -> float:
        """CPU seconds the Nexus processes used since start()."""
        pids = self.bench.nexus_pids()
        return sum(cpu_s(pid) - self.cpu0.get(name, 0.0) for name, pid in pids.items())

    def all_pids(self) -> dict[str, int]:
        pids = dict(self.bench.sampler.pids)
        for name, fake in self.bench.fakes.items():
            pids[f"fake:{name}"] = fake.proc.pid
        pids["bench_client"] = os.getpid()
        return pids

    def stop(self) -> dict[str, Any]:
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        self.bench.sampler.sample()
        busy = {
            name: round((cpu_s(pid) - self.cpu0.get(name, 0.0)) / elapsed, 2)
            for name, pid in self.all_pids().items()
        }
        wrk = _children_cpu_s() - self.cpu0["wrk"]
        if wrk > 0.05:
            busy["wrk"] = round(wrk / elapsed, 2)
        waited = {}
        for name, pid in self.bench.nexus_pids().items():
            _run0, wait0 = self.sched0.get(name, (0.0, 0.0))
            _run, wait = sched_s(pid)
            waited[name] = round((wait - wait0) / elapsed, 2)
        return {
            "cores_busy": busy,
            "nexus_threads_waiting_for_cpu": waited,
            "cpu_pressure_avg10": cpu_pressure(),
            "peak_rss_mb": {k: round(v / 1024, 1) for k, v in self.bench.sampler.peak_kb.items()},
            "loadavg_1m": load(),
        }


# -- the database, read from the outside --------------------------------------------------


class Store:
    """Reads the VAS tables of the server's database (SQLite file or PostgreSQL)."""

    def __init__(self, sqlite_path: Path | None = None, pg_dsn: str | None = None) -> None:
        self.sqlite_path, self.pg_dsn = sqlite_path, pg_dsn
        self.pool: Any = None

    async def open(self) -> None:
        if self.pg_dsn:
            import asyncpg

            self.pool = await asyncpg.create_pool(self.pg_dsn, min_size=1, max_size=2)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def _sqlite(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(str(self.sqlite_path), timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.pool is None:
            return await asyncio.to_thread(self._sqlite, sql, params)
        counter = iter(range(1, len(params) + 1))
        sql = re.sub(r"\?", lambda _m: f"${next(counter)}", sql)
        return [tuple(r) for r in await self.pool.fetch(sql, *params)]

    @staticmethod
    def marks(n: int) -> str:
        return ",".join("?" * n)

    async def open_count(self, orgs: list[str]) -> int:
        rows = await self.fetch(
            f"SELECT count(*) FROM vas_messages WHERE status IN ({self.marks(len(OPEN))})"
            f" AND org_id IN ({self.marks(len(orgs))})",
            *OPEN,
            *orgs,
        )
        return int(rows[0][0])

    async def messages(self, orgs: list[str]) -> list[dict[str, Any]]:
        rows = await self.fetch(
            'SELECT id, org_id, status, "to", provider_type, created_at, sent_at, done_at'
            f" FROM vas_messages WHERE org_id IN ({self.marks(len(orgs))})",
            *orgs,
        )
        return [
            {
                "id": r[0],
                "org": r[1],
                "status": r[2],
                "to": digits(r[3] or ""),
                "provider": r[4],
                "created": epoch(r[5]),
                "sent": epoch(r[6]),
                "done": epoch(r[7]),
            }
            for r in rows
        ]

    async def dispatched_twice(self, orgs: list[str]) -> int:
        """Messages with more than one recorded send decision (a job run twice)."""
        rows = await self.fetch(
            "SELECT count(*) FROM (SELECT message_id FROM vas_message_events"
            f" WHERE org_id IN ({self.marks(len(orgs))}) AND kind = 'routing'"
            " AND status = 'sending' GROUP BY message_id HAVING count(*) > 1) AS t",
            *orgs,
        )
        return int(rows[0][0])

    async def routing(self, orgs: list[str]) -> dict[str, list[dict[str, Any]]]:
        """message id -> the attempts of its send decision(s), in order."""
        rows = await self.fetch(
            "SELECT message_id, data FROM vas_message_events"
            f" WHERE org_id IN ({self.marks(len(orgs))}) AND kind = 'routing'",
            *orgs,
        )
        attempts: dict[str, list[dict[str, Any]]] = {}
        for message_id, data in rows:
            value = json.loads(data) if isinstance(data, str) else (data or {})
            attempts.setdefault(message_id, []).extend(value.get("attempts") or [])
        return attempts


# -- wrk ----------------------------------------------------------------------------------

WRK_SEND_LUA = r"""
local token = os.getenv("BENCH_TOKEN") or ""
local base = tonumber(os.getenv("BENCH_TO_BASE") or "0")
local areas = {"415", "628", "650", "212", "646", "312", "617", "206"}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = base + (tid or 0) * 1000000
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local function phone(n)
  local area = areas[(math.floor(n / 7200000) % 8) + 1]
  return string.format("+1%s%03d%04d", area, 200 + math.floor(n / 9000) % 800, 1000 + n % 9000)
end

request = function()
  local n = counter
  counter = counter + 1
  local body = string.format('{"channel":"sms","to":"%s","body":"bench %d"}', phone(n), n)
  return wrk.format(nil, nil, nil, body)
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
WRK_THREADS = 1
WRK_ID_STRIDE = 1_000_000  # destinations reserved per wrk thread


def run_wrk(
    url: str, token: str, base: int, seconds: int, connections: int, script: Path
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_TO_BASE": str(base)}
    result = wrk(
        url, script, threads=WRK_THREADS, connections=connections, seconds=seconds, env=env
    )
    result["req_per_s"] = round(result["req_per_s"])
    return result


# -- the bench of one mode ----------------------------------------------------------------


@dataclass
class Fake:
    name: str
    provider: str
    proc: subprocess.Popen[bytes]
    base_url: str
    credentials: dict[str, str]


def _read_line(proc: subprocess.Popen[bytes]) -> bytes:
    assert proc.stdout is not None
    return proc.stdout.readline()


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


def _log_has(path: Path, needle: str) -> bool:
    try:
        return needle in path.read_text(errors="replace")
    except OSError:
        return False


def _log_summary(path: Path, limit: int = 2_000_000) -> dict[str, Any]:
    """Warning and error lines of a JSON log, counted by (level, event)."""
    counts: Counter[str] = Counter()
    other = 0
    try:
        with path.open(errors="replace") as handle:
            for n, line in enumerate(handle):
                if n >= limit:
                    break
                try:
                    item = json.loads(line)
                    counts[f"{item.get('level')}: {str(item.get('event'))[:80]}"] += 1
                except ValueError:
                    other += 1
    except OSError:
        return {}
    return {"lines_by_event": dict(counts.most_common(8)), "non_json_lines": other}


class Bench:
    """Storage, fakes, server (and workers) of one mode, plus the helpers the parts use."""

    def __init__(self, mode: str, args: argparse.Namespace) -> None:
        self.mode, self.args = mode, args
        self.tmp = Path(tempfile.mkdtemp(prefix="nexus-vas-bench-"))
        self.data_dir = self.tmp / "var"
        self.data_dir.mkdir()
        self.pg_database: str | None = None
        self.namespace: str | None = None
        self.issuer = TestIssuer(issuer=ISSUER)
        self.fakes: dict[str, Fake] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.port = 0
        self.base = ""
        self.env: dict[str, str] = {}
        self.store = Store()
        self.sampler = Sampler()
        self.http: aiohttp.ClientSession | None = None
        self.next_number = 0
        self._tokens: dict[str, str] = {}
        self.profiles: list[subprocess.Popen[bytes]] = []

    @property
    def backend(self) -> str:
        return "postgresql+nats+redis" if self.mode == "services" else "sqlite+memory"

    def common(self, figure: str) -> dict[str, Any]:
        return {"benchmark": "vas_throughput", "mode": self.mode, "figure": figure}

    # -- set-up and tear-down ---------------------------------------------------------
    async def setup(self) -> None:
        values: dict[str, Any] = {
            "env": "production",
            "data_dir": self.data_dir,
            "secret_key": "bench-secret-" + "v" * 32,
            "jwt_issuer": ISSUER,
            "log_level": "WARNING",
        }
        if self.mode == "services":
            import asyncpg

            self.pg_database = f"nexus_vasbench_{uuid.uuid4().hex[:12]}"
            conn = await asyncpg.connect(PG_ADMIN)
            try:
                await conn.execute(f'CREATE DATABASE "{self.pg_database}"')
            finally:
                await conn.close()
            netloc = PG_ADMIN.split("://", 1)[1].split("/", 1)[0]
            self.namespace = f"vasbench{uuid.uuid4().hex[:10]}"
            values.update(
                database_url=f"postgresql+asyncpg://{netloc}/{self.pg_database}",
                bus_url=NATS_URL,
                bus_namespace=self.namespace,
                redis_url=REDIS_URL,
            )
            self.store = Store(pg_dsn=f"postgresql://{netloc}/{self.pg_database}")
        else:
            self.store = Store(sqlite_path=self.data_dir / "nexus.db")
        settings = Settings(**values)
        migrator = Runtime(settings, [vas_service])
        try:
            await upgrade(migrator)
        finally:
            await migrator.databases.dispose()
        await self.store.open()

        key_file = self.tmp / "issuer-key.json"
        _write_private(key_file, json.dumps(self.issuer.key.as_dict(private=True)))
        for name, provider, extra in (
            ("twilio", "twilio", []),
            ("infobip", "infobip", []),
            ("twilio_down", "twilio", ["--outage", "error"]),
        ):
            await self.start_fake(name, provider, extra)

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "NEXUS_ENV": "production",
            "NEXUS_DATA_DIR": str(self.data_dir),
            "NEXUS_HOST": "127.0.0.1",
            "NEXUS_PORT": str(self.port),
            "NEXUS_SECRET_KEY": values["secret_key"],
            "NEXUS_JWT_ISSUER": ISSUER,
            "NEXUS_BUS_URL": settings.bus_url,
            "NEXUS_BUS_NAMESPACE": settings.bus_namespace,
            "NEXUS_LOG_LEVEL": "WARNING",
            "NEXUS_LOG_FORMAT": "json",
            "NEXUS_SERVICES": "vas",
            "NEXUS_VAS_PUBLIC_URL": self.base,
            "NEXUS_RUN_WORKERS": "false" if self.mode == "services" else "true",
            "NEXUS_BENCH_ISSUER_KEY": str(key_file),
        }
        if settings.database_url:
            self.env["NEXUS_DATABASE_URL"] = settings.database_url
        if settings.redis_url:
            self.env["NEXUS_REDIS_URL"] = settings.redis_url
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.server = spawn([PYTHON, str(HERE / "vas_app.py")], self.env, self.tmp / "server.log")
        await self._wait_up(60)
        self.sampler.watch("api" if self.mode == "services" else "server", self.server.pid)
        if self.mode == "services":
            await self.add_worker()
        self.sampler.start()

    async def start_fake(self, name: str, provider: str, extra: list[str]) -> None:
        cmd = [PYTHON, str(HERE / "vas_fake.py"), provider, "--port", "0", *extra]
        proc = spawn(cmd, dict(os.environ), self.tmp / f"fake-{name}.log", pipe=True)
        try:
            line = await asyncio.wait_for(asyncio.to_thread(_read_line, proc), 30)
            info = json.loads(line)
        except (TimeoutError, ValueError) as exc:
            stop_process(proc)
            raise RuntimeError(f"the {name} fake did not start: {exc!r}") from None
        self.fakes[name] = Fake(name, provider, proc, info["base_url"], info["credentials"])

    async def add_worker(self) -> None:
        index = len(self.workers) + 1
        log = self.tmp / f"worker{index}.log"
        nexus_cmd = Path(PYTHON).parent / "nexus"
        cmd = [str(nexus_cmd)] if nexus_cmd.exists() else [PYTHON, "-m", "nexus.cli"]
        proc = spawn([*cmd, "worker", "--service", "vas"], self.env, log)
        self.workers.append(proc)
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {index} exited with {proc.returncode}")
            if await asyncio.to_thread(_log_has, log, "worker running"):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"worker {index} did not start within 60 s")
        self.sampler.watch(f"worker{index}", proc.pid)

    async def _wait_up(self, timeout_s: float) -> None:
        assert self.http is not None
        assert self.server is not None
        for _ in range(int(timeout_s / 0.1)):
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited with {self.server.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.get(f"{self.base}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout_s} s")

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self.sampler.stop()
        for proc in self.profiles:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stop_process, proc, 10)
        for proc in [*self.workers, *([self.server] if self.server else [])]:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stop_process, proc)
        for fake in self.fakes.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(stop_process, fake.proc, 10)
        if self.http is not None:
            await self.http.close()
        with contextlib.suppress(Exception):
            await self.store.close()
        if self.mode == "services":
            await self._cleanup_services()
        if self.args.keep_logs:
            progress(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def _cleanup_services(self) -> None:
        await drop_services(
            namespace=self.namespace,
            database=self.pg_database,
            nats_url=NATS_URL,
            pg_admin=PG_ADMIN,
        )

    def nexus_pids(self) -> dict[str, int]:
        return dict(self.sampler.pids)

    # -- API helpers ------------------------------------------------------------------
    def token(self, org: str) -> str:
        if org not in self._tokens:
            self._tokens[org] = self.issuer.token(org_id=org, permissions=["*"], ttl_s=4 * 3600)
        return self._tokens[org]

    def auth(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org)}"}

    async def post(self, path: str, org: str, body: Any) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.post(self.base + path, json=body, headers=self.auth(org)) as r:
            return r.status, await r.json(content_type=None)

    async def add_providers(self, org: str, order: list[str]) -> dict[str, str]:
        """Provider accounts of `org` on the named fakes, first = highest priority."""
        ids = {}
        for priority, name in enumerate(order, 1):
            fake = self.fakes[name]
            status, body = await self.post(
                "/api/v1/providers",
                org,
                {
                    "type": fake.provider,
                    "channel": "sms",
                    "name": name,
                    "credentials": fake.credentials,
                    "base_url": fake.base_url,
                    "sender": SENDER,
                    "priority": priority,
                    "rate_limit_per_s": None,
                },
            )
            if status != 201:
                raise RuntimeError(f"cannot add provider {name} to {org}: {status} {body}")
            ids[name] = body["id"]
        return ids

    def alloc(self, n: int) -> int:
        base, self.next_number = self.next_number, self.next_number + n
        return base

    async def fake_marks(self) -> dict[str, int]:
        assert self.http is not None
        marks = {}
        for name, fake in self.fakes.items():
            async with self.http.get(f"{fake.base_url}/_fake/accepted-to?since=1000000000") as r:
                marks[name] = int((await r.json())["count"])
        return marks

    async def fake_accepted(self, marks: dict[str, int]) -> dict[str, list[str]]:
        assert self.http is not None
        result = {}
        for name, fake in self.fakes.items():
            url = f"{fake.base_url}/_fake/accepted-to?since={marks.get(name, 0)}"
            async with self.http.get(url) as r:
                result[name] = (await r.json())["to"]
        return result

    async def drain(self, orgs: list[str], timeout_s: float) -> dict[str, Any]:
        """Wait until no message of `orgs` is open (bounded); how long it took."""
        started = time.perf_counter()
        left = -1
        for _ in range(MAX_POLLS):
            left = await self.store.open_count(orgs)
            if left == 0 or time.perf_counter() - started > timeout_s:
                break
            await asyncio.sleep(0.5)
        return {"drained": left == 0, "drain_s": round(time.perf_counter() - started, 1)}

    async def backlog(self) -> int:
        """Work not finished yet: outbox rows, SQL jobs, or JetStream messages pending."""
        left = int((await self.store.fetch("SELECT count(*) FROM nexus_outbox"))[0][0])
        if self.mode == "embedded":
            return left + int((await self.store.fetch("SELECT count(*) FROM nexus_jobs"))[0][0])
        import nats

        nc = await nats.connect(NATS_URL, connect_timeout=5)
        try:
            js = nc.jetstream(timeout=5)
            upper = (self.namespace or "").upper()
            for stream in (f"{upper}_JOBS", f"{upper}_EVENTS"):
                for info in await js.consumers_info(stream):
                    left += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        finally:
            await nc.close()
        return left

    async def settle(self, timeout_s: float = 60) -> None:
        """Before a part: let the work of the previous one (event consumers, late status
        jobs) finish, so it does not run during the next measurement."""
        started = time.perf_counter()
        left = -1
        for _ in range(MAX_POLLS):
            left = await self.backlog()
            if left == 0 or time.perf_counter() - started > timeout_s:
                break
            await asyncio.sleep(0.5)
        if left:
            progress(f"{self.mode}: {left} jobs/events still pending after {timeout_s} s")

    # -- profiling --------------------------------------------------------------------
    def profile(self, label: str, seconds: float) -> list[subprocess.Popen[bytes]]:
        if not self.args.profile:
            return []
        spy = Path(PYTHON).parent / "py-spy"
        if not spy.exists():
            progress("py-spy is not installed in the venv: no profile")
            return []
        folder = Path(self.args.profile)
        folder.mkdir(parents=True, exist_ok=True)
        procs = []
        for name, pid in self.nexus_pids().items():
            target = folder / f"{self.mode}-{label}-{name}.txt"
            cmd = [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
            cmd += ["--rate", "50", "--gil", "--nonblocking", "--format", "raw"]
            cmd += ["--output", str(target)]
            procs.append(spawn(cmd, dict(os.environ), self.tmp / "py-spy.log"))
        self.profiles.extend(procs)
        return procs

    async def profile_done(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                await asyncio.to_thread(stop_process, proc, 5)

    # -- analysis ---------------------------------------------------------------------
    async def outcome(
        self,
        orgs: list[str],
        marks: dict[str, int],
        accepted: int,
        window: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """Counts, latencies, lost and duplicated for the messages of `orgs`."""
        rows = await self.store.messages(orgs)
        statuses = Counter(r["status"] for r in rows)
        final = sum(statuses[s] for s in FINAL)
        not_final = sum(statuses[s] for s in OPEN)
        mine = {r["to"] for r in rows}
        by_fake = await self.fake_accepted(marks)
        sends = Counter(t for tos in by_fake.values() for t in tos if t in mine)
        foreign = sum(1 for tos in by_fake.values() for t in tos if t not in mine)
        delivered = [r for r in rows if r["status"] == "delivered" and r["done"] and r["created"]]
        if window is not None:
            lo, hi = window
            in_window = [r for r in delivered if lo <= r["created"] <= hi]
        else:
            in_window = delivered
        result: dict[str, Any] = {
            "accepted": accepted,
            "stored": len(rows),
            "statuses": dict(statuses),
            "final": final,
            "not_final": not_final,
            "missing": max(0, accepted - len(rows)),
            "lost": not_final + max(0, accepted - len(rows)),
            "sends_accepted_by_fakes": sum(sends.values()),
            "sends_by_fake": {k: sum(1 for t in v if t in mine) for k, v in by_fake.items()},
            "duplicated": sum(n - 1 for n in sends.values() if n > 1),
            "duplicated_messages": sum(1 for n in sends.values() if n > 1),
            "dispatched_twice": await self.store.dispatched_twice(orgs),
            "fake_sends_of_other_parts": foreign,
            "by_provider": dict(Counter(r["provider"] for r in delivered)),
            "accepted_to_delivered_ms": dist(
                [(r["done"] - r["created"]) * 1000 for r in in_window]
            ),
            "accepted_to_sent_ms": dist(
                [(r["sent"] - r["created"]) * 1000 for r in in_window if r["sent"]]
            ),
        }
        result["_rows"] = rows
        return result


def drain_rate(rows: list[dict[str, Any]], since: float) -> float | None:
    """Delivered msg/s after `since` (the load stopped): the pipeline on its own."""
    done = sorted(r["done"] for r in rows if r["status"] == "delivered" and r["done"])
    after = [t for t in done if t > since]
    if len(after) < 50:
        return None
    return round(len(after) / max(after[-1] - since, 1e-3), 1)


def pop_rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = outcome.pop("_rows")
    return rows


@contextlib.asynccontextmanager
async def bench_of(mode: str, args: argparse.Namespace) -> AsyncIterator[Bench]:
    bench = Bench(mode, args)
    try:
        await bench.setup()
        yield bench
    finally:
        await bench.teardown()


# -- parts --------------------------------------------------------------------------------


async def part_single(b: Bench) -> dict[str, Any]:
    args = b.args
    warm, org = "org-single-warm", "org-single"
    await b.settle()
    for name in (warm, org):
        await b.add_providers(name, ["twilio", "infobip"])
    script = b.tmp / "send.lua"
    script.write_text(WRK_SEND_LUA)
    url = f"{b.base}/api/v1/messages/send"
    progress(f"{b.mode}: single-send warm-up ({args.warmup} s)")
    base = b.alloc(WRK_THREADS * WRK_ID_STRIDE)
    await asyncio.to_thread(
        run_wrk, url, b.token(warm), base, args.warmup, args.connections, script
    )
    await b.drain([warm], args.drain)
    marks = await b.fake_marks()
    progress(f"{b.mode}: wrk -c{args.connections} POST /messages/send for {args.api_seconds} s")
    meter = Meter(b).start()
    spies = b.profile("single", args.api_seconds)
    started = time.time()
    base = b.alloc(WRK_THREADS * WRK_ID_STRIDE)
    wrk = await asyncio.to_thread(
        run_wrk, url, b.token(org), base, args.api_seconds, args.connections, script
    )
    ended = time.time()
    usage = meter.stop()
    await b.profile_done(spies)
    progress(f"{b.mode}: single-send: {wrk['req_per_s']} req/s; draining the backlog")
    drained = await b.drain([org], args.drain)
    accepted = wrk["requests"] - wrk["errors"]
    cpu_total = meter.nexus_cpu_s()
    result = await b.outcome([org], marks, accepted)
    rows = pop_rows(result)
    stored_in_run = sum(1 for r in rows if r["created"] and started <= r["created"] <= ended + 1)
    rate = round(accepted / wrk["seconds"])
    return {
        **b.common("single_send_api"),
        "backend": b.backend,
        "load": f"wrk -t{WRK_THREADS} -c{args.connections} -d{args.api_seconds}s, new `to` each",
        "accepted_per_s": rate,
        "stored_per_s": round(stored_in_run / wrk["seconds"]),
        "p50_ms": wrk["p50_ms"],
        "p95_ms": wrk["p95_ms"],
        "p99_ms": wrk["p99_ms"],
        "max_ms": wrk["max_ms"],
        "wrk": wrk,
        **usage,
        "drain_delivered_per_s": drain_rate(rows, ended),
        **drained,
        "nexus_cpu_ms_per_msg": round(cpu_total * 1000 / max(result["final"], 1), 2),
        **result,
        "target": {
            "per_s": TARGETS["single_send_per_s"],
            "p95_ms": TARGETS["single_send_p95_ms"],
            "p99_ms": TARGETS["single_send_p99_ms"],
        },
        "meets_target": rate >= TARGETS["single_send_per_s"]
        and wrk["p95_ms"] < TARGETS["single_send_p95_ms"]
        and wrk["p99_ms"] < TARGETS["single_send_p99_ms"]
        and wrk["errors"] == 0,
    }


def bulk_body(base: int, n: int, word: str) -> bytes:
    messages = [
        {"channel": "sms", "to": phone(base + i), "body": f"{word} {base + i}"} for i in range(n)
    ]
    return json.dumps({"messages": messages}).encode()


async def part_bulk(b: Bench) -> dict[str, Any]:
    args = b.args
    assert b.http is not None
    warm, org = "org-bulk-warm", "org-bulk"
    await b.settle()
    for name in (warm, org):
        await b.add_providers(name, ["twilio", "infobip"])
    url = f"{b.base}/api/v1/messages/send/bulk"

    async def one(org_: str, body: bytes) -> tuple[int, dict[str, Any], float]:
        assert b.http is not None
        headers = {**b.auth(org_), "Content-Type": "application/json"}
        t0 = time.perf_counter()
        async with b.http.post(url, data=body, headers=headers) as r:
            data = await r.json(content_type=None)
            return r.status, data, (time.perf_counter() - t0) * 1000

    progress(f"{b.mode}: bulk warm-up (1 x 1,000)")
    status, data, _ = await one(warm, bulk_body(b.alloc(1000), 1000, "warm"))
    if status != 207:
        raise RuntimeError(f"bulk warm-up answered {status}: {str(data)[:300]}")
    await b.drain([warm], args.drain)
    bodies = [bulk_body(b.alloc(1000), 1000, "bulk") for _ in range(args.bulk_requests)]
    marks = await b.fake_marks()
    progress(f"{b.mode}: bulk {args.bulk_requests} x 1,000, {args.bulk_concurrency} in flight")
    slots = asyncio.Semaphore(args.bulk_concurrency)

    async def limited(body: bytes) -> tuple[int, dict[str, Any], float]:
        async with slots:
            return await one(org, body)

    meter = Meter(b).start()
    started = time.perf_counter()
    results = await asyncio.gather(*(limited(body) for body in bodies))
    elapsed = time.perf_counter() - started
    ended = time.time()
    usage = meter.stop()
    accepted = sum(int(d.get("accepted", 0)) for s, d, _ in results if s == 207)
    bad = [s for s, _, _ in results if s != 207]
    rate = round(accepted / elapsed)
    progress(f"{b.mode}: bulk: {rate} msg/s; draining the backlog")
    drained = await b.drain([org], args.drain)
    cpu_total = meter.nexus_cpu_s()
    result = await b.outcome([org], marks, accepted)
    rows = pop_rows(result)
    return {
        **b.common("bulk_api"),
        "backend": b.backend,
        "load": f"{args.bulk_requests} requests of 1,000, {args.bulk_concurrency} in flight",
        "accepted_per_s": rate,
        "seconds": round(elapsed, 2),
        "request_ms": dist([ms for _, _, ms in results]),
        "bad_responses": bad,
        **usage,
        "drain_delivered_per_s": drain_rate(rows, ended),
        **drained,
        "nexus_cpu_ms_per_msg": round(cpu_total * 1000 / max(result["final"], 1), 2),
        **result,
        "target_per_s": TARGETS["bulk_per_s"],
        "meets_target": rate >= TARGETS["bulk_per_s"] and not bad,
    }


async def produce(
    b: Bench, orgs: list[str], rate: float, seconds: float, window: int
) -> dict[str, Any]:
    """Offer `rate` msg/s for `seconds` through the bulk API (chunks every 50 ms, orgs in
    turn), keeping at most `window` messages accepted but not final."""
    assert b.http is not None
    url = f"{b.base}/api/v1/messages/send/bulk"
    state = {"accepted": 0, "rejected": 0, "failed": 0, "errors": 0, "inflight": 0}
    polled = {"open": 0, "snapshot": 0}
    request_ms: list[float] = []
    stop = asyncio.Event()

    async def poll() -> None:
        for _ in range(MAX_POLLS):
            if stop.is_set():
                return
            snapshot = state["accepted"]
            with contextlib.suppress(Exception):
                polled["open"] = await b.store.open_count(orgs)
                polled["snapshot"] = snapshot
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    async def send(org: str, base: int, n: int) -> None:
        assert b.http is not None
        body = bulk_body(base, n, "e2e")
        headers = {**b.auth(org), "Content-Type": "application/json"}
        t0 = time.perf_counter()
        try:
            async with b.http.post(url, data=body, headers=headers) as r:
                data = await r.json(content_type=None)
                if r.status == 207:
                    state["accepted"] += int(data["accepted"])
                    state["rejected"] += int(data["rejected"])
                    state["failed"] += int(data["failed"])
                else:
                    state["errors"] += 1
        except (aiohttp.ClientError, TimeoutError, ValueError):
            state["errors"] += 1
        finally:
            state["inflight"] -= n
            request_ms.append((time.perf_counter() - t0) * 1000)

    poller = asyncio.create_task(poll())
    tasks: set[asyncio.Task[None]] = set()
    per_tick = rate * TICK_S
    budget, throttled, turn, offered = 0.0, 0, 0, 0
    ticks = max(1, int(seconds / TICK_S))
    t_start = time.time()
    m_start = time.monotonic()
    for k in range(ticks):
        delay = m_start + k * TICK_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        budget = min(budget + per_tick, max(per_tick, rate * 0.5))
        open_now = polled["open"] + (state["accepted"] - polled["snapshot"]) + state["inflight"]
        room = window - open_now
        n = int(min(budget, room))
        if n <= 0 or len(tasks) >= MAX_INFLIGHT_REQUESTS:
            throttled += 1
            continue
        if n < budget - 1:
            throttled += 1
        budget -= n
        offered += n
        while n > 0:
            chunk = min(n, MAX_BULK, max(1, math.ceil(per_tick / len(orgs))))
            org = orgs[turn % len(orgs)]
            turn += 1
            state["inflight"] += chunk
            task = asyncio.create_task(send(org, b.alloc(chunk), chunk))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n -= chunk
    t_end = time.time()
    if tasks:
        await asyncio.wait(set(tasks), timeout=60)
    stop.set()
    await poller
    return {
        "t_start": t_start,
        "t_end": t_end,
        "offered": offered,
        "throttled_ticks": throttled,
        "ticks": ticks,
        "request_ms": dist(request_ms),
        **{k: v for k, v in state.items() if k != "inflight"},
    }


async def e2e_run(
    b: Bench, label: str, rate: float, seconds: float, *, figure: str
) -> dict[str, Any]:
    args = b.args
    orgs = [f"org-{label}-tw", f"org-{label}-ib"]
    await b.settle()
    await b.add_providers(orgs[0], ["twilio", "infobip"])
    await b.add_providers(orgs[1], ["infobip", "twilio"])
    marks = await b.fake_marks()
    progress(f"{b.mode}: {label}: offering {rate:.0f} msg/s for {seconds:.0f} s")
    meter = Meter(b).start()
    spies = b.profile(label, seconds)
    produced = await produce(b, orgs, rate, seconds, args.window)
    usage = meter.stop()
    await b.profile_done(spies)
    progress(f"{b.mode}: {label}: {produced['accepted']} accepted; draining")
    drained = await b.drain(orgs, args.drain)
    cpu_total = meter.nexus_cpu_s()
    t0, t1 = produced["t_start"], produced["t_end"]
    warm = min(5.0, 0.2 * seconds)
    result = await b.outcome(orgs, marks, produced["accepted"], window=(t0 + warm, t1))
    rows = pop_rows(result)
    done_in_window = [
        r for r in rows if r["status"] == "delivered" and r["done"] and t0 + warm <= r["done"] <= t1
    ]
    delivered_rate = round(len(done_in_window) / max(t1 - t0 - warm, 1e-3), 1)
    delivered_all = [r for r in rows if r["status"] == "delivered" and r["done"]]
    overall = None
    if delivered_all:
        span = max(r["done"] for r in delivered_all) - t0
        overall = round(len(delivered_all) / max(span, 1e-3), 1)
    accepted_rate = round(produced["accepted"] / max(t1 - t0, 1e-3), 1)
    saturated = produced["throttled_ticks"] > 0.05 * produced["ticks"]
    return {
        **b.common(figure),
        "backend": b.backend,
        "workers": len(b.workers) if b.mode == "services" else "in the server process",
        "offered_rate": rate,
        "seconds": round(t1 - t0, 1),
        "window": args.window,
        "accepted_per_s": accepted_rate,
        "delivered_per_s": delivered_rate,
        "delivered_per_s_incl_drain": overall,
        "steady_window_s": [round(warm, 1), round(t1 - t0, 1)],
        "saturated": saturated,
        "producer": {k: v for k, v in produced.items() if k not in ("t_start", "t_end")},
        **usage,
        **drained,
        "nexus_cpu_ms_per_msg": round(cpu_total * 1000 / max(result["final"], 1), 2),
        **result,
    }


async def part_e2e(b: Bench) -> list[dict[str, Any]]:
    args = b.args
    main = await e2e_run(b, "e2e", args.e2e_rate, args.seconds, figure="end_to_end")
    target = TARGETS["e2e_delivered_per_s"]
    main["target_per_s"] = target
    main["meets_target"] = (
        main["delivered_per_s"] >= target and main["lost"] == 0 and main["duplicated"] == 0
    )
    light_rate = max(20.0, round(0.5 * main["delivered_per_s"]))
    light = await e2e_run(
        b, "e2e-light", light_rate, args.light_seconds, figure="end_to_end_unsaturated"
    )
    return [main, light]


def _sent_ms(row: dict[str, Any]) -> float | None:
    if not row["sent"] or not row["created"]:
        return None
    return float((row["sent"] - row["created"]) * 1000)


async def part_failover(b: Bench) -> dict[str, Any]:
    """Two measurements, both against a baseline org whose first provider is the healthy
    Infobip fake: (1) steady: an org whose first provider is the failing Twilio, at a
    steady rate; the router soon orders the failing provider last (its success rate
    drops), so only the first messages (and later probes) pay for the failover; (2) per
    failover: the first message of each of `--failover-orgs` fresh orgs whose first
    provider is the failing Twilio (fresh router statistics: each tries it first)."""
    args = b.args
    assert b.http is not None
    base_org, down_org = "org-fo-base", "org-fo-down"
    await b.settle()
    await b.add_providers(base_org, ["infobip", "twilio"])
    failing = {(await b.add_providers(down_org, ["twilio_down", "infobip"]))["twilio_down"]}
    fresh = [f"org-fo-fresh-{i}" for i in range(args.failover_orgs)]
    for org in fresh:
        failing.add((await b.add_providers(org, ["twilio_down", "infobip"]))["twilio_down"])
    marks = await b.fake_marks()
    rate, seconds = args.failover_rate, args.failover_seconds
    progress(
        f"{b.mode}: failover: {rate}/s to a baseline and a failing-first org for {seconds} s,"
        f" then the first message of {len(fresh)} fresh orgs"
    )
    url = f"{b.base}/api/v1/messages/send"
    statuses: Counter[int] = Counter()

    async def send(org: str, n: int) -> None:
        assert b.http is not None
        body = {"channel": "sms", "to": phone(n), "body": f"failover {n}"}
        try:
            async with b.http.post(url, json=body, headers=b.auth(org)) as r:
                await r.read()
                statuses[r.status] += 1
        except (aiohttp.ClientError, TimeoutError):
            statuses[0] += 1

    async def paced(pairs: list[tuple[str, ...]], per_s: float) -> None:
        tasks = []
        start = time.monotonic()
        for k, orgs in enumerate(pairs):
            delay = start + k / per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks += [asyncio.create_task(send(org, b.alloc(1))) for org in orgs]
        if tasks:
            await asyncio.wait(tasks, timeout=60)

    meter = Meter(b).start()
    await paced([(base_org, down_org)] * int(rate * seconds), rate)
    await paced([(base_org, org) for org in fresh], rate)
    usage = meter.stop()
    orgs = [base_org, down_org, *fresh]
    drained = await b.drain(orgs, args.drain)
    rows = await b.store.messages(orgs)
    attempts = await b.store.routing(orgs)
    base_sent, base_calls, steady_all, steady_over = [], [], [], []
    fresh_sent, fresh_calls, failed_call = [], [], []
    for r in rows:
        ms = _sent_ms(r)
        if ms is None:
            continue
        tried = attempts.get(r["id"], [])
        calls = sum(float(a.get("ms") or 0) for a in tried)
        over = any(a.get("provider_id") in failing for a in tried)
        failed_call += [float(a.get("ms") or 0) for a in tried if a.get("provider_id") in failing]
        if r["org"] == base_org:
            base_sent.append(ms)
            base_calls.append(calls)
        elif r["org"] == down_org:
            steady_all.append(ms)
            if over:
                steady_over.append(ms)
        elif over:
            fresh_sent.append(ms)
            fresh_calls.append(calls)
    d_base, d_fresh, d_all = dist(base_sent), dist(fresh_sent), dist(steady_all)
    c_base, c_fresh = dist(base_calls), dist(fresh_calls)

    def minus(a: dict[str, Any], b_: dict[str, Any]) -> float | None:
        if a["p95"] is None or b_["p95"] is None:
            return None
        return round(a["p95"] - b_["p95"], 1)

    by_fake = await b.fake_accepted(marks)
    added = minus(d_fresh, d_base)
    return {
        **b.common("failover_added_latency"),
        "backend": b.backend,
        "load": f"{rate}/s single sends, {seconds} s steady, then {len(fresh)} fresh orgs",
        "responses": dict(statuses),
        "baseline": "org whose first provider is the healthy Infobip fake",
        "failing_first": "orgs whose first provider is a Twilio fake answering 503, then Infobip",
        "accepted_to_sent_ms": {
            "baseline": d_base,
            "failed_over_fresh_orgs": d_fresh,
            "steady_failing_org_all": d_all,
            "steady_failing_org_failed_over": dist(steady_over),
        },
        "provider_calls_ms": {"baseline": c_base, "failed_over": c_fresh},
        "failing_call_ms": dist(failed_call),
        "added_p95_ms": added,
        "added_p95_ms_provider_calls": minus(c_fresh, c_base),
        "added_p95_ms_steady_all_messages": minus(d_all, d_base),
        "steady_share_failed_over": round(len(steady_over) / max(len(steady_all), 1), 3),
        "failing_fake_accepted": len(by_fake.get("twilio_down", [])),
        "statuses": dict(Counter(r["status"] for r in rows)),
        **usage,
        **drained,
        "target_p95_ms": TARGETS["failover_added_p95_ms"],
        "meets_target": added is not None and added < TARGETS["failover_added_p95_ms"],
    }


async def part_scale(b: Bench) -> list[dict[str, Any]]:
    args = b.args
    records = []
    one = await e2e_run(b, "scale-1w", args.scale_rate, args.scale_seconds, figure="scale_out_run")
    records.append(one)
    progress(f"{b.mode}: starting a second worker process")
    await b.add_worker()
    await asyncio.sleep(2)
    two = await e2e_run(b, "scale-2w", args.scale_rate, args.scale_seconds, figure="scale_out_run")
    records.append(two)
    r1, r2 = one["delivered_per_s"], two["delivered_per_s"]
    records.append(
        {
            **b.common("scale_out_workers"),
            "backend": b.backend,
            "offered_rate": args.scale_rate,
            "seconds": args.scale_seconds,
            "delivered_per_s_1_worker": r1,
            "delivered_per_s_2_workers": r2,
            "ratio": round(r2 / r1, 2) if r1 else None,
            "saturated": [one["saturated"], two["saturated"]],
            "cores_busy": [one["cores_busy"], two["cores_busy"]],
            "lost": one["lost"] + two["lost"],
            "duplicated": one["duplicated"] + two["duplicated"],
            "target": "two workers deliver clearly more than one",
            "meets_target": bool(r1 and r2 / r1 >= 1.3),
        }
    )
    return records


def memory_record(b: Bench, peaks: dict[str, float]) -> dict[str, Any]:
    hwm = {}
    for name, pid in b.nexus_pids().items():
        value = status_kb(pid, "VmHWM")
        hwm[name] = round(value / 1024, 1) if value is not None else None
    top = max([v for v in hwm.values() if v is not None] + list(peaks.values()) + [0.0])
    return {
        **b.common("memory"),
        "backend": b.backend,
        "vm_hwm_mb": hwm,
        "peak_sampled_rss_mb": peaks,
        "max_process_mb": top,
        "target_mb": TARGETS["peak_rss_mb"],
        "meets_target": top < TARGETS["peak_rss_mb"],
    }


def summary_record(b: Bench, records: list[dict[str, Any]]) -> dict[str, Any]:
    by = {}
    for r in records:
        by.setdefault(r["figure"], r)
    figures: dict[str, Any] = {}
    if "single_send_api" in by:
        r = by["single_send_api"]
        figures["single_send"] = {
            "accepted_per_s": r["accepted_per_s"],
            "p50_ms": r["p50_ms"],
            "p95_ms": r["p95_ms"],
            "p99_ms": r["p99_ms"],
            "meets_target": r["meets_target"],
        }
    if "bulk_api" in by:
        r = by["bulk_api"]
        figures["bulk"] = {"accepted_per_s": r["accepted_per_s"], "meets_target": r["meets_target"]}
    if "end_to_end" in by:
        r = by["end_to_end"]
        light = by.get("end_to_end_unsaturated", {})
        figures["end_to_end"] = {
            "delivered_per_s": r["delivered_per_s"],
            "p50_ms": r["accepted_to_delivered_ms"]["p50"],
            "p95_ms": r["accepted_to_delivered_ms"]["p95"],
            "saturated": r["saturated"],
            "unsaturated_rate": light.get("offered_rate"),
            "unsaturated_p50_ms": light.get("accepted_to_delivered_ms", {}).get("p50"),
            "unsaturated_p95_ms": light.get("accepted_to_delivered_ms", {}).get("p95"),
            "lost": r["lost"],
            "duplicated": r["duplicated"],
            "meets_target": r["meets_target"],
        }
    if "failover_added_latency" in by:
        r = by["failover_added_latency"]
        figures["failover"] = {
            "added_p95_ms": r["added_p95_ms"],
            "added_p95_ms_provider_calls": r["added_p95_ms_provider_calls"],
            "meets_target": r["meets_target"],
        }
    if "memory" in by:
        r = by["memory"]
        figures["memory"] = {
            "max_process_mb": r["max_process_mb"],
            "meets_target": r["meets_target"],
        }
    if "scale_out_workers" in by:
        r = by["scale_out_workers"]
        figures["scale_out"] = {
            "delivered_per_s": [r["delivered_per_s_1_worker"], r["delivered_per_s_2_workers"]],
            "ratio": r["ratio"],
            "meets_target": r["meets_target"],
        }
    return {
        **b.common("summary"),
        "backend": b.backend,
        "figures": figures,
        "server_log": _log_summary(b.tmp / "server.log"),
        "worker_logs": [_log_summary(b.tmp / f"worker{i}.log") for i in range(1, 3)]
        if b.mode == "services"
        else None,
        "loadavg_1m": load(),
    }


async def run_mode(mode: str, args: argparse.Namespace) -> None:
    async with bench_of(mode, args) as b:
        records: list[dict[str, Any]] = []
        peaks: dict[str, float] = {}

        def emit(record: dict[str, Any]) -> None:
            for name, mb in (record.get("peak_rss_mb") or {}).items():
                peaks[name] = max(peaks.get(name, 0.0), mb)
            records.append(record)
            out(record)

        if "single" in args.parts:
            emit(await part_single(b))
        if "bulk" in args.parts:
            emit(await part_bulk(b))
        if "e2e" in args.parts:
            for record in await part_e2e(b):
                emit(record)
        if "failover" in args.parts:
            emit(await part_failover(b))
        emit(memory_record(b, peaks))
        if "scale" in args.parts and mode == "services":
            for record in await part_scale(b):
                emit(record)
        out(summary_record(b, records))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services", "all"], default="all")
    parser.add_argument("--seconds", type=float, help="sustained e2e run (default 60, quick 15)")
    parser.add_argument("--quick", action="store_true", help="short runs everywhere")
    parser.add_argument("--parts", default="single,bulk,e2e,failover,scale")
    parser.add_argument("--api-seconds", type=int, help="wrk run (default 10, quick 5)")
    parser.add_argument("--warmup", type=int, default=None, help="wrk warm-up (s)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bulk-requests", type=int, help="requests of 1,000 (default 4, quick 2)")
    parser.add_argument("--bulk-concurrency", type=int, default=2)
    parser.add_argument("--e2e-rate", type=float, default=1000.0, help="offered msg/s")
    parser.add_argument("--window", type=int, default=2000, help="max accepted-not-final")
    parser.add_argument("--light-seconds", type=float, help="unsaturated e2e run (s)")
    parser.add_argument("--failover-rate", type=float, default=5.0, help="msg/s per org")
    parser.add_argument("--failover-seconds", type=float)
    parser.add_argument("--failover-orgs", type=int, default=30, help="fresh orgs")
    parser.add_argument("--scale-rate", type=float, default=3000.0, help="offered msg/s")
    parser.add_argument("--scale-seconds", type=float)
    parser.add_argument("--drain", type=float, help="bound of each drain (s)")
    parser.add_argument("--profile", help="write py-spy profiles (raw) of Nexus to DIR")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "seconds": 15.0 if quick else 60.0,
        "api_seconds": 5 if quick else 10,
        "warmup": 1 if quick else 2,
        "bulk_requests": 2 if quick else 4,
        "light_seconds": 8.0 if quick else 20.0,
        "failover_seconds": 5.0 if quick else 10.0,
        "scale_seconds": 10.0 if quick else 30.0,
        "drain": 90.0 if quick else 180.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.parts - {"single", "bulk", "e2e", "failover", "scale"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if not 1 <= args.seconds <= 600 or not 1 <= args.api_seconds <= 600:
        parser.error("--seconds and --api-seconds must be in 1..600")
    if not 1 <= args.bulk_requests <= 200 or not 1 <= args.bulk_concurrency <= 16:
        parser.error("--bulk-requests must be in 1..200, --bulk-concurrency in 1..16")
    if not 1 <= args.e2e_rate <= 20_000 or not 1 <= args.scale_rate <= 20_000:
        parser.error("rates must be in 1..20,000 msg/s")
    if not 1 <= args.failover_rate <= 500 or not 1 <= args.failover_seconds <= 120:
        parser.error("--failover-rate must be in 1..500, --failover-seconds in 1..120")
    if not 1 <= args.failover_orgs <= 500:
        parser.error("--failover-orgs must be in 1..500")
    if not 1 <= args.drain <= 1800 or not 100 <= args.window <= 100_000:
        parser.error("--drain must be in 1..1800 s, --window in 100..100,000")
    if shutil.which("wrk") is None and "single" in args.parts:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    return args


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    modes = ["embedded", "services"] if args.mode == "all" else [args.mode]
    for mode in modes:
        progress(f"mode {mode}")
        await run_mode(mode, args)


if __name__ == "__main__":
    asyncio.run(main())
