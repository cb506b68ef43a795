"""Tables of the Twilio-compatible API, on VAS's metadata (prefix `vas_twilio_`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nexus.kernel.db import IdMixin, OrgScoped, UTCDateTime, utcnow
from nexus.services.vas.models import Base


class TwilioCredential(Base, IdMixin, OrgScoped):
    """An `AC…` account (auth token) or an `SK…` API key (secret) bound to an account.

    Secrets are stored as SHA-256 hashes for checking Basic auth; an account's auth token
    is also sealed, because status callbacks are signed with it."""

    __tablename__ = "vas_twilio_credentials"
    kind: Mapped[str] = mapped_column(String(8))  # account | key
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_sid: Mapped[str] = mapped_column(String(34), index=True)  # its own sid for accounts
    friendly_name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    secret_sealed: Mapped[str | None] = mapped_column(Text)  # accounts only
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TwilioMessage(Base, OrgScoped):
    """What a message sent through the Twilio API adds: its account, the `From` and
    Messaging Service as the client gave them, and its status callback URL."""

    __tablename__ = "vas_twilio_messages"
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    sender: Mapped[str | None] = mapped_column(String(320))
    messaging_service_sid: Mapped[str | None] = mapped_column(String(34))
    status_callback: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
