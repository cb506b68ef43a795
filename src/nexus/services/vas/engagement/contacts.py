"""Contacts: who a campaign can reach, with tags, attributes and one normalized address per
channel. Consent is read from and written to the core's `vas_consents` (keyed by channel
and address), so a STOP received on a number and an opt-out set on its contact are the
same fact."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, delete, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import utcnow
from nexus.kernel.errors import Conflict, Problem
from nexus.kernel.ids import new_id
from nexus.services.vas.addresses import CHANNELS, PHONE_CHANNELS, InvalidAddress, normalize
from nexus.services.vas.engagement.models import Contact, ContactAddress, ContactTag
from nexus.services.vas.inbound import set_consent
from nexus.services.vas.models import Consent

MAX_TAGS = 50
MAX_ATTRIBUTES = 100
TAG = re.compile(r"^[\w][\w .:/-]{0,99}$", re.UNICODE)
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
IN_BATCH = 900  # values per IN list (SQLite's variable limit, with room to spare)


class InvalidContact(Problem):
    status = 422
    slug = "invalid-contact"


@dataclass
class ContactData:
    """A contact's fields as given (None: not given, leave as is)."""

    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] | None = None
    tags: list[str] | None = None
    addresses: dict[str, str] = field(default_factory=dict)  # channel -> normalized address
    opted_out: bool | None = None


def normalize_addresses(
    given: dict[str, str | None], region: str | None
) -> tuple[dict[str, str], set[str]]:
    """Normalized `{channel: address}` and the channels to remove (given as null/empty).
    `phone` fills sms and whatsapp unless those are given. Raises InvalidAddress whose
    text starts with the channel."""
    out: dict[str, str] = {}
    removed: set[str] = set()
    items = dict(given)
    phone = items.pop("phone", None)
    if phone:
        for channel in PHONE_CHANNELS:
            items.setdefault(channel, phone)
    for channel, raw in items.items():
        if channel not in CHANNELS:
            raise InvalidAddress(f"{channel}: unknown channel; use one of {', '.join(CHANNELS)}.")
        if raw is None or not raw.strip():
            removed.add(channel)
            continue
        try:
            out[channel] = normalize(channel, raw, region)
        except InvalidAddress as exc:
            raise InvalidAddress(f"{channel}: {exc}") from None
    return out, removed


@lru_cache(maxsize=1)
def timezones() -> frozenset[str]:
    """The IANA time zone names."""
    return frozenset(zoneinfo.available_timezones())


def clean_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag:
            continue
        if not TAG.match(tag):
            raise ValueError(
                f"{tag[:40]!r} is not a valid tag (letters, digits, _ .:/- and spaces)."
            )
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"At most {MAX_TAGS} tags per contact.")
    return out


def check_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"At most {MAX_ATTRIBUTES} attributes per contact.")
    for key, value in attributes.items():
        if not ATTRIBUTE_KEY.match(key):
            raise ValueError(f"{key[:40]!r} is not a valid attribute name (letters, digits, _).")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"Attribute {key!r}: values are strings, numbers or booleans.")
        if isinstance(value, str) and len(value) > 1000:
            raise ValueError(f"Attribute {key!r}: at most 1,000 characters.")
    return attributes


# -- reads -------------------------------------------------------------------------------------
def batches(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), IN_BATCH):
        yield values[i : i + IN_BATCH]


