"""The one policy decision function every service uses.

A principal holds grants: a permission pattern (`crm:deal:*`), optionally limited to one
resource (`deal:42`) and/or to conditions over the user and the resource
(`resource.owner_id == user.id`, `user.attributes.region == resource.region`). A request
is allowed when one grant matches; the decision says which grant allowed it, or why
nothing did, so it can be explained (`POST /api/v1/authz/check`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nexus.kernel.auth import Principal, permission_matches

_OPS = ("==", "!=", " not in ", " in ")
_LITERAL = re.compile(r"""^(-?\d+(\.\d+)?|"[^"]*"|'[^']*'|true|false|null|\[.*\])$""")


class ConditionError(ValueError):
    """A condition that cannot be parsed."""


@dataclass(frozen=True)
class Condition:
    left: str
    op: str
    right: str

    @classmethod
    def parse(cls, text: str) -> Condition:
        for op in _OPS:
            if op in text:
                left, right = (part.strip() for part in text.split(op, 1))
                if not left or not right:
                    break
                for side in (left, right):
                    if not _LITERAL.match(side) and not re.match(
                        r"^(user|resource)(\.\w+)+$", side
                    ):
                        raise ConditionError(
                            f"{side!r} is neither a literal nor user.<field> / resource.<field>"
                        )
                return cls(left, op.strip(), right)
        raise ConditionError(f"{text!r} is not '<operand> ==|!=|in|not in <operand>'")

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def holds(self, context: dict[str, Any]) -> bool:
        left, right = _value(self.left, context), _value(self.right, context)
        if left is _MISSING or right is _MISSING:
            return False
        if self.op == "==":
            return bool(left == right)
        if self.op == "!=":
            return bool(left != right)
        if not isinstance(right, list | tuple | set):
            return False
        return (left in right) if self.op == "in" else (left not in right)


_MISSING = object()


def _value(operand: str, context: dict[str, Any]) -> Any:
    if _LITERAL.match(operand):
        return json.loads(operand.replace("'", '"'))
    current: Any = context
    for part in operand.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


@dataclass(frozen=True)
class Grant:
    permission: str
    resource: str | None = None
    conditions: tuple[Condition, ...] = ()
    source: str = ""  # e.g. "role admin (binding 0193...)"

    def describe(self) -> str:
        parts = [self.permission]
        if self.resource:
            parts.append(f"on {self.resource}")
        if self.conditions:
            parts.append("if " + " and ".join(map(str, self.conditions)))
        return " ".join(parts) + (f" from {self.source}" if self.source else "")

    def to_claim(self) -> dict[str, Any]:
        claim: dict[str, Any] = {"p": self.permission}
        if self.resource:
            claim["r"] = self.resource
        if self.conditions:
            claim["c"] = [str(c) for c in self.conditions]
        return claim

    @classmethod
    def from_claim(cls, claim: dict[str, Any]) -> Grant:
        return cls(
            permission=claim["p"],
            resource=claim.get("r"),
            conditions=tuple(Condition.parse(c) for c in claim.get("c", ())),
            source="token",
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    grant: str | None = None
    checked: list[str] = field(default_factory=list)


def decide(
    grants: list[Grant],
    permission: str,
    *,
    user: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
) -> Decision:
    """Allowed when one grant covers the permission, the resource and its conditions."""
    context = {"user": user or {}, "resource": resource or {}}
    resource_ref = None
    if resource and resource.get("type") and resource.get("id") is not None:
        resource_ref = f"{resource['type']}:{resource['id']}"
    checked: list[str] = []
    for grant in grants:
        if not permission_matches(grant.permission, permission):
            continue
        if grant.resource and grant.resource != resource_ref:
            checked.append(f"{grant.describe()}: only for {grant.resource}")
            continue
        failed = [str(c) for c in grant.conditions if not c.holds(context)]
        if failed:
            checked.append(f"{grant.describe()}: condition not met ({'; '.join(failed)})")
            continue
        return Decision(True, f"allowed by {grant.describe()}", grant.describe(), checked)
    if checked:
        return Decision(False, f"no grant matched: {'; '.join(checked)}", None, checked)
    return Decision(False, f"no role grants {permission}", None, checked)


def principal_grants(principal: Principal) -> list[Grant]:
    """The grants carried by a verified token or API key."""
    grants = [Grant(p, source="role") for p in sorted(principal.permissions)]
    grants += [Grant.from_claim(c) for c in principal.claims.get("cg", [])]
    return grants


def authorize(
    principal: Principal, permission: str, resource: dict[str, Any] | None = None
) -> Decision:
    """Decide for a caller. Services call this for resource-level checks."""
    user = {
        "id": principal.subject,
        "org_id": principal.org_id,
        "attributes": principal.claims.get("attrs", {}),
        "roles": list(principal.roles),
    }
    if resource is not None and resource.get("org_id") not in (None, principal.org_id):
        return Decision(False, "the resource belongs to another org")
    return decide(principal_grants(principal), permission, user=user, resource=resource)
