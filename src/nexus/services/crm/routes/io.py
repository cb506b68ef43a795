"""/api/v1/crm/import (CSV, streamed, with mapping and dry run) and /api/v1/crm/export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from nexus.kernel import csv_import as ci
from nexus.kernel.auth import Principal, current_principal
from nexus.kernel.errors import Forbidden, NotFound
from nexus.kernel.http import large_body
from nexus.services.crm import deals, importing
from nexus.services.crm.access import Access
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
from nexus.services.crm.routes.common import crm_db
from nexus.services.crm.settings import get_crm_settings

router = APIRouter(tags=["crm import and export"])
MAX_IMPORT_BYTES = 2 * 1024**3
ObjectName = Query(pattern="^(contacts|companies|deals)$", description="What the rows are.")


def _allowed(principal: Principal, permission: str, kind: str) -> Access:
    if not principal.can(permission):
        raise Forbidden(f"This needs the permission {permission}.", missing=[permission])
    writer = Access(principal, kind, "write" if permission.endswith("import") else "read")
    if not writer.held():
        raise Forbidden(
            f"This needs the permission {writer.permission}.", missing=[writer.permission]
        )
    return writer


@router.post(
    "/import",
    response_model=ci.ImportStatus,
    status_code=202,
    summary="Import contacts, companies or deals from CSV",
)
@large_body(MAX_IMPORT_BYTES)
async def start_import(
    request: Request,
    object: str = ObjectName,
    mapping: str | None = Query(
        None,
        max_length=10_000,
        description='JSON {"field": "column"}; other fields map to columns of the same name.',
    ),
    dry_run: bool = Query(False, description="Check every row, write nothing."),
    region: str | None = Query(None, pattern=r"^[A-Z]{2}$", description="For national phones."),
    filename: str = Query("", max_length=300),
    principal: Principal = Depends(current_principal),
) -> ci.ImportStatus:
    """Send the file as the body (`Content-Type: text/csv`). Rows match existing records
    (contacts by e-mail or phone, companies by domain or name, deals by name and company),
    so importing a file twice creates nothing the second time. Progress:
    `GET /import/{id}`; refused rows: `GET /import/{id}/errors`. Needs `crm:data:import`
    and write access to the records."""
    kind = importing.OBJECTS[object]
    writer = _allowed(principal, "crm:data:import", kind)
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
    db = crm_db(request)
    async with db.read(org_id=principal.org_id) as session:
        custom = list(
            await session.scalars(select(CustomField).where(CustomField.object_type == kind))
        )
    runtime = request.app.state.runtime
    upload = await ci.save_upload(
        request.stream(),
        ci.import_dir(runtime.settings.data_dir, "crm"),
        max_bytes=MAX_IMPORT_BYTES,
        filename=filename,
    )
    try:
        resolved = ci.resolve_mapping(upload.header, importing.fields_for(object, custom), given)
        async with db.transaction(org_id=principal.org_id) as session:
            if kind == "deal":
                await deals.ensure_default_pipeline(session, principal.org_id)
            imp = Import(
                org_id=principal.org_id,
                mapping=resolved,
                dry_run=dry_run,
                options={
                    "object": object,
                    "actor": principal.subject,
                    "unrestricted": writer.unrestricted,
                    "region": region or get_crm_settings().default_region,
                    "fields": importing.field_snapshot(custom),
                },
                **upload.columns(),
            )
            session.add(imp)
            await session.flush()
            await ci.start(session, imp, importing.QUEUE)
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    return ci.ImportStatus.model_validate(imp)


async def _import(request: Request, principal: Principal, import_id: str) -> Import:
    async with crm_db(request).read(org_id=principal.org_id) as session:
        imp = await session.get(Import, import_id)
    if imp is None or imp.org_id != principal.org_id:
        raise NotFound(f"No import {import_id}.")
    if imp.options.get("actor") != principal.subject and not principal.can("crm:data:import"):
        raise NotFound(f"No import {import_id}.")
    return imp


@router.get("/import/{import_id}", response_model=ci.ImportStatus, summary="An import's progress")
async def get_import(
    import_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> ci.ImportStatus:
    return ci.ImportStatus.model_validate(await _import(request, principal, import_id))


@router.get(
    "/import/{import_id}/errors",
    summary="The refused rows of an import, as CSV (row, column, reason, the row's values)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def import_errors(
    import_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> StreamingResponse:
    imp = await _import(request, principal, import_id)
    return StreamingResponse(
        ci.error_report(crm_db(request), ImportRowError, imp),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="import-{imp.id}-errors.csv"'},
    )


# -- export ----------------------------------------------------------------------------------
COLUMNS: dict[str, list[str]] = {
    "contacts": [
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "company_domain",
        "lifecycle_stage",
        "lead_source",
        "tags",
        "owner_id",
        "created_at",
    ],
    "companies": ["id", "name", "domain", "industry", "size", "owner_id", "created_at"],
    "deals": [
        "id",
        "name",
        "amount",
        "currency",
        "pipeline",
        "stage",
        "status",
        "lost_reason",
        "expected_close",
        "company_domain",
        "owner_id",
        "created_at",
        "closed_at",
    ],
}
MODELS: dict[str, Any] = {"contacts": Contact, "companies": Company, "deals": Deal}


@router.get(
    "/export",
    summary="Export contacts, companies or deals as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export(
    request: Request,
    object: str = ObjectName,
    principal: Principal = Depends(current_principal),
) -> StreamingResponse:
    """Every record you may read, streamed; custom fields as `cf.<key>` columns. The file
    imports back (same column names)."""
    kind = importing.OBJECTS[object]
    reader = _allowed(principal, "crm:data:export", kind)
    db = crm_db(request)
    async with db.read(org_id=principal.org_id) as session:
        keys = list(
            await session.scalars(
                select(CustomField.key)
                .where(CustomField.object_type == kind)
                .order_by(CustomField.key)
            )
        )
    model = MODELS[object]

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow([*COLUMNS[object], *(f"cf.{k}" for k in keys)])
        last = ""
        while True:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            async with db.read(org_id=principal.org_id) as session:
                stmt = select(model).where(model.id > last, reader.where(model))
                if model is not Deal:
                    stmt = stmt.where(model.merged_into_id.is_(None))
                page = list(await session.scalars(stmt.order_by(model.id).limit(1000)))
                if not page:
                    return
                lookups = await _lookups(session, object, page)
            for record in page:
                out.writerow(
                    [
                        *_values(object, record, lookups),
                        *(_cell(record.custom.get(k)) for k in keys),
                    ]
                )
            last = page[-1].id

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{object}.csv"'},
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _lookups(session: Any, object_name: str, page: list[Any]) -> dict[str, str]:
    """Names the export shows instead of ids: company domains, pipeline and stage names."""
    ids = {r.company_id for r in page if getattr(r, "company_id", None)}
    out: dict[str, str] = {}
    if ids:
        for company_id, domain in await session.execute(
            select(Company.id, Company.domain).where(Company.id.in_(ids))
        ):
            out[company_id] = domain or ""
    if object_name == "deals":
        for stage_id, stage_name, pipeline_name in await session.execute(
            select(Stage.id, Stage.name, Pipeline.name).join(
                Pipeline, Pipeline.id == Stage.pipeline_id
            )
        ):
            out[stage_id] = stage_name
            out[f"pipeline:{stage_id}"] = pipeline_name
    return out


def _values(object_name: str, r: Any, lookups: dict[str, str]) -> list[str]:
    if object_name == "contacts":
        return [
            r.id,
            r.first_name or "",
            r.last_name or "",
            ";".join(r.emails),
            ";".join(r.phones),
            lookups.get(r.company_id or "", ""),
            r.lifecycle_stage,
            r.lead_source or "",
            ";".join(r.tags),
            r.owner_id,
            r.created_at.isoformat(),
        ]
    if object_name == "companies":
        return [
            r.id,
            r.name,
            r.domain or "",
            r.industry or "",
            _cell(r.size),
            r.owner_id,
            r.created_at.isoformat(),
        ]
    return [
        r.id,
        r.name,
        str(r.amount),
        r.currency,
        lookups.get(f"pipeline:{r.stage_id}", ""),
        lookups.get(r.stage_id, ""),
        r.status,
        r.lost_reason or "",
        _cell(r.expected_close and r.expected_close.isoformat()),
        lookups.get(r.company_id or "", ""),
        r.owner_id,
        r.created_at.isoformat(),
        _cell(r.closed_at and r.closed_at.isoformat()),
    ]