async def addresses_of(
    session: AsyncSession, org_id: str, contact_ids: list[str]
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {cid: {} for cid in contact_ids}
    for batch in batches(contact_ids):
        rows = await session.execute(
            select(ContactAddress.contact_id, ContactAddress.channel, ContactAddress.address).where(
                ContactAddress.org_id == org_id, ContactAddress.contact_id.in_(batch)
            )
        )
        for cid, channel, address in rows:
            out[cid][channel] = address
    return out


async def tags_of(
    session: AsyncSession, org_id: str, contact_ids: list[str]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {cid: [] for cid in contact_ids}
    for batch in batches(contact_ids):
        rows = await session.execute(
            select(ContactTag.contact_id, ContactTag.tag)
            .where(ContactTag.org_id == org_id, ContactTag.contact_id.in_(batch))
            .order_by(ContactTag.tag)
        )
        for cid, tag in rows:
            out[cid].append(tag)
    return out


def _by_channel(pairs: set[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for channel, address in sorted(pairs):
        out.setdefault(channel, []).append(address)
    return out


async def consents_of(
    session: AsyncSession, org_id: str, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], Consent]:
    out: dict[tuple[str, str], Consent] = {}
    # per channel, so the lookup walks the (org_id, channel, address) unique index
    for channel, addresses in _by_channel(pairs).items():
        for batch in batches(addresses):
            rows = await session.scalars(
                select(Consent).where(
                    Consent.org_id == org_id,
                    Consent.channel == channel,
                    Consent.address.in_(batch),
                )
            )
            for consent in rows:
                out[(consent.channel, consent.address)] = consent
    return out


async def owners_of(
    session: AsyncSession, org_id: str, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The contact id that holds each (channel, address) among `pairs`."""
    out: dict[tuple[str, str], str] = {}
    for channel, addresses in _by_channel(pairs).items():
        for batch in batches(addresses):
            rows = await session.execute(
                select(ContactAddress.address, ContactAddress.contact_id).where(
                    ContactAddress.org_id == org_id,
                    ContactAddress.channel == channel,
                    ContactAddress.address.in_(batch),
                )
            )
            for address, cid in rows:
                out[(channel, address)] = cid
    return out


def search(
    org_id: str,
    *,
    q: str | None = None,
    tags: list[str] | None = None,
    any_tags: list[str] | None = None,
    channel: str | None = None,
    attributes: dict[str, str] | None = None,
    ids: list[str] | None = None,
) -> Select[tuple[Contact]]:
    """Contacts of the org matching every filter given: a name or address containing `q`,
    all of `tags`, any of `any_tags`, an address on `channel`, attributes equal to values."""
    stmt = select(Contact).where(Contact.org_id == org_id)
    if q:
        text = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{text}%"
        stmt = stmt.where(
            or_(
                func.lower(Contact.name).like(pattern, escape="\\"),
                exists().where(
                    ContactAddress.org_id == org_id,
                    ContactAddress.contact_id == Contact.id,
                    func.lower(ContactAddress.address).like(pattern, escape="\\"),
                ),
            )
        )
    for tag in tags or []:
        stmt = stmt.where(
            exists().where(
                ContactTag.org_id == org_id,
                ContactTag.tag == tag,
                ContactTag.contact_id == Contact.id,
            )
        )
    if any_tags:
        stmt = stmt.where(
            exists().where(
                ContactTag.org_id == org_id,
                ContactTag.tag.in_(any_tags),
                ContactTag.contact_id == Contact.id,
            )
        )
    if channel:
        stmt = stmt.where(
            exists().where(
                ContactAddress.org_id == org_id,
                ContactAddress.contact_id == Contact.id,
                ContactAddress.channel == channel,
            )
        )
    for key, value in (attributes or {}).items():
        stmt = stmt.where(Contact.attributes[key].as_string() == value)
    if ids is not None:
        stmt = stmt.where(Contact.id.in_(ids))
    return stmt


# -- writes ------------------------------------------------------------------------------------
async def _claim_addresses(
    session: AsyncSession, org_id: str, contact_id: str, addresses: dict[str, str]
) -> None:
    owners = await owners_of(session, org_id, set(addresses.items()))
    taken = {pair: cid for pair, cid in owners.items() if cid != contact_id}
    if taken:
        (channel, address), other = next(iter(taken.items()))
        raise Conflict(
            f"The {channel} address {address} belongs to another contact.",
            slug="address-taken",
            contact_id=other,
            field=f"addresses.{channel}",
        )


async def create(session: AsyncSession, org_id: str, data: ContactData) -> Contact:
    await _claim_addresses(session, org_id, "", data.addresses)
    now = utcnow()
    contact = Contact(
        id=new_id(),
        org_id=org_id,
        name=data.name,
        locale=data.locale,
        timezone=data.timezone,
        attributes=data.attributes or {},
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    await session.flush()
    await write_addresses(session, org_id, contact.id, data.addresses, set(), {})
    if data.tags:
        await session.execute(
            insert(ContactTag),
            [{"org_id": org_id, "contact_id": contact.id, "tag": t} for t in data.tags],
        )
    if data.opted_out is not None:
        await set_contact_consent(session, org_id, data.addresses, data.opted_out, source="api")
    return contact


async def write_addresses(
    session: AsyncSession,
    org_id: str,
    contact_id: str,
    addresses: dict[str, str],
    removed: set[str],
    current: dict[str, str],
) -> None:
    gone = removed | {ch for ch, addr in addresses.items() if ch in current and current[ch] != addr}
    if gone:
        await session.execute(
            delete(ContactAddress).where(
                ContactAddress.org_id == org_id,
                ContactAddress.contact_id == contact_id,
                ContactAddress.channel.in_(gone),
            )
        )
    new = [
        {"id": new_id(), "org_id": org_id, "contact_id": contact_id, "channel": ch, "address": a}
        for ch, a in addresses.items()
        if current.get(ch) != a
    ]
    if new:
        await session.execute(insert(ContactAddress), new)


async def update(
    session: AsyncSession, contact: Contact, data: ContactData, removed: set[str]
) -> None:
    """Apply the fields given; attributes merge (a null value removes the key), tags and
    addresses given replace those of the same kind."""
    org_id = contact.org_id
    await _claim_addresses(session, org_id, contact.id, data.addresses)
    for name in ("name", "locale", "timezone"):
        value = getattr(data, name)
        if value is not None:
            setattr(contact, name, value or None)
    if data.attributes is not None:
        merged = dict(contact.attributes or {})
        for key, value in data.attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        contact.attributes = check_attributes(merged)
    current = (await addresses_of(session, org_id, [contact.id]))[contact.id]
    await write_addresses(session, org_id, contact.id, data.addresses, removed, current)
    if data.tags is not None:
        await session.execute(
            delete(ContactTag).where(
                ContactTag.org_id == org_id, ContactTag.contact_id == contact.id
            )
        )
        if data.tags:
            await session.execute(
                insert(ContactTag),
                [{"org_id": org_id, "contact_id": contact.id, "tag": t} for t in data.tags],
            )
    if data.opted_out is not None:
        final = {**current, **data.addresses}
        for channel in removed:
            final.pop(channel, None)
        await set_contact_consent(session, org_id, final, data.opted_out, source="api")
    contact.updated_at = utcnow()


async def remove(session: AsyncSession, contact: Contact) -> None:
    """Delete a contact, its addresses and tags (consent stays: it belongs to the address)."""
    for model in (ContactAddress, ContactTag):
        await session.execute(
            delete(model).where(
                and_(model.org_id == contact.org_id, model.contact_id == contact.id)  # type: ignore[attr-defined]
            )
        )
    await session.delete(contact)


async def set_contact_consent(
    session: AsyncSession,
    org_id: str,
    addresses: dict[str, str],
    opted_out: bool,
    *,
    source: str,
    channels: Iterable[str] | None = None,
) -> int:
    """Opt the contact's addresses (on `channels`, default all) out or back in, in the core's
    consent table. Returns how many addresses changed."""
    wanted = set(channels) if channels is not None else set(addresses)
    pairs = {(ch, a) for ch, a in addresses.items() if ch in wanted}
    current = await consents_of(session, org_id, pairs)
    changed = 0
    for channel, address in sorted(pairs):
        existing = current.get((channel, address))
        if existing is not None and existing.opted_out == opted_out:
            continue
        if existing is None and not opted_out:
            continue  # no record means opted in already
        await set_consent(session, org_id, channel, address, opted_out, source=source)
        changed += 1
    return changed
