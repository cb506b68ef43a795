"""Custom fields: declared per object type, validated on write, filterable in lists.

Values live in the record's `custom` JSON column under the field's key. Lists filter
with query parameters `cf.<key>=<value>` (equality; for multi-select: contains) and,
for number and date fields, `cf.<key>.gte=` / `cf.<key>.lte=`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.errors import Problem
from nexus.services.crm.models import CustomField

TYPES = ("text", "number", "date", "select", "multi_select", "boolean")
MAX_TEXT = 10_000


class FieldErrors(Problem):
    status = 422
    slug = "validation-error"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(detail, errors=errors)


async def definitions(
    session: AsyncSession, org_id: str, object_type: str
) -> dict[str, CustomField]:
    rows = await session.scalars(
        select(CustomField).where(
            CustomField.org_id == org_id, CustomField.object_type == object_type
        )
    )
    return {f.key: f for f in rows}


def _coerce(field: CustomField, value: Any) -> Any:
    """The stored form of `value`, or ValueError with the reason."""
    kind = field.type
    if kind == "text":
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        value = str(value)
        if len(value) > MAX_TEXT:
            raise ValueError(f"at most {MAX_TEXT} characters")
        return value
    if kind == "number":
        if isinstance(value, str):
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise ValueError("must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return value
    if kind == "date":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)") from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError("must be true or false")
    if kind == "select":
        if value not in field.options:
            raise ValueError(f"must be one of {', '.join(field.options)}")
        return value
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("must be a list of options")
    items = [str(v).strip() for v in items if str(v).strip()]
    wrong = [v for v in items if v not in field.options]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} not among {', '.join(field.options)}")
    return list(dict.fromkeys(items))


def validate(
    fields: dict[str, CustomField],
    values: dict[str, Any],
    *,
    current: dict[str, Any] | None = None,
    prefix: str = "custom",
) -> dict[str, Any]:
    """The merged custom values (current updated by `values`; None removes a value)."""
    errors: list[dict[str, str]] = []
    out = dict(current or {})
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            errors.append(
                {"field": f"{prefix}.{key}", "message": "no such custom field", "code": "unknown"}
            )
            continue
        if value is None or value == "":
            out.pop(key, None)
            continue
        try:
            out[key] = _coerce(field, value)
        except ValueError as exc:
            errors.append({"field": f"{prefix}.{key}", "message": str(exc), "code": "invalid"})
    for key, field in fields.items():
        if field.required and out.get(key) in (None, "", []):
            errors.append(
                {"field": f"{prefix}.{key}", "message": "is required", "code": "required"}
            )
    if errors:
        raise FieldErrors(errors)
    return out


def filters(
    model: Any, fields: dict[str, CustomField], params: dict[str, str], dialect: str
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the `cf.<key>[.gte|.lte]` query parameters."""
    clauses: list[ColumnElement[bool]] = []
    errors: list[dict[str, str]] = []
    for name, raw in params.items():
        if not name.startswith("cf."):
            continue
        key, _, op = name[3:].partition(".")
        field = fields.get(key)
        if field is None or op not in ("", "gte", "lte"):
            errors.append(
                {"field": name, "message": "no such custom field filter", "code": "unknown"}
            )
            continue
        if op and field.type not in ("number", "date"):
            errors.append(
                {"field": name, "message": "ranges need a number or date field", "code": "invalid"}
            )
            continue
        try:
            value = _coerce(field, raw) if field.type != "multi_select" else raw
        except ValueError as exc:
            errors.append({"field": name, "message": str(exc), "code": "invalid"})
            continue
        element = model.custom[key]
        if field.type == "number":
            column: Any = element.as_float()
        elif field.type == "boolean":
            column = element.as_boolean()
        elif field.type == "multi_select":
            clauses.append(_contains(model, key, raw, dialect))
            continue
        else:
            column = element.as_string()
        if op == "gte":
            clauses.append(column >= value)
        elif op == "lte":
            clauses.append(column <= value)
        else:
            clauses.append(column == value)
    if errors:
        raise FieldErrors(errors)
    return clauses


def _contains(model: Any, key: str, value: str, dialect: str) -> ColumnElement[bool]:
    return array_contains(f"{model.__tablename__}.custom", key, value, dialect)


def array_contains(column: str, key: str | None, value: str, dialect: str) -> ColumnElement[bool]:
    """`value` is an element of the JSON array in `column` (under `key`, if given)."""
    name = f"arr_{key or 'root'}"
    if dialect == "postgresql":
        target = f"({column} -> :{name}_key)" if key else column
        return and_(
            text(f"jsonb_exists({target}, :{name}_val)").bindparams(
                **({f"{name}_key": key} if key else {}), **{f"{name}_val": value}
            )
        )
    path = f'$."{key}"' if key else "$"
    # `column` comes from our code and `key` from a declared field (^[a-z][a-z0-9_]*$)
    return and_(
        text(
            f"EXISTS (SELECT 1 FROM json_each({column}, :{name}_path) "  # noqa: S608
            f"WHERE json_each.value = :{name}_val)"
        ).bindparams(**{f"{name}_path": path, f"{name}_val": value})
    )
