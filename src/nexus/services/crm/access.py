"""Owner-based access to CRM records, decided by the kernel's policy function.

A caller holds `crm:<object>:<action>` either unconditionally (a role bound without
conditions: every record of the org) or through conditional grants carried in the token
(IDaaS role bindings with conditions, e.g. `resource.owner_id == user.id`: a rep's own
records). Routes use `access("deal", "read")`: the caller must hold the permission in
one of the two forms (else 403), and each record is then checked with
`nexus.kernel.policy.authorize` against its attributes (a record the caller may not see
is a 404, as if it did not exist).

Lists cannot ask the policy row by row, so conditions are turned into SQL: each
condition comparing a `resource.<column>` with a literal or a `user.<...>` value becomes
a WHERE clause. A grant whose conditions cannot be expressed that way does not widen a
list (it still allows the records it covers when they are opened one by one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from sqlalchemy import ColumnElement, and_, false, or_, true

from nexus.kernel.auth import Principal, current_principal, permission_matches
from nexus.kernel.errors import Forbidden, NotFound
from nexus.kernel.policy import Condition, Grant, authorize, principal_grants


def resource_of(kind: str, obj: Any) -> dict[str, Any]:
    """The attributes conditions can use: id, org_id, owner_id, and the record's columns."""
    resource: dict[str, Any] = {"type": kind, "id": obj.id, "org_id": obj.org_id}
    for column in [c.key for c in obj.__table__.columns]:
        value = getattr(obj, column, None)
        if isinstance(value, str | int | float | bool) or value is None:
            resource.setdefault(column, value)
    return resource


def _user(principal: Principal) -> dict[str, Any]:
    return {
        "id": principal.subject,
        "org_id": principal.org_id,
        "attributes": principal.claims.get("attrs", {}),
        "roles": list(principal.roles),
    }


def _operand(text: str, user: dict[str, Any]) -> tuple[str, Any]:
    """('resource', column) | ('value', value) | ('unknown', None)."""
    if text.startswith("resource."):
        path = text.split(".")[1:]
        return ("resource", path[0]) if len(path) == 1 else ("unknown", None)
    if text.startswith("user."):
        current: Any = {"user": user}
        for part in text.split("."):
            if not isinstance(current, dict) or part not in current:
                return "unknown", None
            current = current[part]
        return "value", current
    try:
        return "value", json.loads(text.replace("'", '"'))
    except ValueError:
        return "unknown", None


def _condition_sql(condition: Condition, model: Any, user: dict[str, Any]) -> ColumnElement[bool]:
    left, right = _operand(condition.left, user), _operand(condition.right, user)
    if left[0] == "value" and right[0] == "resource" and condition.op in ("==", "!="):
        left, right = right, left
    if left[0] != "resource" or right[0] != "value" or left[1] not in model.__table__.columns:
        return false()
    column, value = getattr(model, left[1]), right[1]
    if condition.op == "==":
        return column == value
    if condition.op == "!=":
        return column != value
    if not isinstance(value, list | tuple):
        return false()
    return column.in_(list(value)) if condition.op == "in" else column.not_in(list(value))


@dataclass(frozen=True)
class Access:
    """What one caller may do with one kind of record, for one action."""

    principal: Principal
    kind: str
    action: str

    @property
    def permission(self) -> str:
        return f"crm:{self.kind}:{self.action}"

    def _grants(self) -> list[Grant]:
        return [
            g
            for g in principal_grants(self.principal)
            if permission_matches(g.permission, self.permission)
        ]

    @property
    def unrestricted(self) -> bool:
        return any(not g.resource and not g.conditions for g in self._grants())

    def held(self) -> bool:
        return bool(self._grants())

    def allows(self, obj: Any) -> bool:
        if obj is None or obj.org_id != self.principal.org_id:
            return False
        return authorize(self.principal, self.permission, resource_of(self.kind, obj)).allowed

    def check(self, obj: Any, what: str | None = None) -> Any:
        """The record if the caller may act on it; 404 if it may not even read it, 403 if
        it may read but not do this."""
        if self.allows(obj):
            return obj
        label = what or self.kind
        if obj is not None and obj.org_id == self.principal.org_id and self.action != "read":
            reader = Access(self.principal, self.kind, "read")
            if reader.allows(obj):
                raise Forbidden(
                    f"You may not {self.action} this {label}: {self.explain(obj)}",
                    missing=[self.permission],
                )
        raise NotFound(f"No {label} {getattr(obj, 'id', '')}".rstrip() + ".")

    def check_values(self, obj: Any, what: str | None = None) -> None:
        """For a record about to be written with these values (new, or changed): the
        caller must be allowed on it as it will be (e.g. a rep cannot give a deal away)."""
        if not self.allows(obj):
            raise Forbidden(
                f"You may not {self.action} a {what or self.kind} like this: {self.explain(obj)}",
                missing=[self.permission],
            )

    def explain(self, obj: Any) -> str:
        return authorize(self.principal, self.permission, resource_of(self.kind, obj)).reason

    def where(self, model: Any) -> ColumnElement[bool]:
        """A SQL filter for the rows of `model` this caller may see (for lists)."""
        grants = self._grants()
        if any(not g.resource and not g.conditions for g in grants):
            return true()
        user = _user(self.principal)
        clauses: list[ColumnElement[bool]] = []
        for grant in grants:
            parts = [_condition_sql(c, model, user) for c in grant.conditions]
            if grant.resource:
                kind, _, ident = grant.resource.partition(":")
                parts.append(model.id == ident if kind == self.kind else false())
            clauses.append(and_(*parts))
        return or_(*clauses) if clauses else false()

    def owner_ids(self) -> tuple[str, ...] | None:
        """None when the caller sees every owner's records; else the owner ids whose records
        it sees by an owner condition (for the search index, which keeps only owner_id)."""
        grants = self._grants()
        if any(not g.resource and not g.conditions for g in grants):
            return None
        user = _user(self.principal)
        owners: list[str] = []
        for grant in grants:
            if grant.resource or len(grant.conditions) != 1:
                continue
            cond = grant.conditions[0]
            left, right = _operand(cond.left, user), _operand(cond.right, user)
            if left[0] == "value":
                left, right = right, left
            if left == ("resource", "owner_id") and right[0] == "value":
                if cond.op == "==" and isinstance(right[1], str):
                    owners.append(right[1])
                elif cond.op == "in" and isinstance(right[1], list):
                    owners += [str(v) for v in right[1]]
        return tuple(dict.fromkeys(owners))


def access(kind: str, action: str) -> Any:
    """Route dependency: the caller must hold crm:<kind>:<action> (or a conditional grant of
    it); returns the `Access` used to check and filter records."""
    permission = f"crm:{kind}:{action}"

    async def dependency(principal: Principal = Depends(current_principal)) -> Access:
        result = Access(principal, kind, action)
        if not result.held():
            raise Forbidden(f"This needs the permission {permission}.", missing=[permission])
        return result

    dependency.__name__ = f"access_{kind}_{action}"
    return Depends(dependency)
