"""VAS engagement figures: contact import rate and memory, campaign send rate against its
throttle, analytics query times over many messages.

    .venv/bin/python benchmarks/vas_engagement.py [--mode embedded|services|all] [--quick]
        [--parts import,campaign,analytics] [--import-rows N] [--campaign-contacts N]
        [--throttle R[,R...]] [--messages N] [--keep-logs]

Sizes: 1,000,000 CSV rows, a campaign to 10,000 contacts at 200 msg/s, 10,000,000
messages (`--quick`: 100,000 rows, 2,000 contacts, 1,000,000 messages).

Set-up per mode, all on 127.0.0.1 and removed at the end: the server is
`benchmarks/vas_app.py` (uvicorn, one process, as in production) on a temporary SQLite
file (embedded, workers in the server process) or on a temporary PostgreSQL database
with NATS JetStream and Redis and one `nexus worker --service vas` process (services).
Each part runs in its own org.

- import: a CSV file of N contacts (phone, e-mail, names, tags, an attribute; 0.1 % bad
  rows, 1 % duplicates written another way) is streamed to `POST /api/v1/contacts/import`
  and followed until done. Figures: rows/s (rows read / time from upload start to the
  import's end), upload time, file size, and the peak RSS (VmHWM) of the process that
  ran the import job next to its RSS before: memory must not grow with the file.
- campaign: C contacts imported, two templates, a 50/50 A/B campaign through the
  built-in sandbox provider at each `--throttle`. Figures: the send rate the campaign
  measured (accepted msg/s, from its recipients' times), its ratio to the throttle,
  the wall time, and delivered count after the drain.
- analytics: M messages of 30 days (channels, providers, statuses, costs, latencies)
  generated with one INSERT ... SELECT (a recursive CTE on SQLite, generate_series on
  PostgreSQL), then every analytics endpoint over the 30 days by day (and the last day
  by hour) through HTTP, 3 times each: ms of each run.

One JSON object per line on stdout; progress on stderr. Machine noise (other load on the
2 cores) moves these figures: compare runs made at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import drop_services, free_port  # noqa: E402

from nexus.kernel.config import Settings  # noqa: E402
from nexus.kernel.migrate import upgrade  # noqa: E402
from nexus.kernel.runtime import Runtime  # noqa: E402
from nexus.services.vas import service as vas_service  # noqa: E402
from nexus.testing.tokens import TestIssuer  # noqa: E402

PYTHON = sys.executable
ISSUER = "http://nexus.bench"
PG_ADMIN = os.environ.get("NEXUS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
ANALYTICS_ORG = "bench-analytics"
DAYS = 30


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record, default=str), flush=True)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def number(area: int, n: int, *, national: bool = False) -> str:
    """A valid, distinct North American number per n (up to 8,000,000 per area code)."""
    exchange, line = 200 + n // 10_000 % 800, n % 10_000
    return f"({area}) {exchange}-{line:04d}" if national else f"+1{area}{exchange}{line:04d}"


def contacts_csv(path: Path, rows: int, *, seed: int = 7, area: int = 212) -> int:
    """Write `rows` contacts; returns how many rows are bad on purpose."""
    rng = random.Random(seed)
    bad = 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "email", "first name", "last name", "tags", "plan"])
        for n in range(rows):
            phone, email = number(area, n), f"c{area}-{n}@example.com"
            if n and rng.random() < 0.01:  # a duplicate of the row before, written nationally
                phone, email = number(area, n - 1, national=True), ""
            if rng.random() < 0.001:
                phone, bad = "+1 555", bad + 1
            writer.writerow([phone, email, f"First{n}", "Last", "bench,imported", "gold"])
    return bad


class Bench:
    def __init__(self, mode: str, args: argparse.Namespace) -> None:
        self.mode, self.args = mode, args
        self.tmp = Path(tempfile.mkdtemp(prefix="nexus-engagement-bench-"))
        self.data_dir = self.tmp / "var"
        self.data_dir.mkdir()
        self.issuer = TestIssuer(issuer=ISSUER)
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.pg_database: str | None = None
        self.namespace: str | None = None
        self.database_url = ""
        self.base = ""
        self.env: dict[str, str] = {}
        self.http = httpx.Client(timeout=httpx.Timeout(600, connect=10))

    def common(self, figure: str) -> dict[str, Any]:
        return {"benchmark": "vas_engagement", "mode": self.mode, "figure": figure}

    def auth(self, org: str) -> dict[str, str]:
        token = self.issuer.token(org_id=org, permissions=["*"], ttl_s=6 * 3600)
        return {"Authorization": f"Bearer {token}"}

    @property
    def job_pid(self) -> int:
        """The process that runs jobs: the server (embedded) or the worker (services)."""
        proc = self.worker if self.mode == "services" else self.server
        assert proc is not None
        return proc.pid

    # -- set-up ------------------------------------------------------------------------
    async def setup(self) -> None:
        values: dict[str, Any] = {
            "env": "production",
            "data_dir": self.data_dir,
            "secret_key": "bench-secret-" + "e" * 32,
            "jwt_issuer": ISSUER,
            "log_level": "WARNING",
        }
        if self.mode == "services":
            import asyncpg

            self.pg_database = f"nexus_engbench_{uuid.uuid4().hex[:12]}"
            conn = await asyncpg.connect(PG_ADMIN)
            try:
                await conn.execute(f'CREATE DATABASE "{self.pg_database}"')
            finally:
                await conn.close()
            netloc = PG_ADMIN.split("://", 1)[1].split("/", 1)[0]
            self.namespace = f"engbench{uuid.uuid4().hex[:10]}"
            self.database_url = f"postgresql+asyncpg://{netloc}/{self.pg_database}"
            values.update(
                database_url=self.database_url,
                bus_url=NATS_URL,
                bus_namespace=self.namespace,
                redis_url=REDIS_URL,
            )
        settings = Settings(**values)
        migrator = Runtime(settings, [vas_service])
        try:
            await upgrade(migrator)
        finally:
            await migrator.databases.dispose()
        key_file = self.tmp / "issuer-key.json"
        key_file.write_text(json.dumps(self.issuer.key.as_dict(private=True)))
        key_file.chmod(0o600)
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "NEXUS_ENV": "production",
            "NEXUS_DATA_DIR": str(self.data_dir),
            "NEXUS_HOST": "127.0.0.1",
            "NEXUS_PORT": str(port),
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
        self.server = self._spawn([PYTHON, str(HERE / "vas_app.py")], "server.log")
        await self._wait_up()
        if self.mode == "services":
            nexus = Path(PYTHON).parent / "nexus"
            cmd = [str(nexus)] if nexus.exists() else [PYTHON, "-m", "nexus.cli"]
            self.worker = self._spawn([*cmd, "worker", "--service", "vas"], "worker.log")
            for _ in range(600):
                if "worker running" in (self.tmp / "worker.log").read_text(errors="replace"):
                    break
                if self.worker.poll() is not None:
                    raise RuntimeError("the worker exited")
                await asyncio.sleep(0.1)

    def _spawn(self, cmd: list[str], log: str) -> subprocess.Popen[bytes]:
        handle = (self.tmp / log).open("wb")
        return subprocess.Popen(cmd, env=self.env, stdout=handle, stderr=subprocess.STDOUT)

    async def _wait_up(self) -> None:
        assert self.server is not None
        for _ in range(600):
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited with {self.server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get(f"{self.base}/health").status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("the server did not answer within 60 s")

    async def teardown(self) -> None:
        for proc in (self.worker, self.server):
            if proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(stop_process, proc)
        self.http.close()
        if self.mode == "services":
            await drop_services(
                namespace=self.namespace,
                database=self.pg_database,
                nats_url=NATS_URL,
                pg_admin=PG_ADMIN,
            )
        if self.args.keep_logs:
            progress(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------
    def api(self, method: str, path: str, org: str, **kw: Any) -> Any:
        response = self.http.request(
            method, f"{self.base}/api/v1{path}", headers=self.auth(org), **kw
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def import_file(
        self, org: str, path: Path, **params: Any
    ) -> tuple[dict[str, Any], float, float]:
        """(final import status, upload seconds, total seconds)."""
        size = (await asyncio.to_thread(path.stat)).st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while data := f.read(1 << 18):
                    yield data

        t0 = time.perf_counter()
        response = self.http.post(
            f"{self.base}/api/v1/contacts/import",
            params=params,
            content=chunks(),
            headers={**self.auth(org), "content-type": "text/csv", "content-length": str(size)},
        )
        upload_s = time.perf_counter() - t0
        if response.status_code != 202:
            raise RuntimeError(f"import refused: {response.status_code} {response.text[:300]}")
        status = response.json()
        last = 0.0
        while status["status"] not in {"completed", "failed", "canceled"}:
            await asyncio.sleep(0.5)
            status = self.api("GET", f"/contacts/imports/{status['id']}", org)
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                done = status["byte_offset"] / max(status["total_bytes"], 1)
                progress(f"  import {done:.0%}: {status['rows_read']:,} rows")
        return status, upload_s, time.perf_counter() - t0

    # -- parts -------------------------------------------------------------------------
    async def part_import(self) -> None:
        rows = self.args.import_rows
        path = self.tmp / "contacts.csv"
        progress(f"{self.mode}: writing a CSV of {rows:,} contacts")
        bad = await asyncio.to_thread(contacts_csv, path, rows)
        rss_before = status_kb(self.job_pid, "VmRSS")
        progress(f"{self.mode}: importing {path.stat().st_size / 1e6:.0f} MB")
        status, upload_s, total_s = await self.import_file("bench-import", path, region="US")
        out(
            self.common("import")
            | {
                "rows": rows,
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "status": status["status"],
                "rows_read": status["rows_read"],
                "created": status["created"],
                "merged_duplicates": status["unchanged"] + status["updated"],
                "refused": status["rows_failed"],
                "bad_rows_written": bad,
                "rows_per_s": round(status["rows_read"] / total_s, 1),
                "upload_s": round(upload_s, 2),
                "total_s": round(total_s, 1),
                "job_process_rss_before_mb": round((rss_before or 0) / 1024, 1),
                "job_process_peak_rss_mb": round((status_kb(self.job_pid, "VmHWM") or 0) / 1024, 1),
                "server_peak_rss_mb": round((status_kb(self.server.pid, "VmHWM") or 0) / 1024, 1)  # type: ignore[union-attr]
                if self.server
                else None,
            }
        )
        path.unlink()

    async def part_campaign(self) -> None:
        org = "bench-campaign"
        count = self.args.campaign_contacts
        path = self.tmp / "audience.csv"
        await asyncio.to_thread(contacts_csv, path, count, seed=11, area=415)
        progress(f"{self.mode}: importing the campaign's {count:,} contacts")
        await self.import_file(org, path, region="US")
        self.api(
            "POST",
            "/providers",
            org,
            json={
                "type": "sandbox",
                "channel": "sms",
                "name": "sandbox",
                "options": {"latency_ms": 0, "delivery_delay_ms": 20},
            },
        )
        a = self.api(
            "POST",
            "/templates",
            org,
            json={"name": "A", "channel": "sms", "body": "Hi {{ contact.first_name }}, gold deal"},
        )
        b = self.api(
            "POST",
            "/templates",
            org,
            json={
                "name": "B",
                "channel": "sms",
                "body": "{{ contact.name }}: {{ pct }}% off",
                "variables": [{"name": "pct", "type": "integer"}],
            },
        )
        for throttle in self.args.throttle:
            campaign = self.api(
                "POST",
                "/campaigns",
                org,
                json={
                    "name": f"bench {throttle}/s",
                    "channel": "sms",
                    "audience": {"tags": ["bench"]},
                    "variants": [
                        {"name": "A", "template_id": a["id"], "percent": 50},
                        {"name": "B", "template_id": b["id"], "percent": 50},
                    ],
                    "variables": {"pct": 20},
                    "throttle_per_s": throttle,
                },
            )
            progress(f"{self.mode}: campaign to {count:,} at {throttle}/s")
            t0 = time.perf_counter()
            self.api("POST", f"/campaigns/{campaign['id']}/start", org)
            while (state := self.api("GET", f"/campaigns/{campaign['id']}", org))[
                "status"
            ] != "completed":
                if time.perf_counter() - t0 > 3600:
                    raise RuntimeError(f"campaign not done in an hour: {state}")
                await asyncio.sleep(0.5)
            wall_s = time.perf_counter() - t0
            stats = self.api("GET", f"/campaigns/{campaign['id']}/stats", org)
            for _ in range(600):  # the drain: until every message has its final status
                total = stats["overall"]
                if total["delivered"] + total["failed"] + total["rejected"] >= total["recipients"]:
                    break
                await asyncio.sleep(0.5)
                stats = self.api("GET", f"/campaigns/{campaign['id']}/stats", org)
            rate = stats["send_rate_per_s"] or 0
            out(
                self.common("campaign")
                | {
                    "contacts": count,
                    "recipients": stats["overall"]["recipients"],
                    "throttle_per_s": throttle,
                    "send_rate_per_s": rate,
                    "rate_over_throttle": round(rate / throttle, 3),
                    "wall_s": round(wall_s, 1),
                    "split": {v["variant"]: v["recipients"] for v in stats["variants"]},
                    "delivered": stats["overall"]["delivered"],
                    "pending_after_drain": stats["overall"]["pending"],
                }
            )

    async def part_analytics(self) -> None:
        count = self.args.messages
        # the 30 days up to now, as a live system has them (nothing in the future)
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=DAYS)
        progress(f"{self.mode}: generating {count:,} messages")
        t0 = time.perf_counter()
        if self.mode == "services":
            await self._generate_pg(count, start)
        else:
            await asyncio.to_thread(self._generate_sqlite, count, start)
        out(
            self.common("analytics_generate")
            | {"messages": count, "seconds": round(time.perf_counter() - t0, 1)}
        )
        generated = dt.datetime.now(dt.UTC)
        progress(f"{self.mode}: waiting for the hourly rollup")
        t0 = time.perf_counter()
        while True:  # the rollup loop runs every 30 s and rolls everything up again
            state = self.api("GET", "/analytics/status", ANALYTICS_ORG)
            if state["checked_at"] and dt.datetime.fromisoformat(state["checked_at"]) > generated:
                break
            if time.perf_counter() - t0 > 3600:
                raise RuntimeError(f"the rollup did not catch up: {state}")
            await asyncio.sleep(1)
        out(
            self.common("analytics_rollup")
            | {"messages": count, "seconds_with_wait_for_tick": round(time.perf_counter() - t0, 1)}
        )
        end = start + dt.timedelta(days=DAYS)
        queries = [
            (name, {"since": start.isoformat(), "until": end.isoformat(), "bucket": "day"})
            for name in (
                "overview",
                "by-channel",
                "by-provider",
                "delivery-rates",
                "cost-analysis",
                "latency",
            )
        ]
        last_day = {
            "since": (end - dt.timedelta(days=1)).isoformat(),
            "until": end.isoformat(),
            "bucket": "hour",
        }
        queries += [("overview", last_day), ("latency", last_day)]
        for name, params in queries:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                response = self.http.get(
                    f"{self.base}/api/v1/analytics/{name}",
                    params=params,
                    headers=self.auth(ANALYTICS_ORG),
                )
                times.append((time.perf_counter() - t) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
            body = response.json()
            out(
                self.common("analytics_query")
                | {
                    "endpoint": name,
                    "range_days": DAYS if params["bucket"] == "day" else 1,
                    "bucket": params["bucket"],
                    "messages_in_db": count,
                    "ms": [round(x, 1) for x in times],
                    "best_ms": round(min(times), 1),
                    "series_rows": len(body.get("series", [])),
                }
            )

    # the same 30 days of messages on both backends
    def _generate_sqlite(self, count: int, start: dt.datetime) -> None:
        conn = sqlite3.connect(self.data_dir / "nexus.db", timeout=600)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute(
            SQLITE_MESSAGES.format(
                last=count - 1,
                org=ANALYTICS_ORG,
                start=start.strftime("%Y-%m-%d %H:%M:%S"),
                step=repr(DAYS / count),
            )
        )
        conn.execute("DELETE FROM vas_stats_state")  # bulk-loaded: roll everything up
        conn.commit()
        conn.execute("ANALYZE vas_messages")
        conn.close()

    async def _generate_pg(self, count: int, start: dt.datetime) -> None:
        import asyncpg

        netloc = PG_ADMIN.split("://", 1)[1].split("/", 1)[0]
        conn = await asyncpg.connect(f"postgresql://{netloc}/{self.pg_database}")
        try:
            sql = PG_MESSAGES.format(org=ANALYTICS_ORG)
            await conn.execute(sql, start, DAYS * 86400 / count, count)
            await conn.execute("DELETE FROM vas_stats_state")  # bulk-loaded: roll all up
            await conn.execute("ANALYZE vas_messages")
        finally:
            await conn.close()


# channels 60 % sms, 20 % whatsapp, 10 % e-mail, 10 % telegram; statuses 85 % delivered,
# 5 % sent, 4 % undelivered, 3 % failed, 2 % rejected, 1 % queued; 3 providers; a
# seventh of the messages 2 segments; sent after 50-500 ms, delivered after 1-3 s
COLUMNS = """(id, org_id, channel, direction, "to", status, provider_id, provider_type,
    segments, estimated_cost, cost, currency, attempts, content, metadata, created_at,
    updated_at, sent_at, done_at)"""
CHANNEL = """CASE n % 10 WHEN 6 THEN 'whatsapp' WHEN 7 THEN 'whatsapp' WHEN 8 THEN 'email'
    WHEN 9 THEN 'telegram' ELSE 'sms' END"""
STATUS = """CASE WHEN n % 100 < 85 THEN 'delivered' WHEN n % 100 < 90 THEN 'sent'
    WHEN n % 100 < 94 THEN 'undelivered' WHEN n % 100 < 97 THEN 'failed'
    WHEN n % 100 < 99 THEN 'rejected' ELSE 'queued' END"""
TS = "strftime('%Y-%m-%d %H:%M:%f', {}) || '000'"  # SQLite, as UTCDateTime stores it
SQLITE_MESSAGES = (
    """WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {last})
