"""Reading what a page's form sent, and the API's answer to it, the same way on every page."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from nexus.services.hub.api import ApiError
from nexus.services.hub.web import form_errors


def text(form: Any, name: str, limit: int = 2000) -> str:
    """A form field, trimmed and bounded ('' when absent or not text)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def field_errors(exc: ApiError) -> dict[str, str]:
    """Field name -> the API's reason; a reason about no one field is the form's."""
    return {k or "form": v for k, v in form_errors(exc).items()}


def done(request: Request, messages: dict[str, str]) -> str | None:
    """The confirmation named by `?done=` after a redirect (None for anything else)."""
    return messages.get(request.query_params.get("done", ""))
