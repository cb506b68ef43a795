"""Two processes split by --service, against PostgreSQL + NATS: an event emitted in one
is consumed in the other. Each verifies tokens locally against a JWKS URL."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from nexus.kernel.config import Settings
from nexus.testing.tokens import TestIssuer
from tests.conftest import settings_env
from tests.kernel.test_cli import NEXUS, free_port

pytestmark = [pytest.mark.services_only, pytest.mark.slow]


@pytest.fixture
def jwks_url(issuer: TestIssuer) -> Iterator[str]:
    body = json.dumps(issuer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


def _wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} not ready within 60 s")


def test_event_emitted_in_one_process_is_consumed_in_the_other(
    settings: Settings, issuer: TestIssuer, jwks_url: str
) -> None:
    env = settings_env(settings, NEXUS_JWKS_URL=jwks_url, NEXUS_JWT_ISSUER=issuer.issuer)
    procs: list[subprocess.Popen[str]] = []
    bases = {}
    try:
        for service in ("notes", "tally"):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [*NEXUS, "serve", "--service", service, "--port", str(port)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            bases[service] = f"http://127.0.0.1:{port}"
        for proc, base in zip(procs, bases.values(), strict=True):
            _wait_healthy(base, proc)
        headers = issuer.headers(org_id="org-2p")
        # notes is not served by the tally process, and vice versa
        assert httpx.get(f"{bases['tally']}/api/v1/notes/ping", headers=headers).status_code == 404
        for i in range(5):
            created = httpx.post(
                f"{bases['notes']}/api/v1/notes", json={"text": f"n{i}"}, headers=headers
            )
            assert created.status_code == 201, created.text
        deadline = time.monotonic() + 30
        while True:
            counts = httpx.get(f"{bases['tally']}/api/v1/tally", headers=headers).json()
            if counts == {"audit": 5, "stats": 5}:
                break
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
