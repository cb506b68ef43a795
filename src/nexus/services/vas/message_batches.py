"""Dispatch's reads and writes of messages, coalesced across the jobs of a process.

Each `vas.dispatch` job reads its message before sending and records the outcome after;
with dozens of jobs in flight that was two transactions a message. Here a job still
asks for one message and one update, but everything asked for while the previous round
trip ran goes in the next one: one `SELECT … WHERE id IN (…)` for the reads, one
transaction for the updates (see `nexus.kernel.coalesce`). An update is a function of
the session and the message, run inside that transaction on the freshly loaded row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.coalesce import Coalescer
from nexus.kernel.db import Database
from nexus.services.vas.models import Message

Update = Callable[[AsyncSession, Message], Awaitable[None]]


class MessageBatches:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: Coalescer[str, Message | None] = Coalescer(self._read, name="vas-reads")
        self._writes: Coalescer[tuple[str, Update], bool] = Coalescer(
            self._write, name="vas-writes"
        )

    async def get(self, message_id: str) -> Message | None:
        """The message as committed (detached: read it, do not change it)."""
        return await self._reads.submit(message_id)

    async def update(self, message_id: str, change: Update) -> bool:
        """Run `change` on the message in a transaction; False when there is no such message."""
        return await self._writes.submit((message_id, change))

    async def close(self) -> None:
        await self._writes.close()

    async def _load(
        self, session: AsyncSession, ids: list[str], *, lock: bool = False
    ) -> dict[str, Message]:
        stmt = select(Message).where(Message.id.in_(set(ids)))
        if lock:  # a cancel committed meanwhile must be seen, not overwritten (PostgreSQL)
            stmt = stmt.order_by(Message.id).with_for_update()
        return {message.id: message for message in await session.scalars(stmt)}

    async def _read(self, ids: list[str]) -> list[Message | None]:
        async with self.db.read() as session:
            found = await self._load(session, ids)
        return [found.get(i) for i in ids]

    async def _write(self, items: list[tuple[str, Update]]) -> list[bool]:
        async with self.db.transaction() as session:
            found = await self._load(session, [i for i, _ in items], lock=True)
            done = []
            for message_id, change in items:
                message = found.get(message_id)
                if message is not None:
                    await change(session, message)
                done.append(message is not None)
        return done
