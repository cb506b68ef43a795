"""The `nexus` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import nexus
from nexus.kernel.config import Settings
from tests.conftest import settings_env

NEXUS = [sys.executable, "-m", "nexus.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NEXUS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_version(settings: Settings) -> None:
    result = run(["version"], settings_env(settings))
    assert result.returncode == 0
    assert result.stdout.strip() == nexus.__version__


def test_config_show_masks_secrets(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(
        settings,
        NEXUS_DATABASE_URL="postgresql+asyncpg://nexus:s3cret-pw@db.internal/nexus",
        NEXUS_SECRET_KEY="super-secret-key-value",
        NEXUS_VAS_DATABASE_URL="postgresql://v:pw2@h/v",
    )
    (tmp_path / "nexus.toml").write_text('port = 9100\nlog_level = "DEBUG"\n')
    result = run(["config", "show", "--json"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["database_url"] == "postgresql+asyncpg://nexus:********@db.internal/nexus"
    assert data["service_database_urls"]["vas"] == "postgresql://v:********@h/v"
    assert data["secret_key"] == "********"
    assert data["port"] == 9100  # from nexus.toml
    assert "s3cret-pw" not in result.stdout
    assert "super-secret-key-value" not in result.stdout


def test_unknown_service_is_a_clear_error(settings: Settings) -> None:
    result = run(["migrate", "--service", "nope"], settings_env(settings))
    assert result.returncode == 2
    assert "unknown service(s): nope" in result.stderr


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.secret()
    assert Settings(data_dir=tmp_path / "data").secret() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_serve_answers_and_stops_cleanly_on_ctrl_c(settings: Settings) -> None:
    port = free_port()
    env = settings_env(settings)
    env.pop("NEXUS_SECRET_KEY")
    proc = subprocess.Popen(
        [*NEXUS, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not healthy within 60 s"
            time.sleep(0.2)
        assert httpx.get(f"{base}/ready").status_code == 200
        assert "swagger" in httpx.get(f"{base}/docs").text.lower()
        assert "/api/v1/notes" in httpx.get(f"{base}/openapi.json").json()["paths"]
        metrics = httpx.get(f"{base}/metrics").text
        assert 'route="/ready"' in metrics
        assert (settings.data_dir / "secret_key").exists()
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
