"""Test fixtures: real databases and buses, in the mode NEXUS_TEST_BACKEND names.

- `embedded` (default): a SQLite file per test, the in-process bus.
- `services`: a fresh PostgreSQL database per test, NATS JetStream streams in a fresh
  namespace per test, Redis. With CI set, missing services fail the run; elsewhere the
  tests that need them are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

from nexus.kernel.config import Settings
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Service
from nexus.testing.tokens import TestIssuer

BACKEND = os.environ.get("NEXUS_TEST_BACKEND", "embedded")
SERVICES_MODE = BACKEND == "services"
PG_ADMIN = os.environ.get("NEXUS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_missing: list[str] = []


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if not SERVICES_MODE:
        return
    for name, url, port in (
        ("PostgreSQL", PG_ADMIN, 5432),
        ("NATS", NATS_URL, 4222),
        ("Redis", REDIS_URL, 6379),
    ):
        if not _reachable(url, port):
            _missing.append(f"{name} at {url}")
    if _missing and os.environ.get("CI"):
        pytest.exit(f"services mode needs {', '.join(_missing)}", returncode=3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _missing:
            item.add_marker(pytest.mark.skip(reason=f"not reachable: {', '.join(_missing)}"))
        elif "services_only" in item.keywords and not SERVICES_MODE:
            item.add_marker(pytest.mark.skip(reason="runs with NEXUS_TEST_BACKEND=services"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"nexus test backend: {BACKEND}"


async def _create_pg_database() -> str:
    import asyncpg

    name = f"nexus_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_url(database: str) -> str:
    parsed = urlparse(PG_ADMIN)
    return f"postgresql+asyncpg://{parsed.netloc}/{database}"


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings for one test, on a database and bus namespace of its own."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "env": "test",
        "secret_key": "test-secret-" + "x" * 32,
        "shutdown_timeout_s": 3.0,
        "jwt_issuer": "http://nexus.test",
    }
    database = None
    if SERVICES_MODE:
        database = await _create_pg_database()
        values.update(
            database_url=pg_url(database),
            bus_url=NATS_URL,
            redis_url=REDIS_URL,
            bus_namespace=f"t{uuid.uuid4().hex[:10]}",
        )
    settings = Settings(**values)  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    yield settings
    if SERVICES_MODE:
        from nexus.kernel.nats import NatsBackend

        backend = NatsBackend(NATS_URL, settings.bus_namespace)
        try:
            await backend.connect()
            await backend.delete_streams()
        finally:
            await backend.close()
        assert database is not None
        await _drop_pg_database(database)


RuntimeFactory = Callable[..., Awaitable[Runtime]]

SAMPLE_PLUGINS = "nexus.testing.sample_services:notes,nexus.testing.sample_services:tally"


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a `nexus` subprocess the same configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(
        NEXUS_DATA_DIR=str(settings.data_dir),
        NEXUS_DATABASE_URL=settings.default_database_url(),
        NEXUS_BUS_URL=settings.bus_url,
        NEXUS_BUS_NAMESPACE=settings.bus_namespace,
        NEXUS_SECRET_KEY=settings.secret(),
        NEXUS_PLUGINS=SAMPLE_PLUGINS,
        NEXUS_LOG_LEVEL="WARNING",
        NEXUS_JWT_ISSUER=settings.issuer(),
    )
    if settings.redis_url:
        env["NEXUS_REDIS_URL"] = settings.redis_url
    env.update(extra)
    return env


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer(issuer="http://nexus.test")


@pytest.fixture
async def make_runtime(settings: Settings, issuer: TestIssuer) -> AsyncIterator[RuntimeFactory]:
    """Start runtimes (migrated, with workers) that are stopped when the test ends."""
    started: list[Runtime] = []

    async def make(
        services: list[Service], *, workers: bool = True, settings_: Settings | None = None
    ) -> Runtime:
        runtime = Runtime(settings_ or settings, services)
        await upgrade(runtime)
        await runtime.start(workers=workers)
        issuer.install(runtime)
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        await runtime.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, interval_s: float = 0.05
) -> None:
    """Wait until `check()` is true (polling a real system, not sleeping blindly)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
