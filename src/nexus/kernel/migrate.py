"""Alembic migrations per service, each with its own version table.

The kernel's tables (outbox, inbox, jobs) are migrated into every database a service
of this process uses; each service's tables into its own database. `nexus migrate`
runs this, and so does start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection

from nexus.kernel.db import Database
from nexus.kernel.models import KernelBase
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Service


def _versions_dir(package: str) -> Path:
    return Path(str(resources.files(package))) / "versions"


def alembic_config(package: str, metadata: MetaData, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("nexus.kernel") / "alembic"))
    cfg.set_main_option("version_locations", str(_versions_dir(package)))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["metadata"] = metadata
    cfg.attributes["version_table"] = version_table
    return cfg


def _targets(services: list[Service]) -> list[tuple[str, str, MetaData]]:
    out = [("kernel", "nexus.kernel.migrations", KernelBase.metadata)]
    for service in services:
        if service.migrations and service.metadata is not None:
            out.append((service.name, service.migrations, service.metadata))
    return out


# Processes that start together (an API and a worker) migrate one at a time: the
# second finds the first's tables instead of failing to create them again.
_MIGRATION_LOCK = 0x4E58_5553  # "NXUS"


@asynccontextmanager
async def _schema_change(db: Database) -> AsyncIterator[AsyncConnection]:
    """A transaction that changes the schema, one process at a time."""
    async with db.engine.begin() as conn:
        if not db.is_sqlite:  # SQLite: BEGIN IMMEDIATE already serializes writers
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        yield conn


async def _run(db: Database, cfg: Config, fn: Any, *args: Any) -> None:
    async with _schema_change(db) as conn:

        def go(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            fn(cfg, *args)

        await conn.run_sync(go)


async def upgrade(runtime: Runtime, revision: str = "heads") -> list[str]:
    """Apply pending migrations everywhere; returns what was migrated."""
    done: list[str] = []
    kernel_dbs = runtime.service_databases()
    for name, package, metadata in _targets(runtime.services):
        databases = kernel_dbs if name == "kernel" else [runtime.db(name)]
        for db in databases:
            cfg = alembic_config(package, metadata, f"alembic_version_{name}")
            await _run(db, cfg, command.upgrade, revision)
            done.append(f"{name} @ {_where(db)}")
    for service in runtime.services:
        if service.metadata is not None and not service.migrations:
            # A service without migrations (a prototype or a plugin): create what is missing.
            db = runtime.db(service.name)
            async with _schema_change(db) as conn:
                await conn.run_sync(service.metadata.create_all)
            done.append(f"{service.name} @ {_where(db)} (create_all)")
    return done


def _where(db: Database) -> str:
    return db.url.split("///")[-1].split("@")[-1]


async def revision(runtime: Runtime, service: str, message: str, autogenerate: bool) -> None:
    """Write a new migration for one service (developers)."""
    targets = {name: (pkg, md) for name, pkg, md in _targets(runtime.services)}
    if service not in targets:
        raise LookupError(f"{service} has no migrations package")
    package, metadata = targets[service]
    cfg = alembic_config(package, metadata, f"alembic_version_{service}")
    db = runtime.service_databases()[0] if service == "kernel" else runtime.db(service)
    await _run(db, cfg, lambda c: command.revision(c, message=message, autogenerate=autogenerate))
