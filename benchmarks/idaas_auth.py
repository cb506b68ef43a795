"""IDaaS figures (docs: /work/shared/specs/figures.md, "IDaaS"): token verification,
password logins, refresh-token grants, authenticated CRUD, and, when the OpenID Connect
endpoints exist, client-credentials grants and introspection.

    .venv/bin/python benchmarks/idaas_auth.py [--mode embedded|services|all]
        [--parts verify,login,refresh,crud,client_credentials,introspect]
        [--seconds S] [--http-workers N]

Modes:
- embedded: a SQLite file in a temporary directory, the in-process bus.
- services: a temporary PostgreSQL database, NATS JetStream in a fresh namespace, Redis
  (rate-limit counters); all removed at the end.

Parts:
- verify (in-process, once, mode-independent): the kernel's TokenVerifier with the IDaaS
  key store (LocalKeys), as every service process verifies access tokens. Figures: one
  token verified again and again (verified-token cache hit); distinct fresh tokens
  (signature and claims checked every time); and the same without re-importing the JWKS
  per token, to show what that costs. One asyncio loop, so the rates are per core.
- login, refresh, crud, client_credentials, introspect: a real uvicorn server
  (benchmarks/idaas_app.py: the production app factory, JSON access log at INFO)
  driven by `wrk` on 127.0.0.1:
  - login: POST /api/v1/auth/login with a right password, at concurrency 1 (latency of
    one login, argon2id included) and at concurrency --login-connections (rate).
  - refresh: POST /api/v1/auth/refresh; every wrk connection follows its own chain of
    rotating refresh tokens (a Lua script takes the new token from each answer).
  - crud: GET /api/v1/users/{id} with a bearer token, at concurrency 8 and
    --connections.
  - client_credentials: POST /oauth2/token grant_type=client_credentials (Basic auth).
  - introspect: POST /oauth2/introspect of a client-credentials access token.
  The last two run only when the server's routes include those endpoints; otherwise a
  line says they are not available.

The brute-force throttle and the per-address rate limits (login, refresh, token) are
raised for the server under load (every request comes from 127.0.0.1); everything else is
as configured by default. Each figure is one JSON object per line on stdout; progress
goes to stderr. Every loop is bounded in count and time; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
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
from joserfc.jwk import KeySet
from sqlalchemy import select

from nexus.kernel.auth import KeyProvider, TokenVerifier
from nexus.kernel.config import Settings
from nexus.kernel.ids import new_id
from nexus.kernel.logging import configure_logging
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from nexus.services.idaas.keys import KeyStore, LocalKeys
from nexus.services.idaas.models import User
from nexus.services.idaas.passwords import ARGON2_PARAMS, hash_password, verify_password

PG_ADMIN = os.environ.get("NEXUS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ISSUER = "http://nexus.bench"
PASSWORD = "bench-load-passphrase-1"
EMAIL = "owner@bench.example.com"
ALL_PARTS = ("verify", "login", "refresh", "crud", "client_credentials", "introspect")

# figures.md, IDaaS, "Nexus target (2 cores)"
TARGETS = {
    "verify_per_s_per_core": 20_000,
    "client_credentials_per_s": 1_500,
    "refresh_per_s": 1_000,
    "introspect_per_s": 5_000,
    "login_p95_ms": 50,
    "login_per_s_per_core": 30,
    "crud_p95_ms": 10,
}
ANCHORS = {
    "client_credentials": "Keycloak 120/s per vCPU; Ory Hydra 411/s on 2 CPU",
    "refresh": "Keycloak 120/s per vCPU",
    "introspect": "Ory Hydra 7,934/s on 2 CPU",
    "login": "design target p95 < 50 ms; Keycloak 15/s per vCPU (argon2id t=5 m=7 MiB)",
    "crud": "design target p95 < 30 ms",
}


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def progress(message: str) -> None:
    print(f"[idaas_auth] {message}", file=sys.stderr, flush=True)


def argon2_description() -> dict[str, Any]:
    return {
        "algorithm": "argon2id",
        "time_cost": ARGON2_PARAMS["time_cost"],
        "memory_kib": ARGON2_PARAMS["memory_cost"],
        "parallelism": ARGON2_PARAMS["parallelism"],
    }


# -- environments -------------------------------------------------------------------------


@dataclass
class Env:
    mode: str
    settings: Settings
    tmp: Path
    env_vars: dict[str, str] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return "postgresql+nats+redis" if self.mode == "services" else "sqlite+memory"


def _pg_url(database: str) -> str:
    netloc = PG_ADMIN.split("://", 1)[1].split("/", 1)[0]
    return f"postgresql+asyncpg://{netloc}/{database}"


@contextlib.asynccontextmanager
async def environment(mode: str) -> AsyncIterator[Env]:
    tmp = Path(tempfile.mkdtemp(prefix="nexus-idaas-bench-"))
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
        "services": ["idaas"],
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
        "NEXUS_SERVICES": "idaas",
        "NEXUS_BUS_URL": settings.bus_url,
        "NEXUS_BUS_NAMESPACE": settings.bus_namespace,
        "NEXUS_LOG_LEVEL": "INFO",
        "NEXUS_LOG_FORMAT": "json",
        # every request of the load comes from 127.0.0.1: lift the per-address limits
        "NEXUS_IDAAS_LOGIN_RATE_PER_MINUTE": "100000000",
        "NEXUS_IDAAS_TOKEN_RATE_PER_MINUTE": "100000000",
    }
    if settings.database_url:
        env_vars["NEXUS_DATABASE_URL"] = settings.database_url
    if settings.redis_url:
        env_vars["NEXUS_REDIS_URL"] = settings.redis_url
    try:
        yield Env(mode, settings, tmp, env_vars)
    finally:
        if mode == "services":
            await drop_services(
                namespace=settings.bus_namespace,
                database=database,
                nats_url=NATS_URL,
                pg_admin=PG_ADMIN,
            )
        shutil.rmtree(tmp, ignore_errors=True)


async def prepare(env: Env) -> dict[str, str]:
    """Migrate, create the org and its owner, and the signing key (before the server's
    workers start, so that they do not each make a first key at the same moment)."""
    runtime = Runtime(env.settings, [idaas_service])
    try:
        await upgrade(runtime)
        made = await create_org_with_owner(
            runtime.db("idaas"), org_name="Bench", email=EMAIL, password=PASSWORD, name="Owner"
        )
        await KeyStore(runtime.db("idaas"), env.settings.secret()).refresh()
    finally:
        await runtime.databases.dispose()
    return {"org_id": made.org.id, "owner_id": made.owner.id}


# -- in-process verification ----------------------------------------------------------------


class PreimportedKeys(KeyProvider):
    """The same keys, imported once (what LocalKeys would cost with a KeySet cache)."""

    def __init__(self, keyset: KeySet) -> None:
        self._keyset = keyset

    async def keyset(self, kid: str | None) -> KeySet:
        return self._keyset


async def timed_verifications(verifier: TokenVerifier, tokens: list[str]) -> float:
    started = time.perf_counter()
    for token in tokens:
        await verifier.verify(token)
    return time.perf_counter() - started


async def part_verify(env: Env, args: argparse.Namespace) -> list[dict[str, Any]]:
    await prepare(env)
    runtime = Runtime(env.settings, [idaas_service])
    await runtime.start(workers=False)
    try:
        state = runtime.state["idaas"]
        async with state.db.transaction() as session:
            owner = await session.scalar(select(User).where(User.email == EMAIL))
            assert owner is not None
            token, _scope = await state.issuer.access_token(session, owner, sid=new_id())
        claims = await runtime.authenticator.verifier.verify(token)
        fresh = [
            await state.keys.sign({**claims, "jti": new_id()}, typ="at+jwt")
            for _ in range(args.verify_fresh)
        ]
        settings = env.settings

        def verifier(keys: KeyProvider) -> TokenVerifier:
            return TokenVerifier(keys, issuer=settings.issuer(), audience=settings.jwt_audience)

        jwks = await state.keys.jwks()
        preimported = PreimportedKeys(KeySet.import_key_set(jwks))  # type: ignore[arg-type]
        results: dict[str, tuple[int, float]] = {}
        # warm up, then measure each way on its own verifier (its own cache)
        await timed_verifications(verifier(LocalKeys(state.keys)), fresh[:200])
        cached = verifier(LocalKeys(state.keys))
        await cached.verify(token)
        results["cache_hit"] = (
            args.verify_cached,
            await timed_verifications(cached, [token] * args.verify_cached),
        )
        results["fresh_tokens"] = (
            len(fresh),
            await timed_verifications(verifier(LocalKeys(state.keys)), fresh),
        )
        results["fresh_tokens_keyset_imported_once"] = (
            len(fresh),
            await timed_verifications(verifier(preimported), fresh),
        )
        started = time.perf_counter()
        for _ in range(1000):
            KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        import_us = (time.perf_counter() - started) * 1000
    finally:
        await runtime.stop()
    records = []
    target = TARGETS["verify_per_s_per_core"]
    for name, (count, seconds) in results.items():
        rate = round(count / seconds)
        records.append(
            {
                "benchmark": "idaas_auth",
                "figure": f"access_token_verification_{name}",
                "where": "in-process, kernel TokenVerifier + IDaaS LocalKeys, one asyncio loop",
                "alg": "ES256",
                "tokens": count,
                "verifications_per_s_per_core": rate,
                "us_per_verification": round(seconds / count * 1e6, 1),
                "target_per_s_per_core": target,
                "meets_target": rate >= target,
            }
        )
    records.append(
        {
            "benchmark": "idaas_auth",
            "figure": "jwks_import_cost",
            "us_per_keyset_import": round(import_us, 1),
            "note": "LocalKeys imports the JWKS into a KeySet on every verification it makes",
        }
    )
    return records


# -- HTTP -----------------------------------------------------------------------------------

WRK_DONE = r"""
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

