"""Scope values: the OpenID Connect names, and Nexus permission strings.

A client is registered with the scope values it may ask for. A permission scope there
may be a pattern (`notes:*:read`), which allows asking for anything it matches. What a
token finally carries is narrower still: for a user, only the requested permissions the
user holds; for a client acting as itself, only what the client was allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nexus.kernel.auth import permission_matches

OIDC_SCOPES: dict[str, str] = {
    "openid": "Sign you in and know who you are.",
    "profile": "See your name and organization.",
    "email": "See your e-mail address.",
    "offline_access": "Stay connected when you are away (a refresh token).",
}
PERMISSION_SCOPE = re.compile(r"^(\*|[a-z*][a-z0-9_*-]*(:[a-z*][a-z0-9_*-]*){1,2})$")
MAX_SCOPE_VALUES = 100


def split(scope: str | None) -> list[str]:
    """Space-delimited values, each once, in the order given."""
    return list(dict.fromkeys((scope or "").split()))


def join(values: Iterable[str]) -> str:
    return " ".join(dict.fromkeys(values))


def is_permission(value: str) -> bool:
    return value == "*" or ":" in value


def is_valid(value: str) -> bool:
    return value in OIDC_SCOPES or bool(PERMISSION_SCOPE.match(value))


def allowed(value: str, client_scopes: Iterable[str]) -> bool:
    """May a client registered with `client_scopes` ask for `value`?"""
    registered = list(client_scopes)
    if value in registered:
        return True
    return is_permission(value) and any(
        is_permission(r) and permission_matches(r, value) for r in registered
    )


def not_allowed(values: Iterable[str], client_scopes: Iterable[str]) -> list[str]:
    registered = list(client_scopes)
    return [v for v in values if not is_valid(v) or not allowed(v, registered)]


def permissions_held(requested: Iterable[str], granted: Iterable[str]) -> list[str]:
    """The requested permission scopes that the grants (a user's permissions) cover."""
    grants = list(granted)
    return [
        value
        for value in requested
        if is_permission(value) and any(permission_matches(g, value) for g in grants)
    ]


def describe(value: str, known: dict[str, str]) -> str:
    """A line for the consent page."""
    if value in OIDC_SCOPES:
        return OIDC_SCOPES[value]
    if value in known:
        return known[value]
    if value == "*":
        return "Everything your account can do."
    return f"Everything your account can do that matches {value}."
