"""/api/v1/contacts: CRUD, consent, CSV import (background job) and streaming export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel import csv_import as ci
from nexus.kernel.auth import Principal, require
from nexus.kernel.db import Database
from nexus.kernel.errors import BadRequest, Conflict, Forbidden, NotFound
from nexus.kernel.http import large_body
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas.addresses import CHANNELS, InvalidAddress
from nexus.services.vas.engagement import contacts
from nexus.services.vas.engagement.contacts import ContactData, InvalidContact
from nexus.services.vas.engagement.contacts_import import FIELDS, IMPORT_QUEUE
from nexus.services.vas.engagement.models import Contact, ContactImport, ContactImportError
from nexus.services.vas.engagement.schemas import AddressOut, ConsentIn, ContactIn, ContactOut
from nexus.services.vas.state import vas_of

router = APIRouter(prefix="/contacts", tags=["contacts"])
MAX_IMPORT_BYTES = 2 * 1024**3
EXPORT_PAGE = 1000


def _db(request: Request) -> Database:
    return request.app.state.runtime.db("vas")  # type: ignore[no-any-return]


async def _data(
    request: Request, principal: Principal, body: ContactIn
) -> tuple[ContactData, set[str]]:
    org_id = principal.org_id
    if body.opted_out is not None and not principal.can("vas:consent:manage"):
        raise Forbidden(
            "Setting opted_out needs vas:consent:manage.", missing=["vas:consent:manage"]
        )
    region = body.region or (await vas_of(request.app.state.runtime).org(org_id)).default_region
    try:
        addresses, removed = contacts.normalize_addresses(dict(body.addresses), region)
    except InvalidAddress as exc:
        channel = str(exc).split(":", 1)[0]
        raise InvalidContact(str(exc), field=f"addresses.{channel}") from None
    try:
        tags = contacts.clean_tags(body.tags) if body.tags is not None else None
        if body.attributes is not None:
            contacts.check_attributes({k: v for k, v in body.attributes.items() if v is not None})
    except ValueError as exc:
        raise InvalidContact(str(exc)) from None
    if body.timezone and body.timezone not in contacts.timezones():
        raise InvalidContact(f"{body.timezone!r} is not an IANA time zone.", field="timezone")
    data = ContactData(
        name=body.name,
        locale=body.locale,
        timezone=body.timezone,
        attributes=body.attributes,
        tags=tags,
        addresses=addresses,
        opted_out=body.opted_out,
    )
    return data, removed


async def render(session: AsyncSession, org_id: str, rows: list[Contact]) -> list[ContactOut]:
    """Contacts with their tags, addresses and consent, in three queries for the page."""
    ids = [c.id for c in rows]
    addresses = await contacts.addresses_of(session, org_id, ids)
    tags = await contacts.tags_of(session, org_id, ids)
    pairs = {pair for a in addresses.values() for pair in a.items()}
    consents = await contacts.consents_of(session, org_id, pairs)
    out = []
    for c in rows:
        items = []
        for channel in CHANNELS:
            address = addresses[c.id].get(channel)
            if address is None:
                continue
            consent = consents.get((channel, address))
            items.append(
                AddressOut(
                    channel=channel,
                    address=address,
                    opted_out=bool(consent and consent.opted_out),
                    consent_source=consent.source if consent else None,
                    consent_updated_at=consent.updated_at if consent else None,
                )
            )
        out.append(
            ContactOut(
                id=c.id,
                name=c.name,
                locale=c.locale,
                timezone=c.timezone,
                attributes=c.attributes or {},
                tags=tags[c.id],
                addresses=items,
                created_at=c.created_at,
                updated_at=c.updated_at,
            )
        )
    return out


async def _get(session: AsyncSession, org_id: str, contact_id: str) -> Contact:
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.org_id != org_id:
        raise NotFound(f"No contact {contact_id}.")
    return contact


def _attribute_filters(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not contacts.ATTRIBUTE_KEY.match(key):
            raise BadRequest(f"attribute filters are key:value; {item[:60]!r} is not.")
        out[key] = value
    return out


# -- import and export (before /{contact_id}) --------------------------------------------------
@router.post(
    "/import",
    status_code=202,
    response_model=ci.ImportStatus,
    summary="Import contacts from a CSV file (the request body), in the background",
    responses={
        413: {"description": "Larger than 2 GiB"},
        422: {"description": "Not a CSV file, or no column for an address"},
    },
)
@large_body(MAX_IMPORT_BYTES)
async def import_contacts(
    request: Request,
    dry_run: bool = Query(False, description="Validate and count; write nothing."),
    mapping: str | None = Query(
        None, description='JSON {field: column}, e.g. {"phone": "Mobile"}; the rest by name.'
    ),
    tags: list[str] = Query([], description="Tags added to every imported contact."),
    region: str | None = Query(None, pattern=r"^[A-Z]{2}$", description="For national numbers."),
    update_existing: bool = Query(True, description="Update contacts matched by address."),
    extra_columns: str = Query("attributes", pattern="^(attributes|ignore)$"),
    filename: str = Query("", max_length=300),
    principal: Principal = require("vas:contact:manage"),
) -> ci.ImportStatus:
    """Send the file as the body (`Content-Type: text/csv`). Columns are matched to fields by
    name (phone, whatsapp, email, telegram, messenger, name, first_name, last_name, tags,
    locale, timezone, opted_out, attributes); other columns become attributes. Progress:
    `GET /contacts/imports/{id}`; refused rows: `GET /contacts/imports/{id}/errors`."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise ci.ImportProblem(
            "Send the CSV file itself as the body (Content-Type: text/csv), not a form.",
            status=415,
            slug="unsupported-media-type",
        )
    given: dict[str, str] | None = None
    if mapping:
        try:
            given = json.loads(mapping)
        except ValueError:
            given = None
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise ci.ImportProblem(
                "mapping must be a JSON object of field: column.", field="mapping"
            )
    try:
        cleaned_tags = contacts.clean_tags(t for item in tags for t in item.split(","))
    except ValueError as exc:
        raise ci.ImportProblem(str(exc), field="tags") from None
    runtime = request.app.state.runtime
    upload = await ci.save_upload(
        request.stream(),
        ci.import_dir(runtime.settings.data_dir, "vas"),
        max_bytes=MAX_IMPORT_BYTES,
        filename=filename,
    )
    try:
        resolved = ci.resolve_mapping(upload.header, FIELDS, given)
        if not any(f in resolved for f in ("phone", *CHANNELS)):
            raise ci.ImportProblem(
                "No address column: name one phone, sms, whatsapp, email, telegram or messenger.",
                field="mapping",
            )
        org_region = region or (await vas_of(runtime).org(principal.org_id)).default_region
        async with _db(request).transaction(org_id=principal.org_id) as session:
            imp = ContactImport(
                org_id=principal.org_id,
                mapping=resolved,
                dry_run=dry_run,
                options={
                    "tags": cleaned_tags,
                    "default_region": org_region,
                    "update_existing": update_existing,
                    "extra_columns": extra_columns,
                },
                **upload.columns(),
            )
            session.add(imp)
            await session.flush()
            await ci.start(session, imp, IMPORT_QUEUE)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    return ci.ImportStatus.model_validate(imp)


