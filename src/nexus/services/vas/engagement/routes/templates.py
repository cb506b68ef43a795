"""/api/v1/templates: per-channel message templates (sandboxed Jinja2) and their preview."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nexus.kernel.auth import Principal, require
from nexus.kernel.db import Database, utcnow
from nexus.kernel.errors import Conflict, NotFound
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas import encoding
from nexus.services.vas.engagement import contacts, templates
from nexus.services.vas.engagement.models import Contact, Template
from nexus.services.vas.engagement.schemas import (
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
)
from nexus.services.vas.state import vas_of

router = APIRouter(prefix="/templates", tags=["templates"])


def _db(request: Request) -> Database:
    return request.app.state.runtime.db("vas")  # type: ignore[no-any-return]


def _check(template: Template) -> None:
    templates.check(
        template.channel,
        template.body,
        template.subject,
        template.variables,
        template.provider_template,
    )


async def _get(session: Any, org_id: str, template_id: str) -> Template:
    template = await session.get(Template, template_id)
    if template is None or template.org_id != org_id:
        raise NotFound(f"No template {template_id}.")
    return template  # type: ignore[no-any-return]


@router.post("", status_code=201, response_model=TemplateOut, summary="Create a template")
async def create_template(
    body: TemplateIn, request: Request, principal: Principal = require("vas:template:manage")
) -> Template:
    """The body (and e-mail subject) is Jinja2 run in a sandbox: `{{ contact.name }}`,
    `{{ contact.attributes.plan }}` and the declared variables; anything unsafe is refused."""
    now = utcnow()
    data = body.model_dump(mode="json")
    template = Template(org_id=principal.org_id, created_at=now, updated_at=now, **data)
    _check(template)
    try:
        async with _db(request).transaction(org_id=principal.org_id) as session:
            session.add(template)
    except IntegrityError:
        raise Conflict(f"A template named {body.name!r} exists.", slug="template-exists") from None
    return template


@router.get("", response_model=Page[TemplateOut], summary="Templates")
async def list_templates(
    request: Request,
    channel: str | None = Query(None, pattern="^(sms|whatsapp|telegram|messenger|email)$"),
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:template:read"),
) -> Page[TemplateOut]:
    stmt = select(Template).where(Template.org_id == principal.org_id)
    if channel:
        stmt = stmt.where(Template.channel == channel)
    async with _db(request).read() as session:
        rows = list(
            await session.scalars(paginate(stmt, Template.id, cursor, limit, descending=True))
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[TemplateOut.model_validate(t) for t in items], next_cursor=next_cursor)


@router.get("/{template_id}", response_model=TemplateOut, summary="A template")
async def get_template(
    template_id: str, request: Request, principal: Principal = require("vas:template:read")
) -> Template:
    async with _db(request).read(org_id=principal.org_id) as session:
        return await _get(session, principal.org_id, template_id)


@router.patch("/{template_id}", response_model=TemplateOut, summary="Change a template")
async def patch_template(
    template_id: str,
    body: TemplatePatch,
    request: Request,
    principal: Principal = require("vas:template:manage"),
) -> Template:
    try:
        async with _db(request).transaction(org_id=principal.org_id) as session:
            template = await _get(session, principal.org_id, template_id)
            for key, value in body.model_dump(mode="json", exclude_unset=True).items():
                setattr(template, key, value)
            _check(template)
            template.updated_at = utcnow()
    except IntegrityError:
        raise Conflict(f"A template named {body.name!r} exists.", slug="template-exists") from None
    return template


@router.delete("/{template_id}", status_code=204, summary="Delete a template")
async def delete_template(
    template_id: str, request: Request, principal: Principal = require("vas:template:manage")
) -> Response:
    async with _db(request).transaction(org_id=principal.org_id) as session:
        await session.delete(await _get(session, principal.org_id, template_id))
    return Response(status_code=204)


@router.post(
    "/{template_id}/preview",
    response_model=PreviewOut,
    summary="Render a template, with SMS encoding, segments and estimated cost",
)
async def preview_template(
    template_id: str,
    body: PreviewIn,
    request: Request,
    principal: Principal = require("vas:template:read"),
) -> PreviewOut:
    """A render that fails answers `ok: false` with the reason: a send would be rejected."""
    org_id = principal.org_id
    async with _db(request).read(org_id=org_id) as session:
        template = await _get(session, org_id, template_id)
        contact = None
        tags: list[str] = []
        addresses: dict[str, str] = {}
        if body.contact_id:
            contact = await session.get(Contact, body.contact_id)
            if contact is None or contact.org_id != org_id:
                raise NotFound(f"No contact {body.contact_id}.")
            tags = (await contacts.tags_of(session, org_id, [contact.id]))[contact.id]
            addresses = (await contacts.addresses_of(session, org_id, [contact.id]))[contact.id]
    context = templates.contact_context(contact, tags, addresses)
    try:
        rendered = templates.render(template, body.variables, context)
    except templates.RenderError as exc:
        return PreviewOut(ok=False, error=str(exc))
    out = PreviewOut(
        ok=True,
        body=rendered.body,
        subject=rendered.subject,
        provider_template=rendered.provider_template,
        characters=len(rendered.body or ""),
    )
    segments = 1
    if template.channel == "sms" and rendered.body:
        info = encoding.analyze(rendered.body)
        out.encoding, out.segments, out.parts = (
            info.encoding,
            info.segments,
            encoding.split(rendered.body),
        )
        segments = info.segments
    routes = await vas_of(request.app.state.runtime).accounts.routes(org_id, template.channel)
    if routes:
        out.estimated_cost = Decimal(min(r.candidate.cost_per_unit for r in routes)) * segments
        out.currency = routes[0].account.currency
    return out
