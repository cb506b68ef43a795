"""CSV import of contacts, companies and deals, on the kernel's streaming import
(`nexus.kernel.csv_import`: upload to disk, mapping, chunked job, dry run, error report).

Rows are matched to existing records, so importing the same file twice changes nothing:
- contacts by any of their e-mails or phones;
- companies by domain, else by name (case-insensitive);
- deals by name within the same company (or among deals without a company).
A matched record gets the row's non-empty values; a new one is created, owned by the
importer unless an `owner_id` column says otherwise. Custom fields import from columns
named after their key (`cf.<key>` or just `<key>`) and are validated like any write.
An importer restricted to its own records cannot change others' records nor give
records to others: such rows are refused with the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel import csv_import as ci
from nexus.kernel.db import scope_to_org
from nexus.kernel.events import Job
from nexus.kernel.service import HandlerContext
from nexus.services.crm import companies, contacts, custom_fields, deals, normalize
from nexus.services.crm.custom_fields import FieldErrors
from nexus.services.crm.models import (
    Company,
    Contact,
    CustomField,
    Deal,
    Import,
    ImportRowError,
    Pipeline,
    Stage,
)

QUEUE = "crm.import"
OBJECTS = {"contacts": "contact", "companies": "company", "deals": "deal"}
LIFECYCLE = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other")
F = ci.ImportField

CONTACT_FIELDS = (
    F("email", aliases=("e-mail", "email address", "mail", "emails")),
    F("phone", aliases=("mobile", "phone number", "telephone", "tel", "phones")),
    F("name", aliases=("full name", "contact name")),
    F("first_name", aliases=("first name", "given name", "firstname")),
    F("last_name", aliases=("last name", "surname", "family name", "lastname")),
    F("company", aliases=("company name", "organization", "account")),
    F("company_domain", aliases=("website", "domain")),
    F("lifecycle_stage", aliases=("lifecycle", "stage")),
    F("lead_source", aliases=("source",)),
    F("tags", aliases=("tag", "labels")),
    F("owner_id", aliases=("owner",)),
)
COMPANY_FIELDS = (
    F("name", required=True, aliases=("company", "company name")),
    F("domain", aliases=("website", "url")),
    F("industry"),
    F("size", aliases=("employees", "headcount")),
    F("owner_id", aliases=("owner",)),
)
DEAL_FIELDS = (
    F("name", required=True, aliases=("deal", "deal name", "title")),
    F("amount", aliases=("value",)),
    F("currency"),
    F("pipeline"),
    F("stage"),
    F("status"),
    F("lost_reason"),
    F("expected_close", aliases=("close date", "expected close date")),
    F("contact_email", aliases=("contact", "email")),
    F("company_domain", aliases=("company", "domain", "website")),
    F("owner_id", aliases=("owner",)),
)
BASE_FIELDS = {"contacts": CONTACT_FIELDS, "companies": COMPANY_FIELDS, "deals": DEAL_FIELDS}


def fields_for(object_name: str, custom: list[CustomField]) -> tuple[ci.ImportField, ...]:
    return BASE_FIELDS[object_name] + tuple(F(f"cf.{f.key}", aliases=(f.key,)) for f in custom)


def field_snapshot(custom: list[CustomField]) -> dict[str, Any]:
    """The custom fields as the job validates against them (kept in the import's options)."""
    return {f.key: {"type": f.type, "options": f.options, "required": f.required} for f in custom}


def _definitions(options: dict[str, Any]) -> dict[str, CustomField]:
    return {
        key: CustomField(key=key, type=d["type"], options=d["options"], required=False)
        for key, d in (options.get("fields") or {}).items()
    }


@dataclass
class Item:
    data: dict[str, Any]
    keys: list[tuple[str, str]] = field(default_factory=list)  # contacts: (kind, address)


class Rows:
    """The `RowHandler` of one CRM import (the object type comes from its options)."""

    def __init__(self, object_name: str) -> None:
        self.object_name = object_name
        self.fields = BASE_FIELDS[object_name]

    # -- validate (in a thread, no database) ---------------------------------------------
    def validate(self, row: ci.Row, import_: Any) -> Item:
        values, options = row.values, import_.options or {}
        custom_values = {k[3:]: v for k, v in values.items() if k.startswith("cf.")}
        try:
            custom = custom_fields.validate(_definitions(options), custom_values, prefix="cf")
        except FieldErrors as exc:
            error = exc.extra["errors"][0]
            raise ci.RowInvalid(_column(import_, error["field"]), error["message"]) from None
        owner = values.get("owner_id")
        if owner and not options.get("unrestricted") and owner != options.get("actor"):
            raise ci.RowInvalid(
                _column(import_, "owner_id"), "you may only import your own records"
            )
        item = getattr(self, f"_{self.object_name}")(values, options, import_)
        item.data["custom"] = custom
        if owner:
            item.data["owner_id"] = owner[:36]
        return item

    def _contacts(self, values: dict[str, str], options: dict[str, Any], imp: Any) -> Item:
        def split(name: str) -> list[str]:
            return [
                v.strip() for v in values.get(name, "").replace(",", ";").split(";") if v.strip()
            ]

        emails, phones = [], []
        for value in split("email"):
            try:
                emails.append(normalize.email(value))
            except normalize.InvalidValue as exc:
                raise ci.RowInvalid(_column(imp, "email"), str(exc)) from None
        for value in split("phone"):
            try:
                phones.append(normalize.phone(value, options.get("region")))
            except normalize.InvalidValue as exc:
                raise ci.RowInvalid(_column(imp, "phone"), str(exc)) from None
        first, last = values.get("first_name"), values.get("last_name")
        if not (first or last) and values.get("name"):
            first, _, last = values["name"].partition(" ")
        if not (first or last or emails or phones):
            raise ci.RowInvalid(None, "a contact needs a name, an e-mail or a phone")
        stage = values.get("lifecycle_stage", "").lower() or None
        if stage and stage not in LIFECYCLE:
            raise ci.RowInvalid(_column(imp, "lifecycle_stage"), f"one of {', '.join(LIFECYCLE)}")
        domain = None
        if values.get("company_domain"):
            domain = _domain(values["company_domain"], imp, "company_domain")
        data = {
            "first_name": (first or None) and first[:150],
            "last_name": (last or None) and last[:150],
            "emails": emails,
            "phones": phones,
            "lifecycle_stage": stage,
            "lead_source": values.get("lead_source", "")[:100] or None,
            "tags": split("tags"),
            "company": values.get("company", "")[:300] or None,
            "company_domain": domain,
        }
        return Item(data, [("email", e) for e in emails] + [("phone", p) for p in phones])

    def _companies(self, values: dict[str, str], options: dict[str, Any], imp: Any) -> Item:
        domain = _domain(values["domain"], imp, "domain") if values.get("domain") else None
        size = None
        if values.get("size"):
            try:
                size = int(float(values["size"].replace(",", "")))
            except ValueError:
                raise ci.RowInvalid(_column(imp, "size"), "must be a number") from None
        data = {
            "name": values["name"][:300],
            "domain": domain,
            "industry": values.get("industry", "")[:100] or None,
            "size": size,
        }
        return Item(data)

    def _deals(self, values: dict[str, str], options: dict[str, Any], imp: Any) -> Item:
        amount = Decimal(0)
        if values.get("amount"):
            try:
                amount = Decimal(values["amount"].replace(",", "").lstrip("$€£"))
            except InvalidOperation:
                raise ci.RowInvalid(_column(imp, "amount"), "must be a number") from None
            if amount < 0 or amount > Decimal("1e15"):
                raise ci.RowInvalid(_column(imp, "amount"), "out of range")
        close = None
        if values.get("expected_close"):
            try:
                close = dt.date.fromisoformat(values["expected_close"])
            except ValueError:
                raise ci.RowInvalid(_column(imp, "expected_close"), "a date, YYYY-MM-DD") from None
        status = values.get("status", "open").lower()
        if status not in ("open", "won", "lost"):
            raise ci.RowInvalid(_column(imp, "status"), "open, won or lost")
        currency = values.get("currency", "USD").upper()
        if len(currency) != 3 or not currency.isalpha():
            raise ci.RowInvalid(_column(imp, "currency"), "a three-letter currency code")
        email = None
        if values.get("contact_email"):
            try:
                email = normalize.email(values["contact_email"])
            except normalize.InvalidValue as exc:
                raise ci.RowInvalid(_column(imp, "contact_email"), str(exc)) from None
        domain = None
        if values.get("company_domain"):
            domain = _domain(values["company_domain"], imp, "company_domain")
        data = {
            "name": values["name"][:300],
            "amount": amount.quantize(Decimal("0.01")),
            "currency": currency,
            "pipeline": values.get("pipeline"),
            "stage": values.get("stage"),
            "status": status,
            "lost_reason": values.get("lost_reason") or ("imported" if status == "lost" else None),
            "expected_close": close,
            "contact_email": email,
            "company_domain": domain,
        }
        return Item(data)

    # -- write (one chunk, in one transaction) -------------------------------------------
    async def write(
        self, session: AsyncSession, import_: Any, items: list[tuple[ci.Row, Item]], dry_run: bool
    ) -> ci.Outcome:
        scope_to_org(session, import_.org_id)
        outcome = ci.Outcome()
        writer = getattr(self, f"_write_{self.object_name}")
        for row, item in items:
            try:
                async with session.begin_nested():
                    result = await writer(session, import_, item)
            except (FieldErrors, ci.RowInvalid) as exc:
                reason = exc.detail if isinstance(exc, FieldErrors) else exc.reason
                outcome.errors.append(ci.RowError(row.number, None, reason, row.raw))
                continue
            except Exception as exc:  # a conflict on one row must not fail the chunk
                outcome.errors.append(ci.RowError(row.number, None, _reason(exc), row.raw))
                continue
            setattr(outcome, result, getattr(outcome, result) + 1)
        return outcome

    async def _write_contacts(self, session: AsyncSession, imp: Any, item: Item) -> str:
        options, data = imp.options, dict(item.data)
        existing: Contact | None = None
        for kind, value in item.keys:
            found = await contacts.by_address(session, imp.org_id, kind, value)
            if found:
                existing = found[0]
                break
        company_id = await _company_for(
            session, imp, data.pop("company"), data.pop("company_domain")
        )
        if company_id:
            data["company_id"] = company_id
        actor = options["actor"]
        if existing is None:
            if data.get("lifecycle_stage") is None:
                data.pop("lifecycle_stage")
            await contacts.create(session, imp.org_id, actor, data, options.get("region"))
            return "created"
        _check_owner(existing, options)
        patch = {k: v for k, v in data.items() if v not in (None, [], {})}
        patch["emails"] = list(dict.fromkeys([*existing.emails, *data["emails"]]))
        patch["phones"] = list(dict.fromkeys([*existing.phones, *data["phones"]]))
        patch["tags"] = list(dict.fromkeys([*existing.tags, *data["tags"]]))
        changed = await contacts.update(session, existing, patch, options.get("region"))
        return "updated" if changed else "unchanged"

    async def _write_companies(self, session: AsyncSession, imp: Any, item: Item) -> str:
        data = dict(item.data)
        existing = await _find_company(session, data["domain"], data["name"])
        if existing is None:
            await companies.create(session, imp.org_id, imp.options["actor"], data)
            return "created"
        _check_owner(existing, imp.options)
        patch = {k: v for k, v in data.items() if v not in (None, {})}
        if existing.domain and "domain" in patch:
            patch.pop("domain")  # matched by name: keep its domain
        changed = await companies.update(session, existing, patch)
        return "updated" if changed else "unchanged"

    async def _write_deals(self, session: AsyncSession, imp: Any, item: Item) -> str:
        data = dict(item.data)
        company_id = await _company_for(session, imp, None, data.pop("company_domain"))
        contact_ids: list[str] = []
        email = data.pop("contact_email")
        if email:
            found = await contacts.by_address(session, imp.org_id, "email", email)
            if not found:
                raise ci.RowInvalid(None, f"no contact with the e-mail {email}")
            contact_ids = [found[0].id]
        pipeline_name, stage_name = data.pop("pipeline"), data.pop("stage")
        pipeline = await _pipeline(session, imp.org_id, pipeline_name)
        stage_id = await _stage(session, pipeline.id, stage_name)
        status = data.pop("status")
        existing = await session.scalar(
            select(Deal).where(
                func.lower(Deal.name) == data["name"].lower(),
                Deal.company_id == company_id if company_id else Deal.company_id.is_(None),
            )
        )
        actor = imp.options["actor"]
        patch = {
            **{k: v for k, v in data.items() if v is not None},
            "company_id": company_id,
            "stage_id": stage_id,
            "status": status,
        }
        if contact_ids:
            patch["contact_ids"] = contact_ids
        if existing is None:
            deal = await deals.create(
                session,
                imp.org_id,
                actor,
                {**patch, "pipeline_id": pipeline.id, "status": "open"},
            )
            if status != "open":
                closing = {"status": status, "lost_reason": patch.get("lost_reason")}
                await deals.update(session, deal, closing, actor)
            return "created"
        _check_owner(existing, imp.options)
        if existing.pipeline_id != pipeline.id:
            raise ci.RowInvalid(None, "the deal exists in another pipeline")
        before = await deals.contact_ids(session, [existing.id])
        if contact_ids and before[existing.id] == contact_ids:
            patch.pop("contact_ids")
        changed = await deals.update(session, existing, patch, actor)
        return "updated" if changed else "unchanged"


def _column(imp: Any, name: str) -> str:
    return str(imp.mapping.get(name, name))


def _domain(value: str, imp: Any, name: str) -> str:
    try:
        return normalize.domain(value)
    except normalize.InvalidValue as exc:
        raise ci.RowInvalid(_column(imp, name), str(exc)) from None


def _reason(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return str(detail or "the row could not be written")[:500]


def _check_owner(record: Any, options: dict[str, Any]) -> None:
    if not options.get("unrestricted") and record.owner_id != options.get("actor"):
        raise ci.RowInvalid(None, f"matches {record.id}, which belongs to another owner")


async def _find_company(
    session: AsyncSession, domain: str | None, name: str | None
) -> Company | None:
    if domain:
        found = await session.scalar(select(Company).where(Company.domain == domain))
        if found is not None:
            return found
    if name:
        return await session.scalar(
            select(Company)
            .where(
                func.lower(Company.name) == name.strip().lower(),
                Company.merged_into_id.is_(None),
            )
            .limit(1)
        )
    return None


async def _company_for(
    session: AsyncSession, imp: Any, name: str | None, domain: str | None
) -> str | None:
    """The company a row names (by domain or name), created when it does not exist."""
    if not (name or domain):
        return None
    found = await _find_company(session, domain, name)
    if found is not None:
        return found.id
    made = await companies.create(
        session, imp.org_id, imp.options["actor"], {"name": name or domain, "domain": domain}
    )
    return made.id


async def _pipeline(session: AsyncSession, org_id: str, name: str | None) -> Pipeline:
    if not name:
        return await deals.ensure_default_pipeline(session, org_id)
    found = await session.scalar(select(Pipeline).where(func.lower(Pipeline.name) == name.lower()))
    if found is None:
        raise ci.RowInvalid(None, f"no pipeline named {name!r}")
    return found


async def _stage(session: AsyncSession, pipeline_id: str, name: str | None) -> str | None:
    if not name:
        return None
    found = await session.scalar(
        select(Stage.id).where(
            Stage.pipeline_id == pipeline_id, func.lower(Stage.name) == name.lower()
        )
    )
    if found is None:
        raise ci.RowInvalid(None, f"no stage named {name!r} in the pipeline")
    return found


async def run(job: Job, ctx: HandlerContext) -> None:
    db = ctx.runtime.db("crm")
    async with db.read() as session:
        imp = await session.get(Import, job.payload["import_id"])
    if imp is None:
        return
    handler = Rows(imp.options["object"])
    await ci.run_chunk(db, job, Import, ImportRowError, handler, chunk_rows=1000)