INSERT INTO vas_messages """
    + COLUMNS
    + """
SELECT printf('bench000-0000-7000-8000-%012x', n), '{org}', """
    + CHANNEL
    + """, 'outbound',
    printf('+1415%07d', n % 10000000), """
    + STATUS
    + """,
    'provider-' || (n % 3), 'sandbox', 1 + (n % 7 = 0), 0.0075, 0.0075 * (1 + (n % 7 = 0)),
    'USD', 1, '{{}}', '{{}}', c, """
    + TS.format("'now'")
    + """,
    CASE WHEN n % 100 < 94 THEN """
    + TS.format("j + (50 + n % 450) / 86400000.0")
    + """ END,
    CASE WHEN n % 100 < 85 THEN """
    + TS.format("j + (1000 + n % 2000) / 86400000.0")
    + """ END
FROM (SELECT n, j, """
    + TS.format("j")
    + """ AS c
      FROM (SELECT n, julianday('{start}') + n * {step} AS j FROM seq))"""
)
PG_MESSAGES = (
    "INSERT INTO vas_messages "
    + COLUMNS
    + """
SELECT 'bench000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'), '{org}', """
    + CHANNEL
    + """,
    'outbound', '+1415' || lpad((n % 10000000)::text, 7, '0'), """
    + STATUS
    + """,
    'provider-' || (n % 3), 'sandbox', 1 + (n % 7 = 0)::int, 0.0075,
    0.0075 * (1 + (n % 7 = 0)::int), 'USD', 1, '{{}}'::jsonb, '{{}}'::jsonb, c, now(),
    CASE WHEN n % 100 < 94 THEN c + make_interval(secs => (50 + n % 450) / 1000.0) END,
    CASE WHEN n % 100 < 85 THEN c + make_interval(secs => (1000 + n % 2000) / 1000.0) END
FROM (SELECT n, $1::timestamptz + n * ($2::float8 * interval '1 second') AS c
      FROM generate_series(0, $3 - 1) AS n) AS s"""
)


async def run_mode(mode: str, args: argparse.Namespace) -> None:
    bench = Bench(mode, args)
    try:
        await bench.setup()
        for part in args.parts:
            await getattr(bench, f"part_{part}")()
    finally:
        await bench.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("embedded", "services", "all"), default="embedded")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="import,campaign,analytics")
    parser.add_argument("--import-rows", type=int)
    parser.add_argument("--campaign-contacts", type=int)
    parser.add_argument("--throttle", default="200")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.throttle = [float(t) for t in args.throttle.split(",")]
    args.import_rows = args.import_rows or (100_000 if args.quick else 1_000_000)
    args.campaign_contacts = args.campaign_contacts or (2_000 if args.quick else 10_000)
    args.messages = args.messages or (1_000_000 if args.quick else 10_000_000)
    modes = ("embedded", "services") if args.mode == "all" else (args.mode,)
    for mode in modes:
        asyncio.run(run_mode(mode, args))


if __name__ == "__main__":
    main()
