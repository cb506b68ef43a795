"""Built-in roles and what a user is granted (roles through bindings, direct or by group)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.policy import Condition, Grant
from nexus.services.idaas.models import GroupMember, Role, RoleBinding, User

BUILTIN_ROLES: dict[str, tuple[str, list[str]]] = {
    "owner": ("Everything, including the org itself and its owners.", ["*"]),
    "admin": ("Administers users, roles, keys and every service; not the owners.", ["*:*:*"]),
    "member": (  # *:*:create does not reach idaas:user:manage and the like
        "Uses the services: reads, creates, updates, sends.",
        ["*:*:read", "*:*:create", "*:*:update", "*:*:send"],
    ),
    "viewer": ("Reads everything it is shown, changes nothing.", ["*:*:read"]),
}
# Built-in roles use wildcards on the action, so anything an administrator alone may see
# (API keys, OAuth clients, the audit log) has an action other than read/create/update:
# `manage` or `review`.


def builtin_roles(org_id: str) -> list[Role]:
    return [
        Role(org_id=org_id, name=name, description=desc, permissions=perms, builtin=True)
        for name, (desc, perms) in BUILTIN_ROLES.items()
    ]


@dataclass
class UserGrants:
    roles: list[str]
    permissions: set[str]  # unconditional, org-wide
    conditional: list[Grant]  # limited to a resource or by conditions

    def scope(self) -> str:
        return " ".join(sorted(self.permissions))


async def grants_for(session: AsyncSession, user: User) -> UserGrants:
    group_ids = select(GroupMember.group_id).where(GroupMember.user_id == user.id)
    rows = (
        await session.execute(
            select(RoleBinding, Role)
            .join(Role, Role.id == RoleBinding.role_id)
            .where(
                RoleBinding.org_id == user.org_id,
                or_(
                    (RoleBinding.subject_type == "user") & (RoleBinding.subject_id == user.id),
                    (RoleBinding.subject_type == "group") & RoleBinding.subject_id.in_(group_ids),
                ),
            )
        )
    ).all()
    out = UserGrants(roles=[], permissions=set(), conditional=[])
    for binding, role in rows:
        if role.name not in out.roles:
            out.roles.append(role.name)
        if not binding.resource and not binding.conditions:
            out.permissions.update(role.permissions)
            continue
        conditions = tuple(Condition.parse(c) for c in binding.conditions)
        out.conditional += [
            Grant(p, binding.resource, conditions, f"role {role.name} (binding {binding.id})")
            for p in role.permissions
        ]
    return out