# One request, the same every time (method, headers and body from the environment).
WRK_STATIC = (
    r"""
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY") or ""
if body ~= "" then wrk.body = body end
local ctype = os.getenv("BENCH_CONTENT_TYPE") or ""
if ctype ~= "" then wrk.headers["Content-Type"] = ctype end
local auth = os.getenv("BENCH_AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = auth end
"""
    + WRK_DONE
)

# Every thread (one connection each) follows its own chain of rotating refresh tokens.
WRK_REFRESH = (
    r"""
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  local i = 0
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    i = i + 1
    if i == index then token = line end
  end
end
function request()
  return wrk.format("POST", "/api/v1/auth/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
  if status == 200 then
    local new = string.match(body, '"refresh_token":"([^"]+)"')
    if new then token = new end
  end
end
"""
    + WRK_DONE
)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), int(exc.code)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def post_json(url: str, payload: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return http("POST", url, json.dumps(payload).encode(), headers)


async def _wait_up(base: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            status, _ = await asyncio.to_thread(http, "GET", f"{base}/health")
            if status == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout_s} s")


def _start_server(server_env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [PYTHON, str(HERE / "idaas_app.py")],
            env=server_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_wrk(
    url: str,
    script: Path,
    seconds: float,
    connections: int,
    threads: int,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    result = wrk(
        url,
        script,
        threads=threads,
        connections=connections,
        seconds=seconds,
        env={**os.environ, **extra_env},
        timeout_s=10,
    )
    return {"per_s": result.pop("req_per_s"), **result}


@dataclass
class Server:
    base: str
    routes: set[str]
    ids: dict[str, str]
    tmp: Path
    idle_cpu_percent: float | None = None


def _group_cpu_s(pgid: int) -> float | None:
    """CPU seconds used so far by every process of a process group (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "pid (comm)": state ppid pgrp ...
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


async def idle_cpu_percent(pgid: int, seconds: float = 3.0) -> float | None:
    """How much CPU the server uses with no request at all (should be about 0)."""
    before, started = _group_cpu_s(pgid), time.perf_counter()
    await asyncio.sleep(seconds)
    after = _group_cpu_s(pgid)
    if before is None or after is None:
        return None
    return round(100 * (after - before) / (time.perf_counter() - started), 1)


@contextlib.asynccontextmanager
async def server(env: Env, args: argparse.Namespace) -> AsyncIterator[Server]:
    ids = await prepare(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {
        **os.environ,
        **env.env_vars,
        "NEXUS_PORT": str(port),
        "NEXUS_BENCH_WORKERS": str(args.http_workers),
    }
    proc = _start_server(server_env, env.tmp / "server.log")
    try:
        await _wait_up(base, proc, 60)
        _status, spec = await asyncio.to_thread(http, "GET", f"{base}/openapi.json")
        routes = set((spec or {}).get("paths", {})) if isinstance(spec, dict) else set()
        await asyncio.sleep(1.0)  # let start-up work settle
        idle = await idle_cpu_percent(proc.pid)
        yield Server(base, routes, ids, env.tmp, idle)
    finally:
        _stop_server(proc)


def common(env: Env, args: argparse.Namespace, load: str) -> dict[str, Any]:
    return {
        "benchmark": "idaas_auth",
        "mode": env.mode,
        "backend": env.backend,
        "server": f"uvicorn, {args.http_workers} worker(s), JSON access log at INFO",
        "load": load,
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews figures
    }


async def wrk_static(
    srv: Server,
    args: argparse.Namespace,
    path: str,
    *,
    connections: int,
    method: str = "GET",
    body: str = "",
    content_type: str = "",
    auth: str = "",
    warmup: bool = True,
) -> dict[str, Any]:
    script = srv.tmp / "static.lua"
    script.write_text(WRK_STATIC)
    extra = {
        "BENCH_METHOD": method,
        "BENCH_BODY": body,
        "BENCH_CONTENT_TYPE": content_type,
        "BENCH_AUTH": auth,
    }
    threads = min(connections, 2)
    if warmup and args.warmup:
        await asyncio.to_thread(
            run_wrk, srv.base + path, script, args.warmup, connections, threads, extra
        )
    return await asyncio.to_thread(
        run_wrk, srv.base + path, script, args.seconds, connections, threads, extra
    )


def login(srv: Server) -> dict[str, Any]:
    status, body = post_json(
        f"{srv.base}/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD}
    )
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise RuntimeError(f"login failed: {status} {body}")
    return body


async def part_login(env: Env, srv: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    payload = json.dumps({"email": EMAIL, "password": PASSWORD})
    records = []
    # the cost of one hash here, without HTTP: what each login pays at least
    stored = hash_password(PASSWORD)
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        verify_password(PASSWORD, stored)
        samples.append((time.perf_counter() - started) * 1000)
    verify_ms = round(statistics.median(samples), 1)
    for connections in sorted({1, args.login_connections}):
        progress(f"{env.mode}: logins at concurrency {connections} for {args.seconds} s")
        result = await wrk_static(
            srv,
            args,
            "/api/v1/auth/login",
            connections=connections,
            method="POST",
            body=payload,
            content_type="application/json",
        )
        per_core = result["per_s"] / max(1, min(args.http_workers, os.cpu_count() or 1))
        records.append(
            {
                **common(env, args, f"wrk -c{connections} -d{args.seconds}s"),
                "figure": "password_logins",
                "route": "POST /api/v1/auth/login (200, tokens)",
                "argon2": argon2_description(),
                "argon2_verify_ms_in_process": verify_ms,
                **result,
                "per_s_per_core": round(per_core, 1),
                "anchor": ANCHORS["login"],
                "target_p95_ms": TARGETS["login_p95_ms"],
                "target_per_s_per_core": TARGETS["login_per_s_per_core"],
                "meets_target": (
                    result["p95_ms"] < TARGETS["login_p95_ms"]
                    if connections == 1
                    else per_core >= TARGETS["login_per_s_per_core"]
                )
                and result["errors"] == 0,
            }
        )
    return records


async def part_refresh(env: Env, srv: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    chains = args.refresh_connections
    progress(f"{env.mode}: {chains} logins to start the refresh chains")
    tokens = [login(srv)["refresh_token"] for _ in range(chains)]
    token_file = srv.tmp / "refresh_tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    script = srv.tmp / "refresh.lua"
    script.write_text(WRK_REFRESH)
    progress(f"{env.mode}: refresh-token grants, {chains} chains, {args.seconds} s")
    result = await asyncio.to_thread(
        run_wrk,
        f"{srv.base}/api/v1/auth/refresh",
        script,
        args.seconds,
        chains,
        chains,
        {"BENCH_TOKENS": str(token_file)},
    )
    return [
        {
            **common(env, args, f"wrk -t{chains} -c{chains} -d{args.seconds}s, one chain each"),
            "figure": "refresh_token_grants",
            "route": "POST /api/v1/auth/refresh (rotation: each answer's token is used next)",
            **result,
            "anchor": ANCHORS["refresh"],
            "target_per_s": TARGETS["refresh_per_s"],
            "meets_target": result["per_s"] >= TARGETS["refresh_per_s"] and result["errors"] == 0,
        }
    ]


async def part_crud(env: Env, srv: Server, args: argparse.Namespace) -> list[dict[str, Any]]:
    token = login(srv)["access_token"]
    path = f"/api/v1/users/{srv.ids['owner_id']}"
    status, _ = await asyncio.to_thread(
        http, "GET", srv.base + path, None, {"Authorization": f"Bearer {token}"}
    )
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    records = []
    for connections in sorted({8, args.connections}):
        # the same load on /health, in the same run: what the machine gives a no-op route
        health = await wrk_static(srv, args, "/health", connections=connections, warmup=False)
        progress(f"{env.mode}: GET /api/v1/users/{{id}} at concurrency {connections}")
        result = await wrk_static(srv, args, path, connections=connections, auth=f"Bearer {token}")
        records.append(
            {
                **common(env, args, f"wrk -t2 -c{connections} -d{args.seconds}s"),
                "figure": "authenticated_crud_get_user",
                "route": "GET /api/v1/users/{id} (bearer JWT, verified-token cache)",
                **result,
                "health_same_load": {k: health[k] for k in ("per_s", "p50_ms", "p95_ms", "p99_ms")},
                "ratio_to_health": round(result["per_s"] / health["per_s"], 3),
                "anchor": ANCHORS["crud"],
                "target_p95_ms": TARGETS["crud_p95_ms"],
                "meets_target": result["p95_ms"] < TARGETS["crud_p95_ms"] and result["errors"] == 0,
            }
        )
    return records


def oauth_available(srv: Server) -> dict[str, bool]:
    return {
        "client_credentials": "/oauth2/token" in srv.routes
        and "/api/v1/oauth-clients" in srv.routes,
        "introspect": "/oauth2/introspect" in srv.routes and "/api/v1/oauth-clients" in srv.routes,
    }


def make_client(srv: Server, owner_token: str) -> tuple[str, str]:
    status, body = post_json(
        f"{srv.base}/api/v1/oauth-clients",
        {
            "name": "bench-machine",
            "client_type": "confidential",
            "grant_types": ["client_credentials"],
            "scopes": ["idaas:user:read"],
        },
        owner_token,
    )
    if status != 201 or not isinstance(body, dict):
        raise RuntimeError(f"creating an OAuth client failed: {status} {body}")
    return body["client_id"], body["client_secret"]


async def part_oauth(
    env: Env, srv: Server, args: argparse.Namespace, parts: set[str]
) -> list[dict[str, Any]]:
    available = oauth_available(srv)
    records: list[dict[str, Any]] = []
    for part in ("client_credentials", "introspect"):
        if part in parts and not available[part]:
            records.append(
                {
                    **common(env, args, "-"),
                    "figure": f"{part}_per_s",
                    "available": False,
                    "note": "the server has no such endpoint (routes: /oauth2/token, "
                    "/oauth2/introspect, /api/v1/oauth-clients)",
                }
            )
    wanted = [p for p in ("client_credentials", "introspect") if p in parts and available[p]]
    if not wanted:
        return records
    client_id, secret = make_client(srv, login(srv)["access_token"])
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    form = "application/x-www-form-urlencoded"
    status, body = http(
        "POST",
        f"{srv.base}/oauth2/token",
        b"grant_type=client_credentials",
        {"Authorization": basic, "Content-Type": form},
    )
    if status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"client_credentials failed: {status} {body}")
    access = body["access_token"]
    if "client_credentials" in wanted:
        progress(f"{env.mode}: client-credentials grants at concurrency {args.connections}")
        result = await wrk_static(
            srv,
            args,
            "/oauth2/token",
            connections=args.connections,
            method="POST",
            body="grant_type=client_credentials",
            content_type=form,
            auth=basic,
        )
        records.append(
            {
                **common(env, args, f"wrk -t2 -c{args.connections} -d{args.seconds}s"),
                "figure": "client_credentials_grants",
                "route": "POST /oauth2/token grant_type=client_credentials (Basic auth, ES256)",
                "available": True,
                **result,
                "anchor": ANCHORS["client_credentials"],
                "target_per_s": TARGETS["client_credentials_per_s"],
                "meets_target": result["per_s"] >= TARGETS["client_credentials_per_s"]
                and result["errors"] == 0,
            }
        )
    if "introspect" in wanted:
        status, body = http(
            "POST",
            f"{srv.base}/oauth2/introspect",
            f"token={access}".encode(),
            {"Authorization": basic, "Content-Type": form},
        )
        if status != 200 or not isinstance(body, dict) or body.get("active") is not True:
            raise RuntimeError(f"introspection failed: {status} {body}")
        progress(f"{env.mode}: introspection at concurrency {args.connections}")
        result = await wrk_static(
            srv,
            args,
            "/oauth2/introspect",
            connections=args.connections,
            method="POST",
            body=f"token={access}",
            content_type=form,
            auth=basic,
        )
        records.append(
            {
                **common(env, args, f"wrk -t2 -c{args.connections} -d{args.seconds}s"),
                "figure": "introspections",
                "route": "POST /oauth2/introspect (active client-credentials token)",
                "available": True,
                **result,
                "anchor": ANCHORS["introspect"],
                "target_per_s": TARGETS["introspect_per_s"],
                "meets_target": result["per_s"] >= TARGETS["introspect_per_s"]
                and result["errors"] == 0,
            }
        )
    return records


# -- main ---------------------------------------------------------------------------------


async def run_mode(mode: str, args: argparse.Namespace, first: bool) -> None:
    http_parts = args.parts - {"verify"}
    if "verify" in args.parts and first:
        async with environment(mode) as env:
            progress("in-process token verification")
            for record in await part_verify(env, args):
                out(record)
    if not http_parts:
        return
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    async with environment(mode) as env, server(env, args) as srv:
        out(
            {
                **common(env, args, "none"),
                "figure": "server_idle_cpu",
                "idle_cpu_percent": srv.idle_cpu_percent,
                "note": "CPU used by the server process(es) over 3 s without any request",
            }
        )
        if "login" in http_parts:
            for record in await part_login(env, srv, args):
                out(record)
        if "refresh" in http_parts:
            for record in await part_refresh(env, srv, args):
                out(record)
        if "crud" in http_parts:
            for record in await part_crud(env, srv, args):
                out(record)
        for record in await part_oauth(env, srv, args, http_parts):
            out(record)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services", "all"], default="embedded")
    parser.add_argument("--parts", default=",".join(ALL_PARTS), help=",".join(ALL_PARTS))
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run (s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up (s), 0: none")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--login-connections", type=int, default=4)
    parser.add_argument("--refresh-connections", type=int, default=16)
    parser.add_argument("--http-workers", type=int, default=1, help="uvicorn workers")
    parser.add_argument("--verify-cached", type=int, default=100_000)
    parser.add_argument("--verify-fresh", type=int, default=5_000)
    args = parser.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.parts - set(ALL_PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if not 1 <= args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--seconds must be in 1..600 and --warmup in 0..60")
    if not 1 <= args.connections <= 1024 or not 1 <= args.refresh_connections <= 64:
        parser.error("--connections must be in 1..1024 and --refresh-connections in 1..64")
    if not 1 <= args.verify_cached <= 5_000_000 or not 1 <= args.verify_fresh <= 200_000:
        parser.error("--verify-cached must be in 1..5,000,000, --verify-fresh in 1..200,000")
    if not 1 <= args.http_workers <= 16 or not 1 <= args.login_connections <= 64:
        parser.error("--http-workers must be in 1..16 and --login-connections in 1..64")
    return args


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("WARNING", "json", stream=sys.stderr)
    modes = ["embedded", "services"] if args.mode == "all" else [args.mode]
    for index, mode in enumerate(modes):
        await run_mode(mode, args, first=index == 0)


if __name__ == "__main__":
    asyncio.run(main())
