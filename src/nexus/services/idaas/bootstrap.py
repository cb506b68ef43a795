"""Creating the first org and its owner (`nexus init`, and the demo org of `make run`)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from nexus.kernel.db import Database, utcnow
from nexus.kernel.errors import Conflict
from nexus.kernel.events import emit
from nexus.services.idaas import audit
from nexus.services.idaas.models import Org, Role, RoleBinding, User
from nexus.services.idaas.passwords import check_policy, hash_password
from nexus.services.idaas.roles import builtin_roles


@dataclass
class Bootstrapped:
    org: Org
    owner: User
    password: str
    generated: bool


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug or "org")[:63]


def generate_password() -> str:
    return "-".join(secrets.token_urlsafe(6) for _ in range(3))


async def create_org_with_owner(
    db: Database,
    *,
    org_name: str,
    email: str,
    password: str | None = None,
    slug: str | None = None,
    name: str = "",
) -> Bootstrapped:
    generated = password is None
    password = password or generate_password()
    check_policy(password, email=email, name=name)
    slug = slug or slugify(org_name)
    async with db.transaction() as session:
        if await session.scalar(select(Org.id).where(Org.slug == slug)):
            raise Conflict(f"An org with slug {slug!r} exists.")
        org = Org(name=org_name, slug=slug)
        session.add(org)
        await session.flush()
        roles = builtin_roles(org.id)
        session.add_all(roles)
        owner = User(
            org_id=org.id,
            email=email.lower(),
            name=name,
            status="active",
            password_hash=hash_password(password),
            password_changed_at=utcnow(),
        )
        session.add(owner)
        await session.flush()
        owner_role = next(r for r in roles if r.name == "owner")
        session.add(
            RoleBinding(
                org_id=org.id, role_id=owner_role.id, subject_type="user", subject_id=owner.id
            )
        )
        audit.record(
            session,
            "org.bootstrapped",
            org_id=org.id,
            actor_type="system",
            target_type="user",
            target_id=owner.id,
        )
        emit(
            session, "nexus.idaas.org.created", {"org_id": org.id, "parent_id": None}, org_id=org.id
        )
        emit(
            session,
            "nexus.idaas.user.created",
            {"user_id": owner.id, "email": owner.email},
            org_id=org.id,
        )
    return Bootstrapped(org, owner, password, generated)


async def org_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Org)) or 0)


async def roles_of(db: Database, org_id: str) -> list[str]:
    async with db.read() as session:
        return list((await session.scalars(select(Role.name).where(Role.org_id == org_id))).all())
