"""The kernel's own tables: event outbox, consumer inbox, and the SQL work queue.

They are created in every database that a service of this process uses (through the
kernel's migrations), so an event or a job is written in the same transaction as the
change that caused it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.db import JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class KernelBase(DeclarativeBase):
    pass


class OutboxRow(KernelBase):
    """An event or a job written by a transaction; the relay publishes it, then deletes it."""

    __tablename__ = "nexus_outbox"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))  # "event" | "job"
    # the sentinel lets SQLAlchemy insert many rows in one statement on SQLite too
    id: Mapped[str] = mapped_column(String(36), unique=True, insert_sentinel=True)
    type: Mapped[str] = mapped_column(String(200))  # event type, or job queue name
    source: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str | None] = mapped_column(String(36))
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InboxRow(KernelBase):
    """An event (or job) a consumer has handled: a redelivery finds it and does nothing."""

    __tablename__ = "nexus_inbox"

    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRow(KernelBase):
    """A job of the SQL work queue (the embedded backend)."""

    __tablename__ = "nexus_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str | None] = mapped_column(String(36))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(8), default="ready")  # ready|leased|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_nexus_jobs_claim", "queue", "status", "run_at"),)
