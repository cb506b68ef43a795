"""The SQL work queue: jobs are rows of `nexus_jobs` leased with a token.

Claiming is one UPDATE ... RETURNING (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several worker processes share a queue). A lease that runs out makes the job claimable
again; completing a job deletes its row only while the worker still holds the lease.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.coalesce import Coalescer
from nexus.kernel.db import Database, utcnow
from nexus.kernel.ids import new_id
from nexus.kernel.models import JobRow
from nexus.kernel.queue import Delivery


class SqlJobSource:
    """The jobs of one queue in one database."""

    long_poll = False
    atomic_ack = True

    def __init__(self, db: Database, queue: str) -> None:
        self.db = db
        self.queue = queue
        self.name = f"sql:{queue}"
        self._completer = Coalescer(self._complete_all, name=f"complete:{queue}")

    def _claimable(self, now: dt.datetime) -> Any:
        return and_(
            JobRow.queue == self.queue,
            or_(
                and_(JobRow.status == "ready", JobRow.run_at <= now),
                and_(JobRow.status == "leased", JobRow.lease_until < now),
            ),
        )

    async def claim(self, limit: int, lease_s: float, wait_s: float = 0) -> list[Delivery]:
        now = utcnow()
        token = new_id()
        ids = select(JobRow.id).where(self._claimable(now)).order_by(JobRow.run_at).limit(limit)
        if not self.db.is_sqlite:
            ids = ids.with_for_update(skip_locked=True)
        stmt = (
            update(JobRow)
            .where(JobRow.id.in_(ids.scalar_subquery()))
            .values(
                status="leased",
                lease_until=now + dt.timedelta(seconds=lease_s),
                lease_token=token,
                attempts=JobRow.attempts + 1,
            )
            .returning(JobRow.id, JobRow.payload, JobRow.attempts, JobRow.org_id)
            .execution_options(synchronize_session=False)
        )
        async with self.db.transaction() as session:
            rows = (await session.execute(stmt)).all()
        return [
            Delivery(id=r.id, payload=r.payload, attempt=r.attempts, org_id=r.org_id, handle=token)
            for r in rows
        ]

    def _mine(self, delivery: Delivery) -> Any:
        return and_(JobRow.id == delivery.id, JobRow.lease_token == delivery.handle)

    async def next_due_in(self) -> float | None:
        """Seconds until the earliest waiting job is due (None: no job waits)."""
        async with self.db.read() as session:
            run_at = await session.scalar(
                select(func.min(JobRow.run_at)).where(
                    JobRow.queue == self.queue, JobRow.status == "ready"
                )
            )
        if run_at is None:
            return None
        return max(0.0, (run_at - utcnow()).total_seconds())

    async def ack_in(self, session: AsyncSession, delivery: Delivery) -> bool:
        result = await session.execute(
            delete(JobRow).where(self._mine(delivery)).execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def ack_all_in(self, session: AsyncSession, deliveries: list[Delivery]) -> bool:
        """Delete the batch's rows in one statement, only while we hold every lease."""
        tokens = {d.handle for d in deliveries}
        if len(tokens) != 1:  # not one claim: acknowledge one by one
            return all([await self.ack_in(session, d) for d in deliveries])
        result = await session.execute(
            delete(JobRow)
            .where(JobRow.lease_token == tokens.pop(), JobRow.id.in_([d.id for d in deliveries]))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == len(deliveries)  # type: ignore[attr-defined]

    async def ack(self, delivery: Delivery) -> None:
        return None

    async def complete(self, delivery: Delivery) -> bool:
        """Delete the job while we hold its lease; the deletes of jobs finishing at the
        same time share one transaction."""
        return await self._completer.submit(delivery)

    async def _complete_all(self, deliveries: list[Delivery]) -> list[bool]:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(JobRow)
                .where(
                    tuple_(JobRow.id, JobRow.lease_token).in_(
                        [(d.id, d.handle) for d in deliveries]
                    )
                )
                .returning(JobRow.id)
                .execution_options(synchronize_session=False)
            )
            deleted = set(result.scalars().all())
        return [d.id in deleted for d in deliveries]

    async def _set(self, delivery: Delivery, **values: Any) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(JobRow)
                .where(self._mine(delivery))
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def retry(self, delivery: Delivery, delay_s: float, error: str) -> None:
        run_at = utcnow() + dt.timedelta(seconds=delay_s)
        await self._set(
            delivery,
            status="ready",
            run_at=run_at,
            lease_token=None,
            lease_until=None,
            last_error=error,
        )

    async def dead(self, delivery: Delivery, error: str) -> None:
        await self._set(delivery, status="dead", lease_token=None, last_error=error)

    async def release(self, delivery: Delivery) -> None:
        """Give a job back unfinished (shutdown): it does not count as an attempt."""
        await self._set(
            delivery,
            status="ready",
            lease_token=None,
            lease_until=None,
            attempts=JobRow.attempts - 1,
        )

    async def extend(self, delivery: Delivery, lease_s: float) -> None:
        await self._set(delivery, lease_until=utcnow() + dt.timedelta(seconds=lease_s))


async def queue_depths(db: Database) -> dict[tuple[str, str], int]:
    """(queue, status) -> number of jobs, for metrics and `nexus` status commands."""
    async with db.read() as session:
        rows = await session.execute(
            select(JobRow.queue, JobRow.status, func.count()).group_by(JobRow.queue, JobRow.status)
        )
        return {(q, s): n for q, s, n in rows.all()}
