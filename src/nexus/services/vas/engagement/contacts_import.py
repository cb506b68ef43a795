"""Importing contacts from CSV, on the kernel's streaming import (`nexus.kernel.csv_import`).

Each row is normalized (addresses to E.164 and friends) and deduplicated on its addresses:
a row whose address belongs to a contact updates that contact (attributes merged, tags
added, addresses set), a new address creates one, and a row whose addresses belong to two
different contacts is refused. Importing the same file again changes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel import csv_import as ci
from nexus.kernel.db import utcnow
from nexus.kernel.events import Job
from nexus.kernel.ids import new_id
from nexus.kernel.service import HandlerContext
from nexus.services.vas.addresses import CHANNELS, InvalidAddress, normalize
from nexus.services.vas.engagement import contacts
from nexus.services.vas.engagement.contacts import ContactData
from nexus.services.vas.engagement.models import (
    Contact,
    ContactAddress,
    ContactImport,
    ContactImportError,
    ContactTag,
)

IMPORT_QUEUE = "vas.contacts_import"
IMPORT_ATTEMPTS = 5
_TRUE = frozenset({"1", "true", "yes", "y", "x", "t", "on", "opted out", "unsubscribed"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "off", "subscribed"})
_SPLIT = re.compile(r"[,;|]")
_KEY = re.compile(r"[^a-z0-9_]+")

FIELDS = (
    ci.ImportField(
        "phone", aliases=("mobile", "msisdn", "phone number", "telephone", "tel", "cell")
    ),
    ci.ImportField("sms", aliases=("sms number",)),
    ci.ImportField("whatsapp", aliases=("whatsapp number", "wa")),
    ci.ImportField("email", aliases=("e-mail", "mail", "email address")),
    ci.ImportField("telegram", aliases=("telegram id", "telegram chat id")),
    ci.ImportField("messenger", aliases=("messenger psid", "psid")),
    ci.ImportField("name", aliases=("full name", "contact name")),
    ci.ImportField("first_name", aliases=("first name", "given name", "firstname")),
    ci.ImportField("last_name", aliases=("last name", "surname", "family name", "lastname")),
    ci.ImportField("tags", aliases=("tag", "labels", "groups")),
    ci.ImportField("locale", aliases=("language", "lang")),
    ci.ImportField("timezone", aliases=("time zone", "tz")),
    ci.ImportField("opted_out", aliases=("opt out", "opted out", "unsubscribed", "optout")),
    ci.ImportField("attributes", description="a JSON object, merged into the attributes"),
)
ADDRESS_FIELDS = ("phone", *CHANNELS)
EXPORT_ONLY = frozenset({"id", "opted_out_channels", "created_at", "updated_at"})  # not attributes


def attribute_key(column: str) -> str | None:
    key = _KEY.sub("_", column.strip().lower()).strip("_")[:64]
    if not key:
        return None
    return key if not key[0].isdigit() else f"_{key}"


class ContactRows:
    """The `RowHandler` of contact imports."""

    fields = FIELDS

    def validate(self, row: ci.Row, import_: Any) -> ContactData:
        values, options = row.values, import_.options or {}
        column = import_.mapping.get

        addresses: dict[str, str] = {}
        region = options.get("default_region")
        for name in ADDRESS_FIELDS:
            raw = values.get(name)
            if not raw:
                continue
            channels = ("sms", "whatsapp") if name == "phone" else (name,)
            try:
                address = normalize(channels[0], raw, region)
            except InvalidAddress as exc:
                raise ci.RowInvalid(column(name), str(exc)) from None
            for channel in channels:
                if name != "phone" or not values.get(channel):
                    addresses[channel] = address
        if not addresses:
            raise ci.RowInvalid(
                None, "The row has no address (phone, whatsapp, email, telegram or messenger)."
            )
        name = values.get("name") or " ".join(
            v for v in (values.get("first_name"), values.get("last_name")) if v
        )
        data = ContactData(name=name[:200] or None, addresses=addresses)
        attributes: dict[str, Any] = {}
        if options.get("extra_columns", "attributes") == "attributes":
            for col, value in row.extra.items():
                key = attribute_key(col)
                if key and key not in EXPORT_ONLY:
                    attributes[key] = value
        if "attributes" in values:
            try:
                given = json.loads(values["attributes"])
            except ValueError:
                given = None
            if not isinstance(given, dict):
                raise ci.RowInvalid(column("attributes"), "Attributes must be a JSON object.")
            attributes.update(given)
        try:
            data.attributes = contacts.check_attributes(attributes) if attributes else None
            tags = _SPLIT.split(values.get("tags", "")) + list(options.get("tags") or [])
            data.tags = contacts.clean_tags(tags) or None
        except ValueError as exc:
            raise ci.RowInvalid(column("tags") if "tag" in str(exc) else None, str(exc)) from None
        if "locale" in values:
            data.locale = values["locale"][:16]
        if "timezone" in values:
            if values["timezone"] not in contacts.timezones():
                raise ci.RowInvalid(
                    column("timezone"), f"{values['timezone']!r} is not an IANA time zone."
                )
            data.timezone = values["timezone"]
        if "opted_out" in values:
            flag = values["opted_out"].lower()
            if flag not in _TRUE | _FALSE:
                raise ci.RowInvalid(column("opted_out"), f"{values['opted_out']!r} is not yes/no.")
            data.opted_out = flag in _TRUE
        return data

    async def write(
        self,
        session: AsyncSession,
        import_: Any,
        items: list[tuple[ci.Row, ContactData]],
        dry_run: bool,
    ) -> ci.Outcome:
        org_id = import_.org_id
        update_existing = (import_.options or {}).get("update_existing", True)
        outcome = ci.Outcome()
        await _analyze_if_due(session, import_.chunks)
        pairs = {pair for _, data in items for pair in data.addresses.items()}
        owner = await contacts.owners_of(session, org_id, pairs)
        new: dict[str, ContactData] = {}
        touched: dict[str, list[ContactData]] = {}
        for row, data in items:
            ids = {owner[p] for p in data.addresses.items() if p in owner}
            if len(ids) > 1:
                channels = sorted(ch for ch, a in data.addresses.items() if (ch, a) in owner)
                outcome.errors.append(
                    ci.RowError(
                        row.number,
                        import_.mapping.get(channels[-1]) or import_.mapping.get("phone"),
                        f"The {' and '.join(channels)} addresses belong to different contacts.",
                        row.raw,
                    )
                )
                continue
            if ids:
                cid = ids.pop()
                if cid in new:
                    _merge(new[cid], data)
                    outcome.unchanged += 1  # a duplicate row of a contact this file creates
                else:
                    touched.setdefault(cid, []).append(data)
            else:
                cid = new_id()
                new[cid] = data
            for pair in data.addresses.items():
                owner[pair] = cid
        outcome.created = len(new)
        await _insert_new(session, org_id, new)
        if touched:
            changed = await _update_existing(session, org_id, touched, update_existing)
            outcome.updated += changed
            outcome.unchanged += sum(len(rows) for rows in touched.values()) - changed
        return outcome


ANALYZE_AT_CHUNKS = frozenset({1, 4, 16, 64, 256})


async def _analyze_if_due(session: AsyncSession, chunks_done: int) -> None:
    """Refresh PostgreSQL's statistics of the contact tables while a big import grows
    them: planned as tiny, the address lookup scans the org's addresses for every value
    (an import went from thousands of rows/s to hundreds), and autovacuum may be late."""
    if session.bind.dialect.name == "postgresql" and chunks_done in ANALYZE_AT_CHUNKS:
        await session.execute(text("ANALYZE vas_contacts, vas_contact_addresses, vas_contact_tags"))


def _merge(into: ContactData, data: ContactData) -> None:
    into.name = data.name or into.name
    into.locale = data.locale or into.locale
    into.timezone = data.timezone or into.timezone
    if data.attributes:
        into.attributes = {**(into.attributes or {}), **data.attributes}
    if data.tags:
        into.tags = contacts.clean_tags([*(into.tags or []), *data.tags])
    into.addresses.update(data.addresses)
    if data.opted_out is not None:
        into.opted_out = data.opted_out


async def _insert_new(session: AsyncSession, org_id: str, new: dict[str, ContactData]) -> None:
    if not new:
        return
    now = utcnow()
    # Core inserts of the tables (executemany), not ORM bulk inserts: a third faster
    await session.execute(
        insert(Contact.__table__),
        [
            {
                "id": cid,
                "org_id": org_id,
                "name": d.name,
                "locale": d.locale,
                "timezone": d.timezone,
                "attributes": d.attributes or {},
                "created_at": now,
                "updated_at": now,
            }
            for cid, d in new.items()
        ],
    )
    await session.execute(
        insert(ContactAddress.__table__),
        [
            {"id": new_id(), "org_id": org_id, "contact_id": cid, "channel": ch, "address": a}
            for cid, d in new.items()
            for ch, a in d.addresses.items()
        ],
    )
    tags = [
        {"org_id": org_id, "contact_id": cid, "tag": t}
        for cid, d in new.items()
        for t in d.tags or []
    ]
    if tags:
        await session.execute(insert(ContactTag.__table__), tags)
    for d in new.values():
        if d.opted_out:
            await contacts.set_contact_consent(session, org_id, d.addresses, True, source="import")


async def _update_existing(
    session: AsyncSession, org_id: str, touched: dict[str, list[ContactData]], update: bool
) -> int:
    """Merge rows into existing contacts; how many contacts changed."""
    ids = list(touched)
    rows = {
        c.id: c
        for batch in contacts.batches(ids)
        for c in await session.scalars(
            select(Contact).where(Contact.org_id == org_id, Contact.id.in_(batch))
        )
    }
    addresses = await contacts.addresses_of(session, org_id, ids)
    tags = await contacts.tags_of(session, org_id, ids)
    changed = 0
    for cid, datas in touched.items():
        contact = rows.get(cid)
        if contact is None or not update:
            continue
        merged = ContactData(addresses={})
        for data in datas:
            _merge(merged, data)
        different = False
        for name in ("name", "locale", "timezone"):
            value = getattr(merged, name)
            if value is not None and value != getattr(contact, name):
                setattr(contact, name, value)
                different = True
        if merged.attributes:
            attributes = {**(contact.attributes or {}), **merged.attributes}
            if attributes != contact.attributes:
                contact.attributes = attributes
                different = True
        added = [t for t in merged.tags or [] if t not in tags[cid]]
        if added:
            await session.execute(
                insert(ContactTag), [{"org_id": org_id, "contact_id": cid, "tag": t} for t in added]
            )
            different = True
        moved = {ch: a for ch, a in merged.addresses.items() if addresses[cid].get(ch) != a}
        if moved:
            await contacts.write_addresses(session, org_id, cid, moved, set(), addresses[cid])
            different = True
        if merged.opted_out is not None:
            final = {**addresses[cid], **merged.addresses}
            if await contacts.set_contact_consent(
                session, org_id, final, merged.opted_out, source="import"
            ):
                different = True
        if different:
            contact.updated_at = utcnow()
            changed += 1
    return changed


HANDLER = ContactRows()


async def run_import_chunk(job: Job, ctx: HandlerContext) -> None:
    await ci.run_chunk(
        ctx.runtime.db("vas"),
        job,
        ContactImport,
        ContactImportError,
        HANDLER,
        max_attempts=IMPORT_ATTEMPTS,
    )
