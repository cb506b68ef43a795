"""Contacts: create and change them (addresses normalized, custom fields validated, the
search row and the address index kept in step, events emitted), find duplicates, merge."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import insert_ignore, utcnow
from nexus.kernel.events import emit
from nexus.kernel.ids import new_id
from nexus.services.crm import custom_fields, normalize, search
from nexus.services.crm.custom_fields import FieldErrors
from nexus.services.crm.models import Activity, Address, Company, Contact, DealContact, SearchDoc

FIELDS = ("first_name", "last_name", "company_id", "owner_id", "lifecycle_stage", "lead_source")


def normalize_addresses(
    emails: list[str] | None, phones: list[str] | None, region: str | None
) -> tuple[list[str] | None, list[str] | None]:
    errors: list[dict[str, str]] = []
    out_emails = out_phones = None
    if emails is not None:
        out_emails = []
        for i, value in enumerate(emails):
            try:
                out_emails.append(normalize.email(value))
            except normalize.InvalidValue as exc:
                errors.append({"field": f"emails.{i}", "message": str(exc), "code": "invalid"})
    if phones is not None:
        out_phones = []
        for i, value in enumerate(phones):
            try:
                out_phones.append(normalize.phone(value, region))
            except normalize.InvalidValue as exc:
                errors.append({"field": f"phones.{i}", "message": str(exc), "code": "invalid"})
    if errors:
        raise FieldErrors(errors)
    return (
        list(dict.fromkeys(out_emails)) if out_emails is not None else None,
        list(dict.fromkeys(out_phones)) if out_phones is not None else None,
    )


def _tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(t.strip()[:100] for t in tags if t.strip()))


async def reindex(session: AsyncSession, contact: Contact) -> None:
    """Bring the address index and the search row in line with the contact."""
    await session.execute(delete(Address).where(Address.contact_id == contact.id))
    if contact.merged_into_id:
        await search.unindex(session, [contact.id])
        return
    rows = [
        {"id": new_id(), "org_id": contact.org_id, "contact_id": contact.id, "kind": k, "value": v}
        for k, values in (("email", contact.emails), ("phone", contact.phones))
        for v in values
    ]
    await insert_ignore(session, Address, rows)
    company = None
    if contact.company_id:
        company = await session.scalar(select(Company.name).where(Company.id == contact.company_id))
    await search.index(session, [search.doc_for(contact, company)])


async def create(
    session: AsyncSession, org_id: str, actor: str, data: dict[str, Any], region: str | None
) -> Contact:
    emails, phones = normalize_addresses(data.get("emails", []), data.get("phones", []), region)
    fields = await custom_fields.definitions(session, org_id, "contact")
    contact = Contact(
        id=new_id(),
        org_id=org_id,
        **{k: data.get(k) for k in FIELDS if k != "owner_id"},
        owner_id=data.get("owner_id") or actor,
        emails=emails or [],
        phones=phones or [],
        tags=_tags(data.get("tags") or []),
        custom=custom_fields.validate(fields, data.get("custom") or {}),
        consent=data.get("consent") or {},
    )
    if not contact.lifecycle_stage:
        contact.lifecycle_stage = "lead"
    session.add(contact)
    await session.flush()
    await reindex(session, contact)
    emit(
        session,
        "nexus.crm.contact.created",
        {"contact_id": contact.id, "owner_id": contact.owner_id},
        org_id=org_id,
    )
    return contact


async def update(
    session: AsyncSession, contact: Contact, data: dict[str, Any], region: str | None
) -> list[str]:
    """Apply the given fields; returns the names of those that changed."""
    changed: list[str] = []
    emails, phones = normalize_addresses(data.get("emails"), data.get("phones"), region)
    for name, value in (("emails", emails), ("phones", phones)):
        if value is not None and value != getattr(contact, name):
            setattr(contact, name, value)
            changed.append(name)
    for name in FIELDS:
        if name in data and data[name] != getattr(contact, name):
            if name in ("owner_id", "lifecycle_stage") and data[name] is None:
                continue
            setattr(contact, name, data[name])
            changed.append(name)
    if data.get("tags") is not None and _tags(data["tags"]) != contact.tags:
        contact.tags = _tags(data["tags"])
        changed.append("tags")
    if data.get("consent") is not None and data["consent"] != contact.consent:
        contact.consent = data["consent"]
        changed.append("consent")
    if data.get("custom") is not None:
        fields = await custom_fields.definitions(session, contact.org_id, "contact")
        custom = custom_fields.validate(fields, data["custom"], current=contact.custom)
        if custom != contact.custom:
            contact.custom = custom
            changed.append("custom")
    if changed:
        contact.updated_at = utcnow()
        await session.flush()
        await reindex(session, contact)
        emit(
            session,
            "nexus.crm.contact.updated",
            {"contact_id": contact.id, "changed": changed},
            org_id=contact.org_id,
        )
    return changed


async def by_address(session: AsyncSession, org_id: str, kind: str, value: str) -> list[Contact]:
    ids = select(Address.contact_id).where(
        Address.org_id == org_id, Address.kind == kind, Address.value == value
    )
    rows = await session.scalars(
        select(Contact).where(Contact.id.in_(ids), Contact.merged_into_id.is_(None))
    )
    return list(rows)


async def duplicates(session: AsyncSession, contact: Contact) -> list[tuple[Contact, list[str]]]:
    """Other contacts that share an e-mail or phone, or whose name sounds the same."""
    reasons: dict[str, list[str]] = {}
    rows = await session.execute(
        select(Address.contact_id, Address.kind, Address.value).where(
            Address.org_id == contact.org_id,
            Address.contact_id != contact.id,
            or_(
                (Address.kind == "email") & Address.value.in_(contact.emails),
                (Address.kind == "phone") & Address.value.in_(contact.phones),
            ),
        )
    )
    for other_id, kind, value in rows:
        reasons.setdefault(other_id, []).append(f"same {kind} {value}")
    first, last = (
        normalize.sounds(contact.first_name or ""),
        normalize.sounds(contact.last_name or ""),
    )
    if first and last:
        sounds = f"{first.split()[0]} {last.split()[0]}"
        similar = await session.scalars(
            select(SearchDoc.object_id)
            .where(
                SearchDoc.org_id == contact.org_id,
                SearchDoc.object_type == "contact",
                SearchDoc.object_id != contact.id,
                SearchDoc.sounds.startswith(sounds),
            )
            .limit(50)
        )
        for other_id in similar:
            reasons.setdefault(other_id, []).append("similar name")
    if not reasons:
        return []
    others = await session.scalars(
        select(Contact).where(Contact.id.in_(list(reasons)), Contact.merged_into_id.is_(None))
    )
    return [(c, reasons[c.id]) for c in others]


async def merge(session: AsyncSession, keep: Contact, other: Contact, actor: str) -> None:
    """Merge `other` into `keep`: every activity and deal of `other` moves over, addresses
    and tags are united, empty fields are filled from `other`; `other` stays as a pointer
    (`merged_into_id`) so old links still resolve."""
    moved = await session.execute(
        sql_update(Activity).where(Activity.contact_id == other.id).values(contact_id=keep.id)
    )
    links = list(
        await session.scalars(select(DealContact).where(DealContact.contact_id == other.id))
    )
    have = set(
        await session.scalars(select(DealContact.deal_id).where(DealContact.contact_id == keep.id))
    )
    for link in links:
        await session.delete(link)
    await session.flush()
    session.add_all(
        DealContact(deal_id=link.deal_id, contact_id=keep.id, org_id=keep.org_id)
        for link in links
        if link.deal_id not in have
    )
    keep.emails = list(dict.fromkeys([*keep.emails, *other.emails]))
    keep.phones = list(dict.fromkeys([*keep.phones, *other.phones]))
    keep.tags = list(dict.fromkeys([*keep.tags, *other.tags]))
    keep.custom = {**other.custom, **keep.custom}
    keep.consent = {**other.consent, **keep.consent}
    for name in ("first_name", "last_name", "company_id", "lead_source"):
        if not getattr(keep, name) and getattr(other, name):
            setattr(keep, name, getattr(other, name))
    other.merged_into_id = keep.id
    other.updated_at = keep.updated_at = utcnow()
    session.add(
        Activity(
            org_id=keep.org_id,
            kind="note",
            subject="Contacts merged",
            body=f"{other.name} ({other.id}) was merged into this contact.",
            contact_id=keep.id,
            owner_id=actor,
            data={"merged_id": other.id},
        )
    )
    await session.flush()
    await reindex(session, other)
    await reindex(session, keep)
    emit(
        session,
        "nexus.crm.contact.merged",
        {
            "contact_id": keep.id,
            "merged_id": other.id,
            "activities_moved": int(moved.rowcount or 0),  # type: ignore[attr-defined]
        },
        org_id=keep.org_id,
    )
