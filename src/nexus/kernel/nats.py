"""NATS JetStream backend: the events stream, the jobs work-queue stream, dead letters.

Streams (names derive from `NEXUS_BUS_NAMESPACE`, default `nexus`):
- `NEXUS_EVENTS`, subjects `nexus.events.<event type>`: limits retention (7 days),
  2-minute duplicate window keyed by `Nats-Msg-Id` = event id. One durable pull
  consumer per consumer group.
- `NEXUS_JOBS`, subjects `nexus.jobs.<queue>`: work-queue retention, one durable pull
  consumer per queue; the consumer's ack wait is the job lease.
- `NEXUS_DLQ`, subjects `nexus.dlq.<consumer>`: what exhausted its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.models import OutboxRow
from nexus.kernel.queue import Delivery

_DURABLE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def durable_name(name: str) -> str:
    return _DURABLE_UNSAFE.sub("_", name)


class NatsBackend:
    """One connection to NATS and the streams of one namespace."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.ns = url, namespace
        self.upper = namespace.upper()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None

    @property
    def events_stream(self) -> str:
        return f"{self.upper}_EVENTS"

    @property
    def jobs_stream(self) -> str:
        return f"{self.upper}_JOBS"

    @property
    def dlq_stream(self) -> str:
        return f"{self.upper}_DLQ"

    def event_subject(self, event_type: str) -> str:
        return f"{self.ns}.events.{event_type}"

    def job_subject(self, queue: str) -> str:
        return f"{self.ns}.jobs.{queue}"

    async def connect(self) -> None:
        self.nc = await nats.connect(
            self.url,
            name="nexus",
            connect_timeout=5,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        self.js = self.nc.jetstream(timeout=10)
        await self._ensure_stream(
            StreamConfig(
                name=self.events_stream,
                subjects=[f"{self.ns}.events.>"],
                retention=RetentionPolicy.LIMITS,
                max_age=7 * 86400,
                storage=StorageType.FILE,
                duplicate_window=120,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=self.jobs_stream,
                subjects=[f"{self.ns}.jobs.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=120,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=self.dlq_stream,
                subjects=[f"{self.ns}.dlq.>"],
                retention=RetentionPolicy.LIMITS,
                max_age=30 * 86400,
                storage=StorageType.FILE,
            )
        )

    async def _ensure_stream(self, config: StreamConfig) -> None:
        assert self.js is not None
        try:
            await self.js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)

    async def ping(self) -> None:
        if self.nc is None or not self.nc.is_connected:
            raise ConnectionError("not connected to NATS")
        await self.nc.flush(timeout=2)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()
            self.nc = None

    async def delete_streams(self) -> None:
        """Remove this namespace's streams (tests and `nexus` maintenance only)."""
        assert self.js is not None
        for name in (self.events_stream, self.jobs_stream, self.dlq_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(name)

    async def publish_rows(self, rows: list[OutboxRow]) -> None:
        """Publish outbox rows (events and jobs), deduplicated by their ids."""
        assert self.js is not None

        async def one(row: OutboxRow) -> None:
            assert self.js is not None
            if row.kind == "event":
                subject = self.event_subject(row.type)
                body = envelope_of(row)
            else:
                subject = self.job_subject(row.type)
                run_at = row.run_at or utcnow()
                body = {
                    "id": row.id,
                    "queue": row.type,
                    "org_id": row.org_id,
                    "payload": row.data,
                    "run_at": run_at.isoformat(),
                    "delayed": run_at > utcnow(),
                }
            await self.js.publish(
                subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": row.id}
            )

        await asyncio.gather(*(one(row) for row in rows))

    async def source(
        self, *, kind: str, name: str, filter_subject: str, lease_s: float
    ) -> NatsSource:
        assert self.js is not None
        stream = self.events_stream if kind == "event" else self.jobs_stream
        durable = durable_name(name)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=lease_s,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=filter_subject,
            max_ack_pending=10_000,
        )
        sub = await self.js.pull_subscribe(
            filter_subject, durable=durable, stream=stream, config=config
        )
        return NatsSource(self, kind=kind, name=name, sub=sub)


def envelope_of(row: OutboxRow) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": row.id,
        "type": row.type,
        "source": row.source,
        "time": row.time.isoformat(),
        "org_id": row.org_id,
        "data": row.data,
    }


class NatsSource:
    """Deliveries from a durable pull consumer; the ack wait is the lease."""

    long_poll = True
    atomic_ack = False

    def __init__(self, backend: NatsBackend, *, kind: str, name: str, sub: Any) -> None:
        self.backend, self.kind, self.name, self.sub = backend, kind, name, sub

    async def claim(self, limit: int, lease_s: float, wait_s: float) -> list[Delivery]:
        try:
            msgs: list[Msg] = await self.sub.fetch(batch=limit, timeout=max(wait_s, 0.05))
        except (nats.errors.TimeoutError, TimeoutError):  # nothing to fetch within wait_s
            return []
        out: list[Delivery] = []
        for msg in msgs:
            body = json.loads(msg.data)
            attempt = msg.metadata.num_delivered
            if self.kind == "job":
                run_at = dt.datetime.fromisoformat(body["run_at"])
                wait = (run_at - utcnow()).total_seconds()
                if wait > 0.01:  # not due yet: come back when it is
                    await msg.nak(delay=wait)
                    continue
                if body.get("delayed"):  # the first delivery only waited for run_at
                    attempt = max(1, attempt - 1)
                out.append(
                    Delivery(
                        id=body["id"],
                        payload=body["payload"],
                        attempt=attempt,
                        org_id=body.get("org_id"),
                        handle=msg,
                    )
                )
            else:
                out.append(
                    Delivery(
                        id=body["id"],
                        payload=body,
                        attempt=attempt,
                        org_id=body.get("org_id"),
                        handle=msg,
                    )
                )
        return out

    async def ack_in(self, session: AsyncSession, delivery: Delivery) -> bool:
        return True

    async def ack_all_in(self, session: AsyncSession, deliveries: list[Delivery]) -> bool:
        return True  # acknowledged after commit; the inbox makes a redelivery a no-op

    async def ack(self, delivery: Delivery) -> None:
        await delivery.handle.ack()

    async def complete(self, delivery: Delivery) -> bool:
        await delivery.handle.ack()
        return True

    async def retry(self, delivery: Delivery, delay_s: float, error: str) -> None:
        await delivery.handle.nak(delay=delay_s)

    async def dead(self, delivery: Delivery, error: str) -> None:
        msg: Msg = delivery.handle
        assert self.backend.js is not None
        await self.backend.js.publish(
            f"{self.backend.ns}.dlq.{durable_name(self.name)}",
            msg.data,
            headers={"Nexus-Error": error[:1000], "Nexus-Subject": msg.subject},
        )
        await msg.term()

    async def release(self, delivery: Delivery) -> None:
        await delivery.handle.nak()

    async def extend(self, delivery: Delivery, lease_s: float) -> None:
        await delivery.handle.in_progress()
