"""Activities (calls, meetings, e-mails, messages, notes, tasks) and the timelines of
contacts, companies and deals, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.ids import new_id
from nexus.services.crm.models import Activity, Contact, Deal


async def create(
    session: AsyncSession, org_id: str, actor: str | None, data: dict[str, Any]
) -> Activity:
    """A new activity; its company comes from its deal or contact when not given."""
    company_id = data.get("company_id")
    if company_id is None and data.get("deal_id"):
        company_id = await session.scalar(select(Deal.company_id).where(Deal.id == data["deal_id"]))
    if company_id is None and data.get("contact_id"):
        company_id = await session.scalar(
            select(Contact.company_id).where(Contact.id == data["contact_id"])
        )
    now = utcnow()
    activity = Activity(
        id=new_id(),
        org_id=org_id,
        kind=data["kind"],
        subject=data.get("subject"),
        body=data.get("body"),
        contact_id=data.get("contact_id"),
        company_id=company_id,
        deal_id=data.get("deal_id"),
        owner_id=actor,
        assignee_id=data.get("assignee_id") or (actor if data["kind"] == "task" else None),
        due_at=data.get("due_at"),
        done=bool(data.get("done")),
        done_at=now if data.get("done") else None,
        occurred_at=data.get("occurred_at") or now,
        direction=data.get("direction"),
        channel=data.get("channel"),
        external_id=data.get("external_id"),
        status=data.get("status"),
        data=data.get("data") or {},
        created_at=now,
        updated_at=now,
    )
    session.add(activity)
    await session.flush()
    return activity


def update(activity: Activity, data: dict[str, Any]) -> None:
    for name in ("subject", "body", "assignee_id", "due_at"):
        if name in data:
            setattr(activity, name, data[name])
    if data.get("done") is not None and data["done"] != activity.done:
        activity.done = data["done"]
        activity.done_at = utcnow() if activity.done else None
    activity.updated_at = utcnow()


def timeline(column: Any, record_id: str) -> Select[tuple[Activity]]:
    """The activities of one record (contact_id, company_id or deal_id column)."""
    return select(Activity).where(column == record_id)
