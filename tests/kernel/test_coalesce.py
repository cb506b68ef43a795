"""Group commit: concurrent callers share flushes, a bad item fails only its caller."""

from __future__ import annotations

import asyncio

import pytest

from nexus.kernel.coalesce import Coalescer


async def test_concurrent_items_share_flushes_and_keep_their_results() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.01)  # a round trip: items arriving meanwhile wait for the next
        return [i * 2 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(flush, name="test", max_batch=40)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(100)))
    assert results == [i * 2 for i in range(100)]
    assert max(sizes) == 40
    assert len(sizes) < 10
    assert coalescer.flushes == len(sizes)
    assert await coalescer.submit(7) == 14  # idle again: flushed at once, alone
    assert sizes[-1] == 1


async def test_one_bad_item_fails_only_its_caller() -> None:
    async def flush(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 is refused")
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush, name="test")
    results = await asyncio.gather(
        *(coalescer.submit(i) for i in range(20)), return_exceptions=True
    )
    assert isinstance(results[13], ValueError)
    assert [r for i, r in enumerate(results) if i != 13] == [i for i in range(20) if i != 13]


async def test_a_cancelled_caller_does_not_undo_its_flush() -> None:
    flushed: list[int] = []
    started = asyncio.Event()

    async def flush(items: list[int]) -> list[None]:
        started.set()
        await asyncio.sleep(0.05)
        flushed.extend(items)
        return [None] * len(items)

    coalescer: Coalescer[int, None] = Coalescer(flush, name="test")
    caller = asyncio.create_task(coalescer.submit(1))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await coalescer.close()
    assert flushed == [1]
