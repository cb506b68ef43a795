"""The service descriptor (DESIGN §1) and the registry of the services a process can run.

A service is a package that exposes one `Service`. Built-in services are listed in
`BUILTIN_SERVICES`; others come from the `nexus.services` entry point group or from
`NEXUS_PLUGINS=module:attribute,...`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from sqlalchemy import MetaData

from nexus.kernel.events import Event, Job

if TYPE_CHECKING:
    import typer
    from sqlalchemy.ext.asyncio import AsyncSession

    from nexus.kernel.runtime import Runtime

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
PERMISSION = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*$")

# name -> "module:attribute"; imported lazily so a process loads only what it runs.
BUILTIN_SERVICES: dict[str, str] = {
    "idaas": "nexus.services.idaas:service",
    "vas": "nexus.services.vas:service",
    "crm": "nexus.services.crm:service",
    "hub": "nexus.services.hub:service",
}


@dataclass
class HandlerContext:
    """What an event consumer or job handler gets besides its message."""

    runtime: Runtime
    service: Service
    session: AsyncSession | None = None


EventHandler = Callable[[Event, HandlerContext], Awaitable[None]]
JobFunction = Callable[[Job, HandlerContext], Awaitable[None]]
Worker = Callable[["Runtime"], Awaitable[None]]


@dataclass(frozen=True)
class Consumer:
    """A durable consumer group: each matching event reaches it once.

    `types` are event types, or prefixes ending in `.*` (one segment) or `.>` (the rest),
    as in NATS subjects. The handler runs in a transaction on the service's database,
    together with the inbox row that makes a redelivery a no-op.
    """

    name: str
    types: tuple[str, ...]
    handler: EventHandler
    max_deliver: int = 5

    def matches(self, event_type: str) -> bool:
        return any(_subject_match(pattern, event_type) for pattern in self.types)


@dataclass(frozen=True)
class JobHandler:
    """Handles the jobs of one queue (named `<service>.<name>`).

    With `transactional=True` the handler runs inside one transaction with the inbox row
    (effectively once). Handlers that call the outside world set it to False, get
    `ctx.session=None`, and manage their own short transactions.
    """

    queue: str
    handler: JobFunction
    concurrency: int = 4
    max_attempts: int = 8
    lease_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 300.0
    transactional: bool = True


@dataclass
class Service:
    name: str
    router: APIRouter | None = None  # mounted under /api/v1
    public_router: APIRouter | None = None  # mounted at the root (/.well-known, /oauth2, ...)
    metadata: MetaData | None = None
    migrations: str | None = None  # package holding `versions/` for Alembic
    consumers: list[Consumer] = field(default_factory=list)
    jobs: list[JobHandler] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    permissions: dict[str, str] = field(default_factory=dict)
    cli: typer.Typer | None = None  # mounted as `nexus <service> ...`
    commands: list[Callable[..., Any]] = field(default_factory=list)  # top-level `nexus <cmd>`
    on_startup: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not SERVICE_NAME.match(self.name):
            raise ValueError(f"service name {self.name!r} must match {SERVICE_NAME.pattern}")
        for perm in self.permissions:
            if not PERMISSION.match(perm) or not perm.startswith(f"{self.name}:"):
                raise ValueError(f"permission {perm!r} must be '{self.name}:<resource>:<action>'")
        for job in self.jobs:
            if not job.queue.startswith(f"{self.name}."):
                raise ValueError(f"queue {job.queue!r} must start with '{self.name}.'")
        names = [c.name for c in self.consumers]
        if len(names) != len(set(names)):
            raise ValueError(f"service {self.name}: consumer names must be unique")


def _subject_match(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or part not in {"*", have[i]}:
            return False
    return len(want) == len(have)


def _load(ref: str) -> Service:
    module_name, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module_name), attr or "service")
    if not isinstance(obj, Service):
        raise TypeError(f"{ref} is not a nexus Service")
    return obj


def available_services(plugins: Iterable[str] = ()) -> dict[str, str]:
    """Every service this installation knows: name -> import reference."""
    refs = dict(BUILTIN_SERVICES)
    for ep in entry_points(group="nexus.services"):
        refs.setdefault(ep.name, ep.value)
    for ref in plugins:
        refs[_load(ref).name] = ref
    return refs


def load_services(names: Iterable[str] = (), plugins: Iterable[str] = ()) -> list[Service]:
    """Load the named services (all known ones when `names` is empty)."""
    refs = available_services(plugins)
    wanted = list(names) or list(refs)
    unknown = [n for n in wanted if n not in refs]
    if unknown:
        known = ", ".join(sorted(refs)) or "none"
        raise LookupError(f"unknown service(s): {', '.join(unknown)} (known: {known})")
    return [_load(refs[n]) for n in wanted]
