"""Request and response bodies of the IDaaS API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from nexus.kernel.policy import Condition, ConditionError


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginIn(BaseModel):
    email: str = Field(max_length=320, examples=["owner@acme.example"])
    password: str = Field(max_length=1024)
    org: str | None = Field(
        None, max_length=63, description="Org id or slug, when the e-mail is in several orgs."
    )


class TokensOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    refresh_token: str | None = None
    scope: str = ""


class MfaRequiredOut(BaseModel):
    mfa_required: Literal[True] = True
    mfa_token: str
    factors: list[str]


class MfaVerifyIn(BaseModel):
    mfa_token: str = Field(max_length=200)
    code: str = Field(min_length=6, max_length=20, description="A TOTP code or a recovery code.")


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=200)


class OrgOut(Out):
    id: str
    name: str
    slug: str
    parent_id: str | None
    status: str
    default_region: str | None
    created_at: dt.datetime


class OrgIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=2, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
    default_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")


class OrgPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    default_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    status: Literal["active", "suspended"] | None = None


Status = Literal["invited", "active", "suspended", "deactivated"]


class UserOut(Out):
    id: str
    org_id: str
    email: str
    name: str
    kind: str
    status: str
    attributes: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    last_login_at: dt.datetime | None


class UserIn(BaseModel):
    email: EmailStr
    name: str = Field("", max_length=200)
    password: str | None = Field(None, max_length=256)
    status: Literal["invited", "active"] = "active"
    attributes: dict[str, Any] = Field(default_factory=dict)
    roles: list[str] = Field(default_factory=lambda: ["member"], description="Role names to bind.")


class UserPatch(BaseModel):
    name: str | None = Field(None, max_length=200)
    status: Status | None = None
    attributes: dict[str, Any] | None = None
    password: str | None = Field(None, max_length=256)


class BulkUserItem(BaseModel):
    id: str | None = Field(None, description="Update this user; omit to create.")
    email: EmailStr | None = None
    name: str | None = Field(None, max_length=200)
    status: Status | None = None
    attributes: dict[str, Any] | None = None
    roles: list[str] | None = None


class BulkIn(BaseModel):
    items: list[BulkUserItem] = Field(min_length=1, max_length=1000)


class BulkResult(BaseModel):
    index: int
    status: int
    id: str | None = None
    error: str | None = None


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)


class GroupOut(Out):
    id: str
    name: str
    description: str
    created_at: dt.datetime


class MembersIn(BaseModel):
    user_ids: list[str] = Field(min_length=1, max_length=1000)


class RoleIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = Field("", max_length=2000)
    permissions: list[str] = Field(min_length=1, max_length=500)

    @field_validator("permissions")
    @classmethod
    def _perms(cls, value: list[str]) -> list[str]:
        import re

        pattern = re.compile(r"^(\*|[a-z*][a-z0-9_*-]*(:[a-z*][a-z0-9_*-]*){0,2})$")
        bad = [p for p in value if not pattern.match(p)]
        if bad:
            raise ValueError(f"not <service>:<resource>:<action> patterns: {', '.join(bad)}")
        return sorted(set(value))


class RolePatch(BaseModel):
    description: str | None = Field(None, max_length=2000)
    permissions: list[str] | None = Field(None, min_length=1, max_length=500)

    _perms = field_validator("permissions")(RoleIn._perms.__func__)  # type: ignore[attr-defined]


class RoleOut(Out):
    id: str
    name: str
    description: str
    permissions: list[str]
    builtin: bool


class BindingIn(BaseModel):
    role: str = Field(description="Role id or name.")
    user_id: str | None = None
    group_id: str | None = None
    resource: str | None = Field(None, max_length=200, examples=["campaign:0193a4f0"])
    conditions: list[str] = Field(default_factory=list, examples=[["resource.owner_id == user.id"]])

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: list[str]) -> list[str]:
        try:
            return [str(Condition.parse(c)) for c in value]
        except ConditionError as exc:
            raise ValueError(str(exc)) from None


class BindingOut(Out):
    id: str
    role_id: str
    subject_type: str
    subject_id: str
    resource: str | None
    conditions: list[str]
    created_at: dt.datetime


class AuthzCheckIn(BaseModel):
    principal: str | None = Field(None, description="A user id of your org; default: you.")
    permission: str = Field(pattern=r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*$")
    resource: dict[str, Any] | None = Field(
        None, examples=[{"type": "deal", "id": "42", "owner_id": "u1"}]
    )


class AuthzCheckOut(BaseModel):
    allowed: bool
    reason: str
    grant: str | None = None


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    permissions: list[str] = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(None, ge=1, le=3650)

    _perms = field_validator("permissions")(RoleIn._perms.__func__)  # type: ignore[attr-defined]


class ApiKeyOut(Out):
    id: str
    name: str
    prefix: str
    user_id: str
    permissions: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once. Store it now.")


class AuditOut(Out):
    id: str
    type: str
    result: str
    actor_id: str | None
    actor_type: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    data: dict[str, Any]
    created_at: dt.datetime


class SessionOut(Out):
    id: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    mfa: bool
    client_id: str | None
    current: bool = False


class PasswordChangeIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=256)


class CodeIn(BaseModel):
    code: str = Field(min_length=6, max_length=10)


class MeOut(BaseModel):
    user: UserOut
    org: OrgOut
    roles: list[str]
    permissions: list[str]
    mfa_enabled: bool
    session_id: str | None