@router.get("/imports", response_model=Page[ci.ImportStatus], summary="Contact imports")
async def list_imports(
    request: Request,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:contact:read"),
) -> Page[ci.ImportStatus]:
    stmt = select(ContactImport).where(ContactImport.org_id == principal.org_id)
    async with _db(request).read() as session:
        rows = list(
            await session.scalars(paginate(stmt, ContactImport.id, cursor, limit, descending=True))
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[ci.ImportStatus.model_validate(r) for r in items], next_cursor=next_cursor)


async def _import(request: Request, org_id: str, import_id: str) -> ContactImport:
    async with _db(request).read(org_id=org_id) as session:
        imp = await session.get(ContactImport, import_id)
    if imp is None or imp.org_id != org_id:
        raise NotFound(f"No import {import_id}.")
    return imp


@router.get("/imports/{import_id}", response_model=ci.ImportStatus, summary="An import's progress")
async def get_import(
    import_id: str, request: Request, principal: Principal = require("vas:contact:read")
) -> ci.ImportStatus:
    return ci.ImportStatus.model_validate(await _import(request, principal.org_id, import_id))


@router.get(
    "/imports/{import_id}/errors",
    summary="The refused rows of an import, as CSV (row, column, reason, the row's values)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def import_errors(
    import_id: str, request: Request, principal: Principal = require("vas:contact:read")
) -> StreamingResponse:
    imp = await _import(request, principal.org_id, import_id)
    return StreamingResponse(
        ci.error_report(_db(request), ContactImportError, imp),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="import-{imp.id}-errors.csv"'},
    )


@router.post(
    "/imports/{import_id}/cancel", response_model=ci.ImportStatus, summary="Stop an import"
)
async def cancel_import(
    import_id: str, request: Request, principal: Principal = require("vas:contact:manage")
) -> ci.ImportStatus:
    async with _db(request).transaction(org_id=principal.org_id) as session:
        imp = await session.get(ContactImport, import_id, with_for_update=True)
        if imp is None:
            raise NotFound(f"No import {import_id}.")
        if not await ci.cancel(session, imp):
            raise Conflict(f"The import is {imp.status} already.")
    ci.remove_file(imp)
    return ci.ImportStatus.model_validate(imp)


EXPORT_COLUMNS = ["id", "name", *CHANNELS, "tags", "locale", "timezone", "attributes"]


