"""What the benchmark programs share: free ports, wrk runs, and cleaning up the
temporary PostgreSQL database and NATS streams of a services-mode run."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# Appended to every wrk script: wrk prints its figures as one JSON line.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(
    url: str,
    script: Path,
    *,
    threads: int,
    connections: int,
    seconds: float,
    env: dict[str, str],
    timeout_s: float = 5.0,
) -> dict[str, Any]:
    """Run wrk with `script` (which must end with WRK_DONE); its figures in ms."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        f"{timeout_s:g}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    match = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout} {done.stderr}")
    raw = json.loads(match.group(1))
    run_s = raw["duration_us"] / 1e6
    return {
        "req_per_s": round(raw["requests"] / run_s, 1),
        "seconds": round(run_s, 2),
        "requests": raw["requests"],
        "errors": sum(
            raw[k]
            for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        ),
        "non_2xx": raw["status_errors"],
        "timeouts": raw["timeouts"],
        **{f"{p}_ms": round(raw[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p95", "p99", "max")},
    }


async def drop_services(
    *, namespace: str | None, database: str | None, nats_url: str, pg_admin: str
) -> None:
    """Delete a run's NATS streams and drop its PostgreSQL database (best effort)."""
    import asyncpg

    from nexus.kernel.nats import NatsBackend

    if namespace:
        backend = NatsBackend(nats_url, namespace)
        try:
            await backend.connect()
            await backend.delete_streams()
        except Exception as exc:
            print(f"could not delete the streams of {namespace}: {exc}", file=sys.stderr)
        finally:
            with contextlib.suppress(Exception):
                await backend.close()
    if database:
        try:
            conn = await asyncpg.connect(pg_admin)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await conn.close()
        except Exception as exc:
            print(f"could not drop {database}: {exc}", file=sys.stderr)
