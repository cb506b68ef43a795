"""The runtime of one Nexus process: its services, databases, bus, relays and runners.

`Runtime.start()` connects what the configuration names, starts an outbox relay per
database, and (unless `workers=False`) the runners for the services' job queues and
event consumers and the services' own background workers. `stop()` stops taking new
work, lets in-flight work finish for `shutdown_timeout_s`, and releases the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel import metrics
from nexus.kernel.auth import Authenticator, RemoteApiKeys, RemoteJWKS, TokenVerifier
from nexus.kernel.config import Settings
from nexus.kernel.db import Database, Databases, insert_ignore, utcnow
from nexus.kernel.events import Event, Job, job_id_for, service_of
from nexus.kernel.models import InboxRow, JobRow, OutboxRow
from nexus.kernel.nats import NatsBackend, envelope_of
from nexus.kernel.queue import Delivery, Runner, RunnerSpec, Source
from nexus.kernel.queue_sql import SqlJobSource
from nexus.kernel.relay import Relay
from nexus.kernel.service import Consumer, HandlerContext, JobHandler, Service

log = structlog.get_logger("nexus.runtime")


def consumer_queue(service: Service, consumer: Consumer) -> str:
    """The SQL queue that carries a consumer group's events on the in-process bus."""
    return f"{service.name}.event.{consumer.name}"


def consumer_key(service: Service, consumer: Consumer) -> str:
    return f"{service.name}.{consumer.name}"


@dataclass
class _Target:
    service: Service
    consumer: Consumer


