"""/api/v1/crm/activities (calls, meetings, notes, tasks...) and /api/v1/crm/custom-fields."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.errors import Conflict, NotFound
from nexus.kernel.pagination import Page
from nexus.services.crm import activities
from nexus.services.crm.access import Access, access
from nexus.services.crm.models import Activity, Company, Contact, CustomField, Deal
from nexus.services.crm.routes.common import (
    Cursor,
    IdempotencyKeyHeader,
    Limit,
    create_once,
    crm_db,
    linked,
    page,
    reader,
)
from nexus.services.crm.schemas import (
    ActivityIn,
    ActivityOut,
    ActivityPatch,
    CustomFieldIn,
    CustomFieldOut,
    CustomFieldPatch,
)

router = APIRouter(prefix="/activities", tags=["crm activities"])
fields = APIRouter(prefix="/custom-fields", tags=["crm custom fields"])


@router.get("", response_model=Page[ActivityOut], summary="List activities (e.g. my open tasks)")
async def list_activities(
    request: Request,
    kind: str | None = Query(None, max_length=12),
    assignee_id: str | None = Query(None, max_length=36),
    done: bool | None = None,
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("activity", "read"),
) -> Page[ActivityOut]:
    """`?kind=task&assignee_id=<me>&done=false` is a to-do list."""
    org_id = acc.principal.org_id
    async with crm_db(request).read(org_id=org_id) as session:
        stmt = select(Activity).where(Activity.org_id == org_id, acc.where(Activity))
        for column, value in (
            (Activity.kind, kind),
            (Activity.assignee_id, assignee_id),
            (Activity.done, done),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        rows, next_cursor = await page(session, stmt, Activity, cursor, limit)
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(a) for a in rows], next_cursor=next_cursor
    )


@router.post("", response_model=ActivityOut, status_code=201, summary="Log an activity")
async def create_activity(
    body: ActivityIn,
    request: Request,
    response: Response,
    key: str | None = IdempotencyKeyHeader,
    acc: Access = access("activity", "write"),
) -> ActivityOut:
    """On a contact, company and/or deal you may read; you are its owner."""
    org_id = acc.principal.org_id

    async def create(session: AsyncSession) -> Activity:
        await linked(session, reader(acc, "contact"), Contact, body.contact_id, "contact_id")
        await linked(session, reader(acc, "company"), Company, body.company_id, "company_id")
        await linked(session, reader(acc, "deal"), Deal, body.deal_id, "deal_id")
        activity = await activities.create(
            session, org_id, acc.principal.subject, body.model_dump(exclude_unset=True)
        )
        acc.check_values(activity)
        return activity

    activity = await create_once(crm_db(request), acc, Activity, key, response, create)
    return ActivityOut.model_validate(activity)


@router.get("/{activity_id}", response_model=ActivityOut, summary="One activity")
async def get_activity(
    activity_id: str, request: Request, acc: Access = access("activity", "read")
) -> ActivityOut:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        return ActivityOut.model_validate(acc.check(await session.get(Activity, activity_id)))


@router.patch("/{activity_id}", response_model=ActivityOut, summary="Change an activity")
async def update_activity(
    activity_id: str,
    body: ActivityPatch,
    request: Request,
    acc: Access = access("activity", "write"),
) -> ActivityOut:
    """E.g. `{"done": true}` completes a task."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        activity = acc.check(await session.get(Activity, activity_id))
        activities.update(activity, body.model_dump(exclude_unset=True))
        acc.check_values(activity)
    return ActivityOut.model_validate(activity)


@router.delete("/{activity_id}", status_code=204, summary="Delete an activity")
async def delete_activity(
    activity_id: str, request: Request, acc: Access = access("activity", "delete")
) -> Response:
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        await session.delete(acc.check(await session.get(Activity, activity_id)))
    return Response(status_code=204)


# -- custom fields -------------------------------------------------------------------------
@fields.get("", response_model=list[CustomFieldOut], summary="The org's custom fields")
async def list_fields(
    request: Request,
    object_type: str | None = Query(None, pattern="^(contact|company|deal)$"),
    acc: Access = access("field", "read"),
) -> list[CustomFieldOut]:
    async with crm_db(request).read(org_id=acc.principal.org_id) as session:
        stmt = select(CustomField).order_by(CustomField.object_type, CustomField.key)
        if object_type:
            stmt = stmt.where(CustomField.object_type == object_type)
        return [CustomFieldOut.model_validate(f) for f in await session.scalars(stmt)]


@fields.post("", response_model=CustomFieldOut, status_code=201, summary="Declare a field")
async def create_field(
    body: CustomFieldIn, request: Request, acc: Access = access("field", "write")
) -> CustomFieldOut:
    """Types: text, number, date, select, multi_select (with `options`), boolean. Values
    are checked on every write of a record; lists filter with `cf.<key>=`."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        taken = await session.scalar(
            select(CustomField.id).where(
                CustomField.object_type == body.object_type, CustomField.key == body.key
            )
        )
        if taken:
            raise Conflict(f"The {body.object_type} field {body.key} exists.", slug="duplicate-key")
        field = CustomField(org_id=acc.principal.org_id, **body.model_dump())
        session.add(field)
        await session.flush()
    return CustomFieldOut.model_validate(field)


@fields.patch("/{field_id}", response_model=CustomFieldOut, summary="Change a field")
async def update_field(
    field_id: str, body: CustomFieldPatch, request: Request, acc: Access = access("field", "write")
) -> CustomFieldOut:
    """The label, whether it is required, and the options of a select (stored values that
    are no longer options stay until their record is next written)."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        field = await session.get(CustomField, field_id)
        if field is None or field.org_id != acc.principal.org_id:
            raise NotFound(f"No custom field {field_id}.")
        data = body.model_dump(exclude_unset=True)
        if data.get("options") is not None and (
            field.type not in ("select", "multi_select") or not data["options"]
        ):
            raise Conflict("Only select fields have options, at least one.")
        for name, value in data.items():
            if value is not None:
                setattr(field, name, value)
    return CustomFieldOut.model_validate(field)


@fields.delete("/{field_id}", status_code=204, summary="Remove a field")
async def delete_field(
    field_id: str, request: Request, acc: Access = access("field", "write")
) -> Response:
    """Stored values stay in the records (ignored) until they are next written."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        field = await session.get(CustomField, field_id)
        if field is None or field.org_id != acc.principal.org_id:
            raise NotFound(f"No custom field {field_id}.")
        await session.delete(field)
    return Response(status_code=204)
