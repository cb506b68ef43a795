"""Structured JSON logs (structlog) with personal data and secrets masked.

Every log line passes through `mask_event`: values under sensitive keys are replaced,
and phone numbers, e-mail addresses, bearer tokens, JWTs and API keys are masked
wherever they appear in strings.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|cookie|credential|otp|code_verifier"
    r"|private|signature)",
    re.IGNORECASE,
)
BODY_KEYS = {"body", "text", "message_body", "content", "caption"}
_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "***jwt***"),
    (re.compile(r"\b(nx[a-z]?_)[A-Za-z0-9_-]{8,}"), r"\1***"),
    (
        re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b"),
        r"\1***@\2",
    ),
    (re.compile(r"(?<![\w/])\+?\d[\d\s().-]{6,}\d(\d{2})\b"), r"***\1"),
]


def mask_text(value: str) -> str:
    for pattern, replacement in _PATTERNS:
        value = pattern.sub(replacement, value)
    return value


def mask_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if SECRET_KEYS.search(key):
        return "***"
    if key in BODY_KEYS and isinstance(value, str):
        return f"<{len(value)} chars>"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    return mask_text(str(value))


def mask_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if key in {"timestamp", "level", "logger", "request_id", "service", "org_id"}:
            continue
        if key == "event" and isinstance(value, str):
            event_dict[key] = mask_text(value)
        else:
            event_dict[key] = mask_value(key, value)
    return event_dict


def _mask_exception(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = mask_text(event_dict["exception"])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route structlog and the standard library through one JSON (or console) renderer."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_event,
    ]
    structlog.configure(
        # drop lines below the level before any masking work is spent on them
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _mask_exception,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests
    for noisy in (
        "sqlalchemy.engine",
        "aiosqlite",
        "nats",
        "asyncio",
        "httpx",
        "httpcore",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