class MemorySink:
    """The in-process bus: an event becomes one job per consumer group in the SQL queue.

    The job ids derive from (group, event id), so republishing after a crash is a no-op,
    and each group gets the queue's lease, retry, backoff and dead-letter behaviour.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._touched: set[str] = set()

    async def publish(self, session: AsyncSession, db: Database, rows: list[OutboxRow]) -> None:
        by_db: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if row.kind == "event":
                for target in self.runtime.consumers_of(row.type):
                    queue = consumer_queue(target.service, target.consumer)
                    by_db[self.runtime.database_url(target.service.name)].append(
                        {
                            "id": job_id_for(consumer_key(target.service, target.consumer), row.id),
                            "queue": queue,
                            "org_id": row.org_id,
                            "payload": envelope_of(row),
                            "run_at": row.time,
                        }
                    )
            else:
                by_db[self.runtime.database_url(service_of(row.type))].append(
                    {
                        "id": row.id,
                        "queue": row.type,
                        "org_id": row.org_id,
                        "payload": row.data,
                        "run_at": row.run_at or row.time,
                    }
                )
        for url, jobs in by_db.items():
            self._touched.update(job["queue"] for job in jobs)
            if url == db.url:
                await insert_ignore(session, JobRow, jobs)
            else:  # another database: its own transaction, deduplicated by job id
                async with self.runtime.databases.get(url).transaction() as other:
                    await insert_ignore(other, JobRow, jobs)

    def after_commit(self) -> None:
        touched, self._touched = self._touched, set()
        self.runtime.wake_queues(touched)


class NatsSink:
    def __init__(self, backend: NatsBackend) -> None:
        self.backend = backend

    async def publish(self, session: AsyncSession, db: Database, rows: list[OutboxRow]) -> None:
        await self.backend.publish_rows(rows)

    def after_commit(self) -> None:
        return None


class Runtime:
    def __init__(self, settings: Settings, services: list[Service]) -> None:
        self.settings = settings
        self.services = services
        self.by_name = {s.name: s for s in services}
        self.databases = Databases(pool_size=settings.db_pool_size)
        self.nats: NatsBackend | None = None
        if settings.bus_url.startswith("nats"):
            self.nats = NatsBackend(settings.bus_url, settings.bus_namespace)
        self.redis: Any = None
        # Tokens and API keys are checked locally when IDaaS runs in this process (it
        # installs its key store at start-up); otherwise against the IDaaS named by
        # NEXUS_IDAAS_URL (or an explicit NEXUS_JWKS_URL).
        idaas_url = settings.service_urls.get("idaas")
        jwks_url = settings.jwks_url or (
            f"{idaas_url.rstrip('/')}/.well-known/jwks.json" if idaas_url else None
        )
        verifier = None
        if jwks_url:
            verifier = TokenVerifier(
                RemoteJWKS(jwks_url), issuer=settings.issuer(), audience=settings.jwt_audience
            )
        self.authenticator = Authenticator(verifier)
        if idaas_url and "idaas" not in self.by_name:
            self.authenticator.add_strategy(RemoteApiKeys(idaas_url))
        self.relays: list[Relay] = []
        self.runners: dict[str, Runner] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._runner_loops: dict[str, asyncio.Task[None]] = {}
        self._urls: dict[str, str] = {}
        self._consumers_of: dict[str, list[_Target]] = {}
        self.started = False
        self.state: dict[str, Any] = {}  # per-process objects services keep (key caches, ...)

    # -- lookups ------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return "nats" if self.nats else "memory"

    def database_url(self, service: str) -> str:
        url = self._urls.get(service)
        if url is None:
            url = self._urls[service] = self.settings.database_url_for(service)
        return url

    def db(self, service: str) -> Database:
        return self.databases.get(self.database_url(service))

    def service_databases(self) -> list[Database]:
        urls = {self.database_url(s.name) for s in self.services}
        urls.add(self.settings.default_database_url())
        return [self.databases.get(url) for url in sorted(urls)]

    def consumers_of(self, event_type: str) -> list[_Target]:
        targets = self._consumers_of.get(event_type)
        if targets is None:
            targets = self._consumers_of[event_type] = self._find_consumers(event_type)
        return targets

    def _find_consumers(self, event_type: str) -> list[_Target]:
        return [
            _Target(service, consumer)
            for service in self.services
            for consumer in service.consumers
            if consumer.matches(event_type)
        ]

    def wake_queues(self, queues: set[str]) -> None:
        for queue in queues:
            runner = self.runners.get(queue)
            if runner is not None:
                runner.wake()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, workers: bool = True) -> None:
        if self.started:
            return
        if self.settings.redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(self.settings.redis_url)
        sink: MemorySink | NatsSink
        if self.nats is not None:
            await self.nats.connect()
            sink = NatsSink(self.nats)
        else:
            sink = MemorySink(self)
        for db in self.service_databases():
            relay = Relay(db, sink)
            db.direct_jobs = self.nats is None
            # only transactions that wrote to the outbox wake the relay (its own drains
            # commit too, and must not wake it again)
            db.on_commit(lambda info, relay=relay: relay.wake() if info.get("outbox") else None)
            db.on_commit(lambda info: self.wake_queues(info.get("touched_queues", set())))
            self.relays.append(relay)
            self._tasks.append(asyncio.create_task(relay.run(), name=f"relay:{db.url}"))
        for service in self.services:
            for hook in service.on_startup:
                await hook(self)
        if workers:
            await self._start_workers()
        self.started = True
        log.info(
            "runtime started",
            services=[s.name for s in self.services],
            bus=self.backend,
            workers=workers,
        )

    async def _start_workers(self) -> None:
        for service in self.services:
            db = self.db(service.name)
            for job in service.jobs:
                source = await self._source("job", job.queue, job.queue, db, job.lease_s)
                self._add_runner(job.queue, _job_runner(self, service, job, source, db))
            for consumer in service.consumers:
                key = consumer_key(service, consumer)
                queue = consumer_queue(service, consumer)
                source = await self._source("event", key, queue, db, 30.0, consumer)
                self._add_runner(queue, _event_runner(self, service, consumer, source, db))
            for worker in service.workers:
                self._worker_tasks.append(asyncio.create_task(worker(self)))
        self._worker_tasks.append(asyncio.create_task(metrics.watch_queues(self)))
        if self.nats is not None:
            self._worker_tasks.append(asyncio.create_task(self._prune_inbox()))

    async def _source(
        self,
        kind: str,
        name: str,
        queue: str,
        db: Database,
        lease_s: float,
        consumer: Consumer | None = None,
    ) -> Source:
        if self.nats is None:
            return SqlJobSource(db, queue)
        if kind == "job":
            subject = self.nats.job_subject(queue)
        elif consumer is not None and len(consumer.types) == 1:
            subject = self.nats.event_subject(consumer.types[0])
        else:
            subject = self.nats.event_subject(">")
        return await self.nats.source(kind=kind, name=name, filter_subject=subject, lease_s=lease_s)

    def _add_runner(self, queue: str, runner: Runner) -> None:
        self.runners[queue] = runner
        task = asyncio.create_task(runner.run(), name=f"runner:{queue}")
        self._runner_loops[queue] = task
        self._tasks.append(task)

    async def stop(self) -> None:
        if not self.started:
            await self.databases.dispose()
            return
        timeout = self.settings.shutdown_timeout_s
        for runner in self.runners.values():
            runner.stop()
        for task in self._worker_tasks:
            task.cancel()
        await asyncio.gather(
            *(
                runner.drain(timeout, self._runner_loops.get(q))
                for q, runner in self.runners.items()
            ),
            return_exceptions=True,
        )
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)
        for relay in self.relays:
            relay.stop()
        _done, pending = (
            await asyncio.wait(self._tasks, timeout=timeout) if self._tasks else ((), ())
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for service in self.services:
            for hook in service.on_shutdown:
                with contextlib.suppress(Exception):
                    await hook(self)
        if self.nats is not None:
            with contextlib.suppress(Exception):
                await self.nats.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        await self.databases.dispose()
        self.started = False
        log.info("runtime stopped")

    async def _prune_inbox(self, keep_days: float = 7, every_s: float = 3600) -> None:
        """Forget handled ids older than any redelivery could be (JetStream backend)."""
        while True:
            cutoff = utcnow() - dt.timedelta(days=keep_days)
            for db in self.service_databases():
                try:
                    async with db.transaction() as session:
                        await session.execute(delete(InboxRow).where(InboxRow.handled_at < cutoff))
                except Exception as exc:
                    log.warning("inbox prune failed", error=str(exc))
            await asyncio.sleep(every_s)

    async def check_ready(self) -> dict[str, str]:
        """Each dependency and whether it answers: {"database:vas": "ok", ...}."""
        checks: dict[str, str] = {}

        async def probe(name: str, coro: Any) -> None:
            try:
                await asyncio.wait_for(coro, timeout=2)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"error: {type(exc).__name__}"

        probes = [
            probe(f"database:{i}", db.ping()) for i, db in enumerate(self.service_databases())
        ]
        if self.nats is not None:
            probes.append(probe("bus", self.nats.ping()))
        if self.redis is not None:
            probes.append(probe("redis", self.redis.ping()))
        await asyncio.gather(*probes)
        return checks


def _spec(name: str, job: JobHandler | None = None, consumer: Consumer | None = None) -> RunnerSpec:
    if job is not None:
        return RunnerSpec(
            name=name,
            concurrency=job.concurrency,
            max_attempts=job.max_attempts,
            lease_s=job.lease_s,
            backoff_base_s=job.backoff_base_s,
            backoff_max_s=job.backoff_max_s,
        )
    assert consumer is not None
    return RunnerSpec(name=name, concurrency=2, max_attempts=consumer.max_deliver)


def _job_runner(
    runtime: Runtime, service: Service, job: JobHandler, source: Source, db: Database
) -> Runner:
    def to_job(d: Delivery) -> Job:
        return Job(id=d.id, queue=job.queue, payload=d.payload, org_id=d.org_id, attempt=d.attempt)

    if job.transactional:

        async def tx_handler(d: Delivery, session: AsyncSession) -> None:
            await job.handler(to_job(d), HandlerContext(runtime, service, session))

        return Runner(
            _spec(job.queue, job=job),
            source,
            db=db,
            tx_handler=tx_handler,
            on_outcome=metrics.job_outcome,
        )

    async def handler(d: Delivery) -> None:
        await job.handler(to_job(d), HandlerContext(runtime, service, None))

    return Runner(
        _spec(job.queue, job=job), source, db=db, handler=handler, on_outcome=metrics.job_outcome
    )


def _event_runner(
    runtime: Runtime, service: Service, consumer: Consumer, source: Source, db: Database
) -> Runner:
    async def tx_handler(d: Delivery, session: AsyncSession) -> None:
        event = Event.model_validate(d.payload)
        if consumer.matches(event.type):
            await consumer.handler(event, HandlerContext(runtime, service, session))

    spec = _spec(consumer_key(service, consumer), consumer=consumer)
    return Runner(spec, source, db=db, tx_handler=tx_handler, on_outcome=metrics.job_outcome)
