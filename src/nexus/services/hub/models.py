"""Hub tables (prefix `hub_`): the browser sessions and the API tokens they hold."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel.db import JSONType, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class HubSession(Base):
    """One signed-in browser. The cookie holds a random token; the row is keyed by its
    hash, and the IDaaS tokens are sealed with the installation's secret."""

    __tablename__ = "hub_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(String(36))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    org_name: Mapped[str] = mapped_column(String(200), default="")
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    access_sealed: Mapped[str] = mapped_column(Text)
    refresh_sealed: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
