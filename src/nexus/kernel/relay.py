"""The outbox relay: moves committed outbox rows to the bus or the work queue.

One relay runs per database. It is woken right after a commit that wrote outbox rows,
and a periodic sweep (with backoff while the bus is away) picks up whatever a crash
left behind. Publishing and deleting happen in one transaction, so a crash in between
republishes; consumers and the queue drop the duplicate by id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database
from nexus.kernel.metrics import OUTBOX_PUBLISHED
from nexus.kernel.models import OutboxRow

log = structlog.get_logger("nexus.relay")


class Sink(Protocol):
    async def publish(self, session: AsyncSession, db: Database, rows: list[OutboxRow]) -> None:
        """Publish rows; may write to `session` (the outbox's transaction)."""

    def after_commit(self) -> None:
        """Called after the rows were deleted from the outbox."""


class Relay:
    def __init__(self, db: Database, sink: Sink, *, batch: int = 500, sweep_s: float = 2.0):
        self.db, self.sink, self.batch, self.sweep_s = db, sink, batch, sweep_s
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0
        self.drains = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain_once(self) -> int:
        """Publish one batch of pending rows; returns how many."""
        self.drains += 1
        async with self.db.transaction() as session:
            stmt = select(OutboxRow).order_by(OutboxRow.seq).limit(self.batch)
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list((await session.scalars(stmt)).all())
            if not rows:
                return 0
            await self.sink.publish(session, self.db, rows)
            await session.execute(
                delete(OutboxRow)
                .where(OutboxRow.seq.in_([r.seq for r in rows]))
                .execution_options(synchronize_session=False)
            )
        self.sink.after_commit()
        self.published += len(rows)
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                count = await self.drain_once()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("relay failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            if count >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.sweep_s)
            self._wake.clear()
        # A last drain on the way out, so committed events do not wait for the next start.
        with contextlib.suppress(Exception):
            while await self.drain_once():
                pass
