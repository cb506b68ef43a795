"""Databases: SQLite settings, org scoping by construction."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update

from nexus.kernel.db import CrossTenantWrite, per_transaction
from nexus.kernel.ids import new_id
from nexus.testing.sample_services import Note, notes
from tests.conftest import SERVICES_MODE, RuntimeFactory


async def _seed(runtime) -> None:  # type: ignore[no-untyped-def]
    async with runtime.db("notes").transaction() as session:
        session.add_all(
            [
                Note(org_id="org-a", text="a1"),
                Note(org_id="org-a", text="a2"),
                Note(org_id="org-b", text="b1"),
            ]
        )


async def test_scoped_session_sees_only_its_org(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    await _seed(runtime)
    async with runtime.db("notes").read(org_id="org-a") as session:
        texts = sorted((await session.scalars(select(Note.text))).all())
        assert texts == ["a1", "a2"]
        assert await session.get(Note, "does-not-matter") is None
    async with runtime.db("notes").read(org_id="org-b") as session:
        assert [n.text for n in (await session.scalars(select(Note))).all()] == ["b1"]


async def test_scoped_updates_and_deletes_stay_in_the_org(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    await _seed(runtime)
    async with runtime.db("notes").transaction(org_id="org-a") as session:
        await session.execute(update(Note).values(text="changed"))
        await session.execute(delete(Note).where(Note.text == "b1"))
    async with runtime.db("notes").read() as session:
        rows = sorted((n.org_id, n.text) for n in (await session.scalars(select(Note))).all())
    assert rows == [("org-a", "changed"), ("org-a", "changed"), ("org-b", "b1")]


async def test_scoped_session_refuses_rows_of_another_org(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    with pytest.raises(CrossTenantWrite):
        async with runtime.db("notes").transaction(org_id="org-a") as session:
            session.add(Note(org_id="org-b", text="sneaky"))
    async with runtime.db("notes").transaction(org_id="org-a") as session:
        note = Note(text="org filled in")
        session.add(note)
    assert note.org_id == "org-a"


async def test_nested_write_transaction_fails_fast_on_sqlite(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    db = runtime.db("notes")
    if not db.is_sqlite:
        pytest.skip("SQLite only")
    with pytest.raises(RuntimeError, match="already open"):
        async with db.transaction(), db.transaction():
            pass


async def test_sqlite_runs_in_wal_mode(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes], workers=False)
    db = runtime.db("notes")
    if SERVICES_MODE:
        assert db.dialect == "postgresql"
        return
    async with db.read() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert int((await session.execute(text("PRAGMA busy_timeout"))).scalar() or 0) >= 5000


async def test_processes_migrating_together_do_not_collide(settings) -> None:  # type: ignore[no-untyped-def]
    """An API and a worker starting together on a new database both migrate it."""
    import asyncio

    from nexus.kernel.migrate import upgrade
    from nexus.kernel.runtime import Runtime

    runtimes = [Runtime(settings, [notes]) for _ in range(4)]  # an engine (a pool) each
    try:
        await asyncio.gather(*(upgrade(runtime) for runtime in runtimes))
    finally:
        for runtime in runtimes:
            await runtime.databases.dispose()


def test_ids_made_one_after_another_sort_in_that_order() -> None:
    ids = [new_id() for _ in range(2000)]  # many within one millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_per_transaction_computes_once_per_transaction(make_runtime: RuntimeFactory) -> None:
    runtime = await make_runtime([notes])
    db = runtime.db("notes")
    calls: list[int] = []

    async def lookup() -> int:
        calls.append(1)
        return len(calls)

    async with db.transaction() as session:
        assert await per_transaction(session, ("k", "org-a"), lookup) == 1
        assert await per_transaction(session, ("k", "org-a"), lookup) == 1
        assert await per_transaction(session, ("k", "org-b"), lookup) == 2
    async with db.transaction() as session:  # a new transaction looks again
        assert await per_transaction(session, ("k", "org-a"), lookup) == 3
