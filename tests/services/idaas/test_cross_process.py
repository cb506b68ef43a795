"""Another process verifies IDaaS tokens locally (cached JWKS) and checks API keys with
IDaaS: services split across processes authenticate callers the same way."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from nexus.kernel.config import Settings
from tests.conftest import settings_env
from tests.kernel.test_cli import NEXUS, free_port
from tests.kernel.test_two_processes import _wait_healthy

pytestmark = pytest.mark.slow


def test_tokens_and_api_keys_work_in_a_process_without_idaas(settings: Settings) -> None:
    idaas_port, notes_port = free_port(), free_port()
    idaas_url = f"http://127.0.0.1:{idaas_port}"
    env = settings_env(settings, NEXUS_IDAAS_URL=idaas_url)
    env.pop("NEXUS_JWT_ISSUER")
    init = subprocess.run(
        [
            *NEXUS,
            "init",
            "--org-name",
            "Split",
            "--email",
            "owner@split.example.com",
            "--password",
            "correct-horse-battery-staple",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr + init.stdout
    procs = []
    try:
        for service, port in (("idaas", idaas_port), ("notes", notes_port)):
            procs.append(
                subprocess.Popen(
                    [*NEXUS, "serve", "--service", service, "--port", str(port)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        _wait_healthy(idaas_url, procs[0])
        _wait_healthy(f"http://127.0.0.1:{notes_port}", procs[1])
        login = httpx.post(
            f"{idaas_url}/api/v1/auth/login",
            json={"email": "owner@split.example.com", "password": "correct-horse-battery-staple"},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        notes = f"http://127.0.0.1:{notes_port}/api/v1/notes"
        created = httpx.post(
            notes, json={"text": "hi"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
        key = httpx.post(
            f"{idaas_url}/api/v1/api-keys",
            json={"name": "ci", "permissions": ["notes:note:read"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert key.status_code == 201, key.text
        ping = httpx.get(f"{notes}/ping", headers={"X-API-Key": key.json()["key"]})
        assert ping.status_code == 200, ping.text
        denied = httpx.post(notes, json={"text": "no"}, headers={"X-API-Key": key.json()["key"]})
        assert denied.status_code == 403
        forged = httpx.get(f"{notes}/ping", headers={"X-API-Key": "nxk_0000_nope"})
        assert forged.status_code == 401
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
