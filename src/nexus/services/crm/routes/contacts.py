"""/api/v1/crm/contacts: CRUD, timeline, duplicates and merge, score, messages via VAS."""

from __future__ import annotations

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database
from nexus.kernel.errors import BadRequest
from nexus.kernel.pagination import Page
from nexus.services.crm import activities, contacts, custom_fields, messaging, scoring, search
from nexus.services.crm.access import Access, access
from nexus.services.crm.models import Activity, Address, Company, Contact, Deal, DealContact
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
    ActivityOut,
    ContactIn,
    ContactOut,
    ContactPatch,
    DuplicateOut,
    MergeIn,
    MessageIn,
    MessageSentOut,
    ScoreOut,
)
from nexus.services.crm.settings import get_crm_settings

router = APIRouter(prefix="/contacts", tags=["crm contacts"])


def _region(value: str | None) -> str | None:
    return value or get_crm_settings().default_region


def _out(contact: Contact) -> ContactOut:
    out = ContactOut.model_validate(contact)
    out.name = contact.name
    return out


async def _get(db: Database, acc: Access, contact_id: str) -> Contact:
    async with db.read(org_id=acc.principal.org_id) as session:
        return acc.check(await session.get(Contact, contact_id))  # type: ignore[no-any-return]


@router.get("", response_model=Page[ContactOut], summary="List contacts (newest first)")
async def list_contacts(
    request: Request,
    owner_id: str | None = Query(None, max_length=36),
    company_id: str | None = Query(None, max_length=36),
    lifecycle_stage: str | None = Query(None, max_length=16),
    tag: str | None = Query(None, max_length=100),
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("contact", "read"),
) -> Page[ContactOut]:
    """Filter with the parameters, and custom fields with `cf.<key>=value`
    (`cf.<key>.gte` / `.lte` for number and date fields)."""
    db = crm_db(request)
    org_id = acc.principal.org_id
    async with db.read(org_id=org_id) as session:
        stmt = select(Contact).where(
            Contact.org_id == org_id, Contact.merged_into_id.is_(None), acc.where(Contact)
        )
        for column, value in (
            (Contact.owner_id, owner_id),
            (Contact.company_id, company_id),
            (Contact.lifecycle_stage, lifecycle_stage),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if tag is not None:
            stmt = stmt.where(
                custom_fields.array_contains("crm_contacts.tags", None, tag, db.dialect)
            )
        fields = await custom_fields.definitions(session, org_id, "contact")
        stmt = stmt.where(
            *custom_fields.filters(Contact, fields, dict(request.query_params), db.dialect)
        )
        rows, next_cursor = await page(session, stmt, Contact, cursor, limit)
    return Page[ContactOut](items=[_out(c) for c in rows], next_cursor=next_cursor)


@router.post("", response_model=ContactOut, status_code=201, summary="Create a contact")
async def create_contact(
    body: ContactIn,
    request: Request,
    response: Response,
    key: str | None = IdempotencyKeyHeader,
    acc: Access = access("contact", "write"),
) -> ContactOut:
    async def create(session: AsyncSession) -> Contact:
        await linked(session, reader(acc, "company"), Company, body.company_id, "company_id")
        contact = await contacts.create(
            session,
            acc.principal.org_id,
            acc.principal.subject,
            body.model_dump(exclude={"region"}),
            _region(body.region),
        )
        acc.check_values(contact)
        return contact

    return _out(await create_once(crm_db(request), acc, Contact, key, response, create))


@router.get("/{contact_id}", response_model=ContactOut, summary="One contact")
async def get_contact(
    contact_id: str, request: Request, acc: Access = access("contact", "read")
) -> ContactOut:
    """A merged-away contact answers with `merged_into_id` set: follow it."""
    return _out(await _get(crm_db(request), acc, contact_id))


@router.patch("/{contact_id}", response_model=ContactOut, summary="Change a contact")
async def update_contact(
    contact_id: str, body: ContactPatch, request: Request, acc: Access = access("contact", "write")
) -> ContactOut:
    data = body.model_dump(exclude_unset=True, exclude={"region"})
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        contact = acc.check(await session.get(Contact, contact_id))
        if contact.merged_into_id:
            raise BadRequest(f"The contact was merged into {contact.merged_into_id}.")
        if data.get("company_id"):
            await linked(session, reader(acc, "company"), Company, data["company_id"], "company_id")
        await contacts.update(session, contact, data, _region(body.region))
        acc.check_values(contact)
    return _out(contact)


@router.delete("/{contact_id}", status_code=204, summary="Delete a contact")
async def delete_contact(
    contact_id: str, request: Request, acc: Access = access("contact", "delete")
) -> Response:
    """Its own activities (on no deal or company) go with it; the others stay on their
    deal's or company's timeline."""
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        contact = acc.check(await session.get(Contact, contact_id))
        await session.execute(
            delete(Activity).where(
                Activity.contact_id == contact.id,
                Activity.deal_id.is_(None),
                Activity.company_id.is_(None),
            )
        )
        await session.execute(
            update(Activity).where(Activity.contact_id == contact.id).values(contact_id=None)
        )
        await session.execute(delete(DealContact).where(DealContact.contact_id == contact.id))
        await session.execute(delete(Address).where(Address.contact_id == contact.id))
        await search.unindex(session, [contact.id])
        await session.delete(contact)
    return Response(status_code=204)


@router.get(
    "/{contact_id}/timeline", response_model=Page[ActivityOut], summary="The contact's timeline"
)
async def contact_timeline(
    contact_id: str,
    request: Request,
    kind: str | None = Query(None, max_length=12),
    cursor: str | None = Cursor,
    limit: int = Limit,
    acc: Access = access("contact", "read"),
) -> Page[ActivityOut]:
    """Every activity on the contact, newest first (messages sent and received included)."""
    db = crm_db(request)
    contact = await _get(db, acc, contact_id)
    async with db.read(org_id=acc.principal.org_id) as session:
        stmt = activities.timeline(Activity.contact_id, contact.id)
        if kind:
            stmt = stmt.where(Activity.kind == kind)
        rows, next_cursor = await page(session, stmt, Activity, cursor, limit)
    return Page[ActivityOut](
        items=[ActivityOut.model_validate(a) for a in rows], next_cursor=next_cursor
    )


@router.get(
    "/{contact_id}/duplicates",
    response_model=list[DuplicateOut],
    summary="Contacts that look like the same person",
)
async def contact_duplicates(
    contact_id: str, request: Request, acc: Access = access("contact", "read")
) -> list[DuplicateOut]:
    """Same e-mail or phone, or a name that sounds the same; only contacts you may see."""
    db = crm_db(request)
    contact = await _get(db, acc, contact_id)
    async with db.read(org_id=acc.principal.org_id) as session:
        found = await contacts.duplicates(session, contact)
    return [DuplicateOut(contact=_out(c), reasons=reasons) for c, reasons in found if acc.allows(c)]


@router.post(
    "/{contact_id}/merge", response_model=ContactOut, summary="Merge another contact into this one"
)
async def merge_contact(
    contact_id: str,
    body: MergeIn,
    request: Request,
    acc: Access = access("contact", "write"),
) -> ContactOut:
    """Both histories are kept: every activity and deal of the other contact moves here;
    e-mails, phones and tags are united. The other contact remains as a pointer
    (`merged_into_id`). Needs write on both and delete on the other."""
    if body.other_id == contact_id:
        raise BadRequest("A contact cannot be merged into itself.")
    remover = Access(acc.principal, "contact", "delete")
    async with crm_db(request).transaction(org_id=acc.principal.org_id) as session:
        keep = acc.check(await session.get(Contact, contact_id))
        other = acc.check(await session.get(Contact, body.other_id))
        remover.check(other)
        for record in (keep, other):
            if record.merged_into_id:
                raise BadRequest(f"Contact {record.id} was already merged.", slug="already-merged")
        await contacts.merge(session, keep, other, acc.principal.subject)
    return _out(keep)


@router.get("/{contact_id}/score", response_model=ScoreOut, summary="The contact's lead score")
async def contact_score(
    contact_id: str, request: Request, acc: Access = access("contact", "read")
) -> ScoreOut:
    """0-100, from the org's model (or the rules while there is too little history), with
    the five features that moved it most."""
    db = crm_db(request)
    contact = await _get(db, acc, contact_id)
    async with db.read(org_id=acc.principal.org_id) as session:
        return ScoreOut.model_validate(await scoring.score(session, contact))


@router.post(
    "/{contact_id}/messages",
    response_model=MessageSentOut,
    status_code=202,
    summary="Text, WhatsApp or e-mail the contact (through VAS)",
)
async def message_contact(
    contact_id: str,
    body: MessageIn,
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
    acc: Access = access("contact", "read"),
) -> MessageSentOut:
    """Sent by VAS with your credentials (`vas:message:send` needed); recorded as a message
    on the contact's timeline, and on the deal's with `deal_id`. Its status follows VAS's
    events; replies from the contact's address land on the same timelines."""
    db = crm_db(request)
    sender = Access(acc.principal, "activity", "write")
    contact = await _get(db, acc, contact_id)
    if contact.merged_into_id:
        raise BadRequest(f"The contact was merged into {contact.merged_into_id}.")
    to = messaging.recipient(contact, body.channel, body.to)
    if body.deal_id:
        async with db.read(org_id=acc.principal.org_id) as session:
            await linked(session, reader(acc, "deal"), Deal, body.deal_id, "deal_id")
    probe = Activity(org_id=contact.org_id, owner_id=acc.principal.subject, id="")
    sender.check_values(probe, "message")
    message = await messaging.send(
        request,
        contact,
        channel=body.channel,
        to=to,
        body=body.body,
        subject=body.subject,
        deal_id=body.deal_id,
        idempotency_key=idempotency_key,
    )
    for attempt in (1, 2):  # VAS's status event may record the activity at the same time
        try:
            async with db.transaction(org_id=acc.principal.org_id) as session:
                activity = await messaging.record_outbound(
                    session,
                    contact,
                    acc.principal.subject,
                    message,
                    deal_id=body.deal_id,
                    subject=body.subject,
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
    return MessageSentOut(activity=ActivityOut.model_validate(activity), message=message)
