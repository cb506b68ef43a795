"""Events (CloudEvents-shaped envelopes) and jobs, written through the transactional outbox.

Service code calls `emit(session, type, data, org_id=...)` or `enqueue(session, queue,
payload)` inside its unit of work. Nothing leaves the process unless that transaction
commits; the relay then publishes the rows to the bus or the work queue.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import insert_ignore, utcnow
from nexus.kernel.ids import new_id
from nexus.kernel.models import JobRow, OutboxRow

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){3}$")
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$")
_NS = uuid.UUID("5b0f0c7e-6d3e-4e0a-9f55-2d7c1c3e9a10")


class Event(BaseModel):
    """`nexus.<service>.<entity>.<verb>` with its org and data (DESIGN §4)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id)
    type: str
    source: str
    time: dt.datetime = Field(default_factory=utcnow)
    org_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    specversion: str = "1.0"


class Job(BaseModel):
    """A unit of work for a queue's handler."""

    id: str
    queue: str
    payload: dict[str, Any]
    org_id: str | None = None
    attempt: int = 1


def service_of(name: str) -> str:
    """`nexus.vas.message.sent` → `vas`; `vas.dispatch` → `vas`."""
    parts = name.split(".")
    return parts[1] if parts[0] == "nexus" and len(parts) > 1 else parts[0]


def emit(
    session: AsyncSession,
    type: str,
    data: dict[str, Any],
    *,
    org_id: str | None,
    event_id: str | None = None,
) -> Event:
    """Write an event to the outbox in the caller's transaction."""
    if not EVENT_TYPE.match(type):
        raise ValueError(f"event type {type!r} is not nexus.<service>.<entity>.<verb>")
    event = Event(
        id=event_id or new_id(), type=type, source=service_of(type), org_id=org_id, data=data
    )
    session.info["outbox"] = True  # wakes the relay after commit
    session.add(
        OutboxRow(
            kind="event",
            id=event.id,
            type=event.type,
            source=event.source,
            org_id=org_id,
            time=event.time,
            data=event.model_dump(mode="json")["data"],
        )
    )
    return event


def job_id_for(*parts: str) -> str:
    """A deterministic job id, so the same logical job is enqueued once."""
    return str(uuid.uuid5(_NS, "\x1f".join(parts)))


@dataclass(frozen=True)
class NewJob:
    """One job for `enqueue_many`."""

    payload: dict[str, Any]
    job_id: str | None = None
    org_id: str | None = None
    run_at: dt.datetime | None = None


async def enqueue(
    session: AsyncSession,
    queue: str,
    payload: dict[str, Any],
    *,
    org_id: str | None = None,
    delay_s: float = 0,
    run_at: dt.datetime | None = None,
    job_id: str | None = None,
) -> str:
    """Enqueue a job in the caller's transaction; returns its id.

    A job whose id is already waiting (a deterministic `job_id`, see `job_id_for`) is
    not enqueued twice. Where the SQL work queue lives in this session's database the
    job row is written directly; otherwise it goes through the outbox and the relay
    forwards it.
    """
    when = run_at or (utcnow() + dt.timedelta(seconds=delay_s) if delay_s else None)
    job = NewJob(payload, job_id=job_id or new_id(), org_id=org_id, run_at=when)
    await enqueue_many(session, queue, [job])
    return job.job_id  # type: ignore[return-value]


async def enqueue_many(session: AsyncSession, queue: str, jobs: list[NewJob]) -> list[str]:
    """Enqueue jobs of one queue with one statement (see `enqueue`); returns their ids."""
    if not QUEUE_NAME.match(queue):
        raise ValueError(f"queue name {queue!r} is not <service>.<name>")
    if not jobs:
        return []
    now = utcnow()
    ids = [job.job_id or new_id() for job in jobs]
    if session.sync_session.info.get("direct_jobs"):
        rows: list[dict[str, Any]] = [
            {
                "id": job_id,
                "queue": queue,
                "org_id": job.org_id,
                "payload": job.payload,
                "run_at": job.run_at or now,
                "status": "ready",
                "attempts": 0,
                "created_at": now,
            }
            for job_id, job in zip(ids, jobs, strict=True)
        ]
        await insert_ignore(session, JobRow, rows)
        session.info.setdefault("touched_queues", set()).add(queue)
    else:
        session.info["outbox"] = True
        source = service_of(queue)
        rows = [
            {
                "kind": "job",
                "id": job_id,
                "type": queue,
                "source": source,
                "org_id": job.org_id,
                "data": job.payload,
                "run_at": job.run_at or now,
                "time": now,
            }
            for job_id, job in zip(ids, jobs, strict=True)
        ]
        await insert_ignore(session, OutboxRow, rows)
    return ids
