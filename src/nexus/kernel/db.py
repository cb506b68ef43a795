"""Databases: async SQLAlchemy engines, units of work, shared column types, org scoping.

SQLite (the embedded default) runs in WAL mode with a busy timeout. Write transactions
start with `BEGIN IMMEDIATE` and are serialized inside the process by an asyncio lock,
so concurrent writers queue in memory instead of spinning on SQLite's busy handler.
Read-only work uses `Database.read()`, which takes no lock. PostgreSQL goes through
asyncpg and needs none of this.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, String, TypeDecorator, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from nexus.kernel.ids import new_id
from nexus.kernel.sqlite_inline import inline_creator

T = TypeVar("T")

JSONType = JSON().with_variant(JSONB(), "postgresql")
AfterCommit = Callable[[dict[str, Any]], Awaitable[None] | None]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use nexus.kernel.db.utcnow()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrgScoped:
    """Mixin for every business row: it belongs to exactly one org.

    A session bound to an org (`scope_to_org`) filters every ORM SELECT, UPDATE and
    DELETE on such models to that org, and refuses to flush rows of another org.
    """

    org_id: Mapped[str] = mapped_column(String(36), index=True)


class CrossTenantWrite(RuntimeError):
    """A session scoped to one org tried to write a row of another org."""


def scope_to_org(session: AsyncSession | Session, org_id: str) -> None:
    """Bind a session to one org: its ORM queries can only see and change that org."""
    target = session.sync_session if isinstance(session, AsyncSession) else session
    target.info["org_id"] = org_id


def session_org(session: AsyncSession | Session) -> str | None:
    target = session.sync_session if isinstance(session, AsyncSession) else session
    return target.info.get("org_id")


@event.listens_for(Session, "do_orm_execute")
def _apply_org_scope(state: ORMExecuteState) -> None:
    org_id = state.session.info.get("org_id")
    if org_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                OrgScoped,
                lambda cls: cls.org_id == org_id,
                include_aliases=True,
                track_closure_variables=False,
            )
        )


@event.listens_for(Session, "before_flush")
def _check_org_on_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    org_id = session.info.get("org_id")
    if org_id is None:
        return
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, OrgScoped):
            if obj.org_id is None:
                obj.org_id = org_id
            elif obj.org_id != org_id:
                raise CrossTenantWrite(f"{type(obj).__name__} of another org in a scoped session")


async def per_transaction(
    session: AsyncSession, key: Hashable, compute: Callable[[], Awaitable[T]]
) -> T:
    """`await compute()` once per transaction for `key`, then the same value.

    Consumers get their events in batches, one transaction per batch: a lookup that
    depends only on the org (its webhooks, its settings) is then made once per batch
    instead of once per event, and is still as fresh as the transaction."""
    memo: dict[Hashable, Any] = session.info.setdefault("nexus.per_transaction", {})
    if key not in memo:
        memo[key] = await compute()
    return memo[key]  # type: ignore[no-any-return]


class Database:
    """One database (engine + sessions), shared by the services that point at it."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.dialect = url.split("+", 1)[0].split(":", 1)[0]
        self.is_sqlite = self.dialect == "sqlite"
        # errors carry the SQL but never the values (bodies, numbers, tokens) into logs
        # and into the queue's last_error
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["async_creator"] = inline_creator(url)
            if ":memory:" in url:
                raise ValueError("in-memory SQLite is not supported: use a file path")
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.read_engine = self.engine
        if self.is_sqlite:
            _configure_sqlite(self.engine, begin="BEGIN IMMEDIATE")
            self.read_engine = create_async_engine(url, **kwargs)
            _configure_sqlite(self.read_engine, begin="BEGIN")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._lock_owner: asyncio.Task[Any] | None = None
        self._after_commit: list[AfterCommit] = []
        # True where the SQL work queue lives in this database: `enqueue` then writes the
        # job row itself instead of going through the outbox (set by the runtime).
        self.direct_jobs = False

    def on_commit(self, callback: AfterCommit) -> None:
        """Call `callback(session.info)` after every committed `transaction()` (the runtime
        wakes the relay, and the workers of the queues the transaction wrote to)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self, *, org_id: str | None = None) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits when the block ends, rolls back when it raises."""
        lock = self._write_lock
        if lock is not None:
            me = asyncio.current_task()
            if self._lock_owner is me and me is not None:
                raise RuntimeError(
                    "a write transaction is already open in this task: use its session "
                    "(a second one would wait for the first forever on SQLite)"
                )
            await lock.acquire()
            self._lock_owner = me
        try:
            async with self._sessions() as session:
                info = session.info
                info["direct_jobs"] = self.direct_jobs
                if org_id is not None:
                    scope_to_org(session, org_id)
                async with session.begin():
                    yield session
        finally:
            if lock is not None:
                self._lock_owner = None
                lock.release()
        for callback in self._after_commit:
            result = callback(info)
            if result is not None:
                await result

    @asynccontextmanager
    async def read(self, *, org_id: str | None = None) -> AsyncIterator[AsyncSession]:
        """A read-only session: never commits, takes no write lock. Objects loaded in it
        stay readable after the block (closing detaches them without expiring them)."""
        async with self._read_sessions() as session:
            if org_id is not None:
                scope_to_org(session, org_id)
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


class Databases:
    """The engines of one process, one per distinct URL."""

    def __init__(self, pool_size: int = 10) -> None:
        self._by_url: dict[str, Database] = {}
        self._pool_size = pool_size

    def get(self, url: str) -> Database:
        if url not in self._by_url:
            self._by_url[url] = Database(url, pool_size=self._pool_size)
        return self._by_url[url]

    def all(self) -> list[Database]:
        return list(self._by_url.values())

    async def dispose(self) -> None:
        for database in self._by_url.values():
            await database.dispose()
        self._by_url.clear()


async def insert_ignore(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT rows, skipping those whose key exists; returns how many were inserted."""
    if not rows:
        return 0
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    if len(rows) == 1:
        result = await session.execute(dialect_insert(model).values(rows).on_conflict_do_nothing())
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    # many rows: one prepared statement executed for each (no giant parameter list to
    # compile per call); the count is what the driver reports, -1 when it cannot tell
    table = getattr(model, "__table__", model)
    result = await session.execute(dialect_insert(table).on_conflict_do_nothing(), rows)
    return int(result.rowcount if result.rowcount is not None else -1)  # type: ignore[attr-defined]
