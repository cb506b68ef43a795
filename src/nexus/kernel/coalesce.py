"""Group commit: many concurrent callers, one database round trip.

A handler that runs once per message (a job, a request) pays for a transaction each
time, and on SQLite every write transaction waits for the one before it. A `Coalescer`
gives each caller the same one-call API (`await c.submit(item)`) while a single task per
process runs `flush` on everything submitted since the previous flush began: when idle,
an item is flushed at once, alone; under load, items queue up during a flush and go
together in the next one. Nothing waits on a timer.

When a flush of several items raises, each item is flushed again on its own, so one
bad item fails only its own caller. A flush that was started is finished even when its
caller is cancelled (the caller just does not see the result).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("nexus.coalesce")

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 500,
    ) -> None:
        self._flush = flush
        self.name = name
        self.max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0  # batches flushed (for benchmarks and tests)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a cancelled caller's error is not "lost"
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"coalesce:{self.name}")
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Let the items handed in so far be flushed."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    async def _run(self) -> None:
        try:
            await self._drain()
        except asyncio.CancelledError:  # shutting down: nobody may wait forever
            for _, future in [*self._flushing, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._flushing = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            self.flushes += 1
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    continue
                log.info("batch failed, flushing one by one", coalescer=self.name, error=str(exc))
                for item, future in batch:
                    try:
                        (result,) = await self._flush([item])
                    except Exception as one_exc:
                        _settle(future, exc=one_exc)
                    else:
                        _settle(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)


def _settle(
    future: asyncio.Future[R], result: R | None = None, *, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
