"""The transactional outbox, the relay and consumer groups, on the configured backend."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from nexus.kernel.events import emit
from nexus.kernel.models import OutboxRow
from nexus.testing.sample_services import Note, Seen, notes, tally
from tests.conftest import RuntimeFactory, eventually


async def _seen(runtime, consumer: str | None = None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with runtime.db("tally").read() as session:
        stmt = select(Seen.event_id, func.count()).group_by(Seen.event_id)
        if consumer:
            stmt = stmt.where(Seen.consumer == consumer)
        return dict((await session.execute(stmt)).all())  # type: ignore[arg-type]


async def _emit_notes(runtime, count: int, org_id: str = "org-1") -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    async with runtime.db("notes").transaction(org_id=org_id) as session:
        for i in range(count):
            note = Note(text=f"note {i}")
            session.add(note)
            await session.flush()
            ids.append(
                emit(session, "nexus.notes.note.created", {"note_id": note.id}, org_id=org_id).id
            )
    return ids


async def test_committed_event_reaches_every_consumer_group_once(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = await make_runtime([notes, tally])
    ids = await _emit_notes(runtime, 25)

    async def all_seen() -> bool:
        return len(await _seen(runtime, "audit")) == 25 and len(await _seen(runtime, "stats")) == 25

    await eventually(all_seen)
    for consumer in ("audit", "stats"):
        seen = await _seen(runtime, consumer)
        assert set(seen) == set(ids)
        assert set(seen.values()) == {1}


async def test_event_in_rolled_back_transaction_is_never_published(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = await make_runtime([notes, tally])
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with runtime.db("notes").transaction(org_id="org-1") as session:
            emit(session, "nexus.notes.note.created", {"note_id": "ghost"}, org_id="org-1")
            await session.flush()
            raise RuntimeError("changed my mind")
    committed = await _emit_notes(runtime, 1)  # a later event proves the pipeline runs

    async def later_seen() -> bool:
        return committed[0] in await _seen(runtime, "stats")

    await eventually(later_seen)
    async with runtime.db("notes").read() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 0
    assert set(await _seen(runtime)) == set(committed)


async def test_events_survive_a_restart_and_are_handled_once(
    make_runtime: RuntimeFactory,
) -> None:
    # Process 1 writes events but its workers never run: it stops with them pending.
    producer = await make_runtime([notes, tally], workers=False)
    ids = await _emit_notes(producer, 40)
    await producer.stop()
    # Process 2 starts on the same database and bus, and consumes each event once per group.
    consumer = await make_runtime([notes, tally])

    async def all_seen() -> bool:
        return (
            len(await _seen(consumer, "audit")) == 40 and len(await _seen(consumer, "stats")) == 40
        )

    await eventually(all_seen, timeout_s=20)
    await consumer.stop()
    # Process 3: nothing is delivered a second time after another restart.
    again = await make_runtime([notes, tally])
    await _emit_notes(again, 1)

    async def one_more() -> bool:
        return len(await _seen(again, "audit")) == 41

    await eventually(one_more)
    for group in ("audit", "stats"):
        counts = await _seen(again, group)
        assert all(counts[i] == 1 for i in ids)


async def test_event_types_are_validated(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    async with runtime.db("notes").transaction() as session:
        with pytest.raises(ValueError, match=r"nexus\.<service>"):
            emit(session, "NotAType", {}, org_id=None)


async def test_an_idle_relay_stays_idle(make_runtime: RuntimeFactory) -> None:
    """The relay's own commits must not wake it (that made it spin at full CPU)."""
    import asyncio

    runtime = await make_runtime([notes, tally])
    await asyncio.sleep(1.0)
    drains = sum(relay.drains for relay in runtime.relays)
    assert drains <= 2 * len(runtime.relays)  # the first drain and at most one sweep
    await _emit_notes(runtime, 1)

    async def seen() -> bool:
        return len(await _seen(runtime, "stats")) == 1

    await eventually(seen)
