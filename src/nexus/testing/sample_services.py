"""Two tiny services that exercise the kernel end to end (tests, benchmarks, examples).

- `notes` writes notes and emits `nexus.notes.note.created`; it also has a job queue
  `notes.work` whose handler can be told to sleep (to test leases and kills).
- `tally` consumes `nexus.notes.note.created` and counts what it saw.

Load them with
`NEXUS_PLUGINS=nexus.testing.sample_services:notes,nexus.testing.sample_services:tally`.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import IdMixin, OrgScoped, TimestampMixin
from nexus.kernel.errors import NotFound
from nexus.kernel.events import Event, Job, emit, enqueue
from nexus.kernel.service import Consumer, HandlerContext, JobHandler, Service

# -- notes ---------------------------------------------------------------------------------


class NotesBase(DeclarativeBase):
    pass


class Note(NotesBase, IdMixin, OrgScoped, TimestampMixin):
    __tablename__ = "notes_notes"
    text: Mapped[str] = mapped_column(String(500))


class JobRun(NotesBase, IdMixin):
    """A completed `notes.work` job."""

    __tablename__ = "notes_job_runs"
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    pid: Mapped[str] = mapped_column(String(16))


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=500, examples=["Call Ada back"])


class NoteOut(BaseModel):
    id: str
    text: str
    org_id: str


notes_router = APIRouter(prefix="/notes", tags=["notes (sample)"])


@notes_router.post("", status_code=201, response_model=NoteOut)
async def create_note(
    body: NoteIn, request: Request, principal: Principal = require("notes:note:create")
) -> NoteOut:
    db = request.app.state.runtime.db("notes")
    async with db.transaction(org_id=principal.org_id) as session:
        note = Note(text=body.text)
        session.add(note)
        await session.flush()
        emit(session, "nexus.notes.note.created", {"note_id": note.id}, org_id=principal.org_id)
    return NoteOut(id=note.id, text=note.text, org_id=note.org_id)


@notes_router.get("/ping")
async def ping(principal: Principal = require("notes:note:read")) -> dict[str, str]:
    """A trivial authenticated route (benchmarks)."""
    return {"org_id": principal.org_id}


@notes_router.get("/{note_id}", response_model=NoteOut)
async def get_note(
    note_id: str, request: Request, principal: Principal = require("notes:note:read")
) -> NoteOut:
    db = request.app.state.runtime.db("notes")
    async with db.read(org_id=principal.org_id) as session:
        note = await session.get(Note, note_id)
        if note is None or note.org_id != principal.org_id:
            raise NotFound(f"No note {note_id}.")
        return NoteOut(id=note.id, text=note.text, org_id=note.org_id)


class WorkIn(BaseModel):
    sleep_s: float = Field(0, ge=0, le=600)
    marker: str | None = None
    fail_times: int = Field(0, ge=0)


@notes_router.post("/work", status_code=202)
async def enqueue_work(
    body: WorkIn, request: Request, principal: Principal = require("notes:note:create")
) -> dict[str, str]:
    db = request.app.state.runtime.db("notes")
    async with db.transaction() as session:
        job_id = await enqueue(session, "notes.work", body.model_dump(), org_id=principal.org_id)
    return {"job_id": job_id}


async def do_work(job: Job, ctx: HandlerContext) -> None:
    """Maybe note the start in a marker file and sleep, maybe fail; then record completion.

    It runs inside the job's transaction, so the completion row commits together with the
    job's acknowledgement, or not at all.
    """
    assert ctx.session is not None
    if job.payload.get("marker"):
        with open(job.payload["marker"], "a") as marker:  # noqa: ASYNC230 - tiny test write
            marker.write(f"{os.getpid()}\n")
    if job.payload.get("sleep_s") and job.attempt <= int(job.payload.get("sleep_attempts", 99)):
        await asyncio.sleep(float(job.payload["sleep_s"]))
    if job.attempt <= int(job.payload.get("fail_times", 0)):
        raise RuntimeError(f"failing on purpose (attempt {job.attempt})")
    ctx.session.add(JobRun(job_id=job.id, phase="completed", pid=str(os.getpid())))


notes = Service(
    name="notes",
    router=notes_router,
    metadata=NotesBase.metadata,
    jobs=[JobHandler("notes.work", do_work, lease_s=2.0, backoff_base_s=0.05, max_attempts=4)],
    permissions={
        "notes:note:create": "Create notes (sample service).",
        "notes:note:read": "Read notes (sample service).",
    },
)

# -- tally ---------------------------------------------------------------------------------


class TallyBase(DeclarativeBase):
    pass


class Seen(TallyBase, IdMixin):
    __tablename__ = "tally_seen"
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    consumer: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[str | None] = mapped_column(String(36))


def _recorder(consumer: str):  # type: ignore[no-untyped-def]
    async def handle(event: Event, ctx: HandlerContext) -> None:
        assert ctx.session is not None
        ctx.session.add(Seen(event_id=event.id, consumer=consumer, org_id=event.org_id))

    return handle


tally_router = APIRouter(prefix="/tally", tags=["tally (sample)"])


@tally_router.get("")
async def counts(
    request: Request, principal: Principal = require("tally:count:read")
) -> dict[str, int]:
    db = request.app.state.runtime.db("tally")
    async with db.read() as session:
        rows = await session.execute(
            select(Seen.consumer, func.count())
            .where(Seen.org_id == principal.org_id)
            .group_by(Seen.consumer)
        )
        return dict(rows.all())  # type: ignore[arg-type]


tally = Service(
    name="tally",
    router=tally_router,
    metadata=TallyBase.metadata,
    consumers=[
        Consumer("audit", ("nexus.notes.note.created",), _recorder("audit")),
        Consumer("stats", ("nexus.notes.>",), _recorder("stats")),
    ],
    permissions={"tally:count:read": "Read the tallies (sample service)."},
)