async def _export(db: Database, org_id: str, filters: dict[str, Any]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*EXPORT_COLUMNS, "opted_out_channels", "created_at"])
    last: str | None = None
    while True:
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        stmt = contacts.search(org_id, **filters)
        if last is not None:
            stmt = stmt.where(Contact.id > last)
        async with db.read() as session:
            rows = list(await session.scalars(stmt.order_by(Contact.id).limit(EXPORT_PAGE)))
            if not rows:
                return
            for c in await render(session, org_id, rows):
                by_channel = {a.channel: a for a in c.addresses}
                writer.writerow(
                    [
                        c.id,
                        c.name or "",
                        *(by_channel[ch].address if ch in by_channel else "" for ch in CHANNELS),
                        ",".join(c.tags),
                        c.locale or "",
                        c.timezone or "",
                        json.dumps(c.attributes, ensure_ascii=False) if c.attributes else "",
                        " ".join(a.channel for a in c.addresses if a.opted_out),
                        c.created_at.isoformat(),
                    ]
                )
        last = rows[-1].id


@router.get(
    "/export",
    summary="Every matching contact as CSV, streamed (re-importable)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_contacts(
    request: Request,
    q: str | None = Query(None, max_length=200),
    tag: list[str] = Query([]),
    channel: str | None = Query(None, pattern="^(sms|whatsapp|telegram|messenger|email)$"),
    attribute: list[str] = Query([], description="key:value"),
    principal: Principal = require("vas:contact:read"),
) -> StreamingResponse:
    filters = {"q": q, "tags": tag, "channel": channel, "attributes": _attribute_filters(attribute)}
    return StreamingResponse(
        _export(_db(request), principal.org_id, filters),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="contacts.csv"'},
    )


# -- CRUD --------------------------------------------------------------------------------------
@router.post("", status_code=201, response_model=ContactOut, summary="Create a contact")
async def create_contact(
    body: ContactIn, request: Request, principal: Principal = require("vas:contact:manage")
) -> ContactOut:
    data, _ = await _data(request, principal, body)
    if not data.addresses:
        raise InvalidContact("Give at least one address.", field="addresses")
    async with _db(request).transaction(org_id=principal.org_id) as session:
        contact = await contacts.create(session, principal.org_id, data)
        return (await render(session, principal.org_id, [contact]))[0]


@router.get("", response_model=Page[ContactOut], summary="Search contacts")
async def list_contacts(
    request: Request,
    q: str | None = Query(None, max_length=200, description="In the name or an address."),
    tag: list[str] = Query([], description="Has every tag given."),
    channel: str | None = Query(None, pattern="^(sms|whatsapp|telegram|messenger|email)$"),
    attribute: list[str] = Query([], description="key:value, attribute equal to value"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:contact:read"),
) -> Page[ContactOut]:
    stmt = contacts.search(
        principal.org_id,
        q=q,
        tags=tag,
        channel=channel,
        attributes=_attribute_filters(attribute),
    )
    async with _db(request).read() as session:
        rows = list(
            await session.scalars(paginate(stmt, Contact.id, cursor, limit, descending=True))
        )
        items, next_cursor = page_of(rows, limit)
        return Page(items=await render(session, principal.org_id, items), next_cursor=next_cursor)


@router.get("/{contact_id}", response_model=ContactOut, summary="A contact")
async def get_contact(
    contact_id: str, request: Request, principal: Principal = require("vas:contact:read")
) -> ContactOut:
    async with _db(request).read(org_id=principal.org_id) as session:
        contact = await _get(session, principal.org_id, contact_id)
        return (await render(session, principal.org_id, [contact]))[0]


@router.patch("/{contact_id}", response_model=ContactOut, summary="Change a contact")
async def patch_contact(
    contact_id: str,
    body: ContactIn,
    request: Request,
    principal: Principal = require("vas:contact:manage"),
) -> ContactOut:
    """Fields given replace theirs; `attributes` merge (null removes a key); an address set
    to null is removed."""
    data, removed = await _data(request, principal, body)
    async with _db(request).transaction(org_id=principal.org_id) as session:
        contact = await _get(session, principal.org_id, contact_id)
        await contacts.update(session, contact, data, removed)
        return (await render(session, principal.org_id, [contact]))[0]


@router.delete("/{contact_id}", status_code=204, summary="Delete a contact")
async def delete_contact(
    contact_id: str, request: Request, principal: Principal = require("vas:contact:manage")
) -> Response:
    async with _db(request).transaction(org_id=principal.org_id) as session:
        await contacts.remove(session, await _get(session, principal.org_id, contact_id))
    return Response(status_code=204)


@router.post(
    "/{contact_id}/consent",
    response_model=ContactOut,
    summary="Opt a contact's addresses out of channels (or back in)",
)
async def set_consent(
    contact_id: str,
    body: ConsentIn,
    request: Request,
    principal: Principal = require("vas:contact:manage", "vas:consent:manage"),
) -> ContactOut:
    """The same opt-out state as an inbound STOP: sends to these addresses are rejected."""
    async with _db(request).transaction(org_id=principal.org_id) as session:
        contact = await _get(session, principal.org_id, contact_id)
        addresses = (await contacts.addresses_of(session, principal.org_id, [contact.id]))[
            contact.id
        ]
        await contacts.set_contact_consent(
            session,
            principal.org_id,
            addresses,
            body.opted_out,
            source="api",
            channels=body.channels,
        )
        return (await render(session, principal.org_id, [contact]))[0]
