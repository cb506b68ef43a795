"""The consumer runner shared by work-queue jobs and event consumers, on every backend.

A `Source` hands out leased deliveries (SQL job rows, or JetStream messages); the
`Runner` runs a handler on each with bounded concurrency, acks on success, retries with
exponential backoff and jitter, dead-letters after `max_attempts`, and on shutdown lets
in-flight work finish for a grace period and releases the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database, insert_ignore
from nexus.kernel.models import InboxRow

log = structlog.get_logger("nexus.queue")


@dataclass
class Delivery:
    """One leased message: a job or an event, with its attempt number (1-based)."""

    id: str
    payload: dict[str, Any]
    attempt: int
    org_id: str | None = None
    handle: Any = None  # backend-specific (lease token, NATS message)


class Source(Protocol):
    name: str
    long_poll: bool  # claim() waits for work itself (JetStream fetch)
    atomic_ack: bool  # ack_in() makes completion atomic with the handler's transaction

    async def claim(self, limit: int, lease_s: float, wait_s: float) -> list[Delivery]: ...
    async def ack_in(self, session: AsyncSession, delivery: Delivery) -> bool: ...
    async def ack_all_in(self, session: AsyncSession, deliveries: list[Delivery]) -> bool: ...
    async def ack(self, delivery: Delivery) -> None: ...
    async def complete(self, delivery: Delivery) -> bool: ...
    async def retry(self, delivery: Delivery, delay_s: float, error: str) -> None: ...
    async def dead(self, delivery: Delivery, error: str) -> None: ...
    async def release(self, delivery: Delivery) -> None: ...
    async def extend(self, delivery: Delivery, lease_s: float) -> None: ...


class LeaseLost(RuntimeError):
    """The lease ran out and another worker took the delivery: undo this attempt."""


class Retry(Exception):
    """Raised by a handler to ask for a retry after `delay_s` (None: the usual backoff)."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Permanent(Exception):
    """Raised by a handler when retrying cannot help: dead-letter at once."""


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random."""
    ceiling = min(max_s, base_s * (2 ** max(attempt - 1, 0)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def mark_handled(session: AsyncSession, consumer: str, message_id: str) -> bool:
    """Record that `consumer` handled `message_id`; False when it already had."""
    return (
        await insert_ignore(session, InboxRow, [{"consumer": consumer, "message_id": message_id}])
        == 1
    )


TxHandler = Callable[[Delivery, AsyncSession], Awaitable[None]]
PlainHandler = Callable[[Delivery], Awaitable[None]]


@dataclass
class RunnerSpec:
    name: str  # inbox consumer name, metrics label
    concurrency: int = 4
    max_attempts: int = 8
    lease_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 300.0
    batch: int = 64  # deliveries handled in one transaction (transactional handlers)
    idle_wait_s: float = 1.0


class Runner:
    """Runs one source's deliveries through a handler until stopped."""

    def __init__(
        self,
        spec: RunnerSpec,
        source: Source,
        *,
        db: Database,
        tx_handler: TxHandler | None = None,
        handler: PlainHandler | None = None,
        on_outcome: Callable[[str, str], None] | None = None,
    ) -> None:
        if (tx_handler is None) == (handler is None):
            raise ValueError("give exactly one of tx_handler and handler")
        self.spec, self.source, self.db = spec, source, db
        self.tx_handler, self.handler = tx_handler, handler
        self._on_outcome = on_outcome or (lambda _name, _outcome: None)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.processed = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            free = self._free_slots()
            if free == 0:
                await self._wait_for_slot()
                continue
            limit = free * (self.spec.batch if self.tx_handler else 1)
            wait = self.spec.idle_wait_s if self.source.long_poll else 0
            try:
                deliveries = await self.source.claim(limit, self.spec.lease_s, wait)
            except Exception as exc:  # the database or bus is away: back off, keep going
                log.warning("claim failed", source=self.source.name, error=str(exc))
                await self._sleep(1.0)
                continue
            if self._stopping.is_set():  # stopped while claiming: give them back
                await self._release_all(deliveries)
                break
            if not deliveries:
                if not self.source.long_poll:
                    await self._sleep(await self._idle_for())
                continue
            if self.tx_handler:
                size = self.spec.batch
                for i in range(0, len(deliveries), size):
                    await self._start(self._run_tx_batch(deliveries[i : i + size]))
            else:
                for delivery in deliveries:
                    await self._start(self._run_plain(delivery))

    async def drain(self, timeout_s: float, loop: asyncio.Task[None] | None = None) -> None:
        """After stop(): wait for the claim loop to end (so it starts nothing more), let
        in-flight work finish, then cancel and release what is left."""
        if loop is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(loop), timeout=timeout_s)
        if self._inflight:
            _done, pending = await asyncio.wait(self._inflight, timeout=timeout_s)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------
    async def _idle_for(self) -> float:
        """Sleep until woken, the next delayed job is due, or `idle_wait_s` (which also
        picks up jobs enqueued by other processes and expired leases)."""
        next_due = getattr(self.source, "next_due_in", None)
        if next_due is None:
            return self.spec.idle_wait_s
        try:
            due = await next_due()
        except Exception:
            return self.spec.idle_wait_s
        return self.spec.idle_wait_s if due is None else min(self.spec.idle_wait_s, due + 0.005)

    def _free_slots(self) -> int:
        return max(self.spec.concurrency - len(self._inflight), 0)

    async def _wait_for_slot(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _start(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run_tx_batch(self, batch: list[Delivery]) -> None:
        assert self.tx_handler is not None
        try:
            await self._tx(batch)
        except asyncio.CancelledError:
            await self._release_all(batch)
            raise
        except Exception as exc:
            if len(batch) == 1:
                await self._failed(batch[0], exc)
                return
            for delivery in batch:  # find the one that fails; the others go through
                try:
                    await self._tx([delivery])
                except asyncio.CancelledError:
                    await self._release_all([delivery])
                    raise
                except Exception as one_exc:
                    await self._failed(delivery, one_exc)
                else:
                    await self.source.ack(delivery)
                    self._done(delivery)
            return
        for delivery in batch:
            await self.source.ack(delivery)
            self._done(delivery)

    async def _tx(self, batch: list[Delivery]) -> None:
        assert self.tx_handler is not None
        async with self.db.transaction() as session:
            for delivery in batch:
                if self.source.atomic_ack or await mark_handled(
                    session, self.spec.name, delivery.id
                ):
                    await self.tx_handler(delivery, session)
            # one acknowledgement for the batch; if any lease was lost, the whole batch is
            # undone and retried one by one (the lost one then fails alone)
            if not await self.source.ack_all_in(session, batch):
                raise LeaseLost(",".join(d.id for d in batch))

    async def _run_plain(self, delivery: Delivery) -> None:
        assert self.handler is not None
        try:
            await self.handler(delivery)
        except asyncio.CancelledError:
            await self._release_all([delivery])
            raise
        except Exception as exc:
            await self._failed(delivery, exc)
            return
        if await self.source.complete(delivery):
            self._done(delivery)
        else:
            self._on_outcome(self.spec.name, "lease_lost")

    def _done(self, delivery: Delivery) -> None:
        self.processed += 1
        self._on_outcome(self.spec.name, "ok")

    async def _failed(self, delivery: Delivery, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if isinstance(exc, LeaseLost):
            self._on_outcome(self.spec.name, "lease_lost")
            return
        permanent = isinstance(exc, Permanent)
        if permanent or delivery.attempt >= self.spec.max_attempts:
            log.error("dead-lettered", consumer=self.spec.name, id=delivery.id, error=error)
            await self.source.dead(delivery, error)
            self._on_outcome(self.spec.name, "dead")
            return
        delay = exc.delay_s if isinstance(exc, Retry) and exc.delay_s is not None else None
        if delay is None:
            delay = backoff(delivery.attempt, self.spec.backoff_base_s, self.spec.backoff_max_s)
        log.warning(
            "retrying",
            consumer=self.spec.name,
            id=delivery.id,
            attempt=delivery.attempt,
            delay_s=round(delay, 3),
            error=error,
        )
        await self.source.retry(delivery, delay, error)
        self._on_outcome(self.spec.name, "retry")

    async def _release_all(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.source.release(delivery))
