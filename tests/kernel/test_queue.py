"""The durable work queue: delay, retry with backoff, dead letter, lease recovery."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from sqlalchemy import select

from nexus.kernel.events import Job, enqueue
from nexus.kernel.queue import backoff
from nexus.kernel.service import HandlerContext, JobHandler, Service
from nexus.testing.sample_services import JobRun, notes
from tests.conftest import RuntimeFactory, eventually, settings_env


async def _runs(runtime, job_id: str, phase: str = "completed") -> list[JobRun]:  # type: ignore[no-untyped-def]
    async with runtime.db("notes").read() as session:
        rows = await session.scalars(
            select(JobRun).where(JobRun.job_id == job_id, JobRun.phase == phase)
        )
        return list(rows)


async def _enqueue(runtime, payload: dict, **kwargs) -> str:  # type: ignore[no-untyped-def]
    async with runtime.db("notes").transaction() as session:
        return await enqueue(session, "notes.work", payload, org_id="org-1", **kwargs)


async def test_job_runs_once(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes])
    job_ids = [await _enqueue(runtime, {}) for _ in range(10)]

    async def done() -> bool:
        return [len(await _runs(runtime, j)) for j in job_ids] == [1] * 10

    await eventually(done)


async def test_delayed_job_waits_for_its_time(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes])
    loop = asyncio.get_running_loop()
    started = loop.time()
    job_id = await _enqueue(runtime, {}, delay_s=1.5)
    await asyncio.sleep(0.8)
    assert await _runs(runtime, job_id) == []

    async def done() -> bool:
        return len(await _runs(runtime, job_id)) == 1

    await eventually(done, timeout_s=10)
    assert loop.time() - started >= 1.4


async def test_failing_job_is_retried_then_succeeds(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes])
    job_id = await _enqueue(runtime, {"fail_times": 2})

    async def done() -> bool:
        return len(await _runs(runtime, job_id)) == 1

    await eventually(done, timeout_s=15)


async def test_job_failing_every_attempt_is_dead_lettered(make_runtime: RuntimeFactory) -> None:
    outcomes: list[str] = []
    attempts: list[int] = []

    async def always_fails(job: Job, ctx: HandlerContext) -> None:
        attempts.append(job.attempt)
        raise RuntimeError("provider said no")

    svc = Service(
        name="flaky",
        jobs=[JobHandler("flaky.send", always_fails, max_attempts=3, backoff_base_s=0.02)],
    )
    runtime = await make_runtime([svc])
    runner = runtime.runners["flaky.send"]
    original = runner._on_outcome
    runner._on_outcome = lambda name, outcome: (outcomes.append(outcome), original(name, outcome))  # type: ignore[assignment]
    async with runtime.db("flaky").transaction() as session:
        await enqueue(session, "flaky.send", {"to": "+15550000000"})

    async def dead() -> bool:
        return "dead" in outcomes

    await eventually(dead, timeout_s=15)
    assert attempts == [1, 2, 3]
    assert outcomes == ["retry", "retry", "dead"]


@pytest.mark.slow
async def test_job_of_a_killed_worker_is_completed_once_by_another(
    make_runtime: RuntimeFactory, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # A worker process takes the job and is killed (SIGKILL) in the middle of it. When its
    # 2 s lease runs out, another worker takes the job over and completes it, once.
    marker = tmp_path / "started"
    producer = await make_runtime([notes], workers=False)
    job_id = await _enqueue(producer, {"sleep_s": 60, "sleep_attempts": 1, "marker": str(marker)})
    worker = subprocess.Popen(
        [sys.executable, "-m", "nexus.cli", "worker", "--service", "notes"],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        async def started() -> bool:
            assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            return marker.exists()

        await eventually(started, timeout_s=30)
    finally:
        worker.kill()
        worker.wait(10)
    assert await _runs(producer, job_id) == []
    await make_runtime([notes])  # the second worker

    async def completed() -> bool:
        return len(await _runs(producer, job_id)) >= 1

    await eventually(completed, timeout_s=30)
    await asyncio.sleep(0.5)
    assert len(await _runs(producer, job_id)) == 1
    assert len(marker.read_text().split()) == 2  # started twice, completed once


def test_backoff_grows_and_stays_bounded() -> None:
    delays = [backoff(attempt, 0.5, 30) for attempt in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(d <= 30 for d in delays)
    assert delays[6] >= 15  # 0.5 * 2**6 = 32 → capped at 30, at least half of it


@pytest.mark.parametrize("queue", ["Bad Name", "noservice", ""])
async def test_queue_names_are_validated(make_runtime: RuntimeFactory, queue: str) -> None:
    runtime = await make_runtime([notes], workers=False)
    async with runtime.db("notes").transaction() as session:
        with pytest.raises(ValueError, match="queue name"):
            await enqueue(session, queue, {})
