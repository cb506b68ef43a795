"""The audit log: one row per authentication or administration event, never edited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.auth import Principal
from nexus.kernel.logging import mask_value
from nexus.services.idaas.models import AuditEvent


@dataclass(frozen=True)
class Origin:
    """Where a request came from."""

    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, request: Request) -> Origin:
        return cls(
            ip=request.client.host if request.client else None,
            user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        )


def record(
    session: AsyncSession,
    type: str,
    *,
    org_id: str,
    origin: Origin | None = None,
    actor: Principal | None = None,
    actor_id: str | None = None,
    actor_type: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    result: str = "success",
    **data: Any,
) -> AuditEvent:
    """Add an audit event to the caller's transaction (data is masked like logs are)."""
    origin = origin or Origin()
    event = AuditEvent(
        org_id=org_id,
        type=type,
        result=result,
        actor_id=actor.subject if actor else actor_id,
        actor_type=actor.kind if actor else actor_type,
        target_type=target_type,
        target_id=target_id,
        ip=origin.ip,
        user_agent=origin.user_agent,
        data={k: mask_value(k, v) for k, v in data.items()},
    )
    session.add(event)
    return event
