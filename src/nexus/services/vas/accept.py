"""Group commit for the send endpoints: one transaction stores what many requests sent.

A transaction per message makes the commit (and, on SQLite, the single writer) the
bottleneck: at 32 concurrent requests each waited for the 31 commits before its own.
`Acceptor.accept` hands a request's messages to one writer task, which takes everything
waiting when it is free, checks idempotency keys and opt-outs with one query per org,
writes the messages, their first history steps and their dispatch jobs with one
statement per table, commits, and then answers every request. Nothing changes in what a
client sees: `202` still comes only after its messages are committed, and a request's
messages are stored together or not at all.

If a batch fails as a whole (an idempotency key that another process stored
meanwhile), each request in it is written again on its own, so one request's conflict
never fails another's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database, utcnow
from nexus.kernel.events import enqueue_many
from nexus.services.vas.accounts import Route
from nexus.services.vas.lifecycle import emit_status
from nexus.services.vas.messages import (
    DISPATCH_QUEUE,
    NewMessage,
    Prepared,
    new_message,
    opted_out,
)
from nexus.services.vas.models import Message, MessageEvent

MessageRow = dict[str, Any]


@dataclass
class Item:
    """One message of a request: prepared, its routes, its idempotency key."""

    prepared: Prepared
    routes: list[Route]
    key: str | None = None


@dataclass
class Accepted:
    """The stored row of an item; `replayed` when its key had been used before."""

    row: MessageRow
    replayed: bool = False


@dataclass
class _Request:
    org_id: str
    items: list[Item]
    done: asyncio.Future[list[Accepted]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Acceptor:
    """The single writer of accepted messages in this process (see the module doc)."""

    def __init__(self, db: Database, *, max_batch: int = 2000) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[_Request] = []
        self._writing: list[_Request] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for the benchmark and tests)

    async def accept(self, org_id: str, items: list[Item]) -> list[Accepted]:
        """Store `items` (one request's messages, all or none); answers after commit."""
        if not items:
            return []
        request = _Request(org_id, items)
        self._waiting.append(request)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="vas-acceptor")
        # the writer finishes a batch it has taken even if this request is cancelled
        return await asyncio.shield(request.done)

    async def close(self) -> None:
        """Write what was handed in, then stop the writer."""
        if self._task is None:
            return
        unanswered = [request.done for request in [*self._writing, *self._waiting]]
        if unanswered:
            await asyncio.wait(unanswered)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, count = [], 0
                while self._waiting and (not batch or count < self.max_batch):
                    request = self._waiting.pop(0)
                    batch.append(request)
                    count += len(request.items)
                self._writing = batch
                await self._write_batch(batch)
                self._writing = []

    async def _write_batch(self, batch: list[_Request]) -> None:
        try:
            results = await self._write(batch)
        except IntegrityError:
            if len(batch) > 1:  # find the request whose key was taken; the others go in
                for request in batch:
                    await self._write_batch([request])
                return
            try:  # the key's message is visible now, so this answers with the replay
                results = await self._write(batch)
            except Exception as exc:
                _fail(batch, exc)
                return
        except Exception as exc:
            _fail(batch, exc)
            return
        for request, result in zip(batch, results, strict=True):
            if not request.done.done():
                request.done.set_result(result)

    async def _write(self, batch: list[_Request]) -> list[list[Accepted]]:
        now = utcnow()
        async with self.db.transaction() as session:
            by_org: dict[str, list[_Request]] = defaultdict(list)
            for request in batch:
                by_org[request.org_id].append(request)
            known: dict[tuple[str, str], MessageRow] = {}
            blocked: set[tuple[str, str, str]] = set()
            for org_id, requests in by_org.items():
                items = [item for request in requests for item in request.items]
                for row in await _rows_by_key(session, org_id, {i.key for i in items if i.key}):
                    known[(org_id, row["idempotency_key"])] = row
                pairs = {(i.prepared.request.channel, i.prepared.to) for i in items}
                blocked |= {(org_id, *pair) for pair in await opted_out(session, org_id, pairs)}
            results: list[list[Accepted]] = []
            new: list[NewMessage] = []
            for request in batch:
                accepted = []
                for item in request.items:
                    replay = known.get((request.org_id, item.key)) if item.key else None
                    if replay is not None:
                        accepted.append(Accepted(replay, replayed=True))
                        continue
                    channel, to = item.prepared.request.channel, item.prepared.to
                    message = new_message(
                        request.org_id,
                        item.prepared,
                        routes=item.routes,
                        opted_out=(request.org_id, channel, to) in blocked,
                        idempotency_key=item.key,
                        now=now,
                    )
                    new.append(message)
                    if item.key:  # the same key twice in one batch: one message
                        known[(request.org_id, item.key)] = message.row
                    accepted.append(Accepted(message.row))
                results.append(accepted)
            await _insert(session, new)
        self.batches += 1
        return results


def _fail(batch: list[_Request], exc: Exception) -> None:
    for request in batch:
        if not request.done.done():
            request.done.set_exception(exc)


async def _rows_by_key(session: AsyncSession, org_id: str, keys: set[str]) -> list[MessageRow]:
    if not keys:
        return []
    rows = await session.scalars(
        select(Message).where(Message.org_id == org_id, Message.idempotency_key.in_(keys))
    )
    return [_row_of(m) for m in rows]


def _row_of(message: Message) -> MessageRow:
    return {c.key: getattr(message, c.key) for c in Message.__mapper__.column_attrs}


async def _insert(session: AsyncSession, new: list[NewMessage]) -> None:
    if not new:
        return
    await session.execute(insert(Message), [m.row for m in new])
    await session.execute(insert(MessageEvent), [step for m in new for step in m.history])
    await enqueue_many(session, DISPATCH_QUEUE, [m.job for m in new if m.job is not None])
    for message in new:
        if message.job is None:  # rejected: published like every final status
            emit_status(session, Message(**message.row))
