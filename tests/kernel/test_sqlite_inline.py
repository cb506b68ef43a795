"""Inline SQLite calls: never two threads on one connection, even after a cancel."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from nexus.kernel.sqlite_inline import InlineConnection, inline_creator


async def test_calls_wait_for_a_cancelled_begin_still_running_on_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    conn: InlineConnection = await inline_creator(f"sqlite+aiosqlite:///{path}", timeout_s=5)()
    begin = asyncio.create_task(conn.execute("BEGIN IMMEDIATE"))  # waits on the thread
    while not conn._on_thread:
        await asyncio.sleep(0.01)
    begin.cancel()  # the task goes; the thread still waits in SQLite
    with contextlib.suppress(asyncio.CancelledError):
        await begin
    assert conn._on_thread == 1

    # this call must queue behind the waiting BEGIN, not run beside it on the loop
    select = asyncio.create_task(conn.execute("SELECT 1"))
    await asyncio.sleep(0.1)
    assert not select.done()
    other.execute("ROLLBACK")  # the lock is free: BEGIN gets it, then the SELECT runs
    cursor = await select
    assert await cursor.fetchall() == [(1,)]
    await conn.execute("ROLLBACK")
    assert conn._on_thread == 0

    # and with nothing on the thread, calls run inline again
    assert await (await conn.execute("SELECT 2")).fetchall() == [(2,)]
    await conn.close()
    other.close()
