"""Message templates: sandboxed Jinja2 with declared, typed variables.

A template is checked when it is saved: it must parse, may name only its declared
variables and `contact`, may not reach for underscored attributes, include other
templates or build huge values; a trial render in the sandbox refuses anything the
sandbox calls unsafe (`{{ ''.__class__ }}` and friends). At send time the values are
checked against their declared types, and a render that fails for any reason raises
`RenderError` with the reason: the message is rejected, never sent half-rendered.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from nexus.kernel.errors import Problem
from nexus.services.vas.engagement.models import Template
from nexus.services.vas.settings import MAX_BODY

MAX_REPEAT = 10_000  # the longest string or list `*` may build
MAX_POWER = 100
MAX_OUTPUT = 100_000


class InvalidTemplate(Problem):
    status = 422
    slug = "invalid-template"


class RenderError(ValueError):
    """The template cannot be rendered for this recipient; the text says why."""


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponent above {MAX_POWER}")
        if op == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_REPEAT:
                    raise SecurityError(f"result longer than {MAX_REPEAT}")
        return super().call_binop(context, op, left, right)


ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_FORBIDDEN_NODES = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)
_cache: OrderedDict[tuple[str, str], Any] = OrderedDict()


def _check_source(source: str, declared: set[str], where: str) -> None:
    try:
        tree = ENV.parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise InvalidTemplate(
            f"The {where} is not a valid template{at}: {exc}", field=where
        ) from None
    for node in tree.find_all(_FORBIDDEN_NODES):
        raise InvalidTemplate(
            f"The {where} may not include or import other templates ({type(node).__name__}).",
            field=where,
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Const)):
        name = getattr(node, "attr", None) or getattr(node, "value", None)
        if isinstance(node, nodes.Getitem):
            name = getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise InvalidTemplate(
                f"The {where} reaches for {name!r}: names starting with _ are not allowed.",
                field=where,
            )
    unknown = meta.find_undeclared_variables(tree) - declared - {"contact"} - set(ENV.globals)
    if unknown:
        raise InvalidTemplate(
            f"The {where} uses undeclared variable(s) {', '.join(sorted(unknown))}: "
            "declare them in `variables`, or use contact.<field>.",
            field=where,
        )


_SAMPLES = {"string": "x", "integer": 1, "number": 1.5, "boolean": True}


def check(
    channel: str,
    body: str,
    subject: str | None,
    variables: list[dict[str, Any]],
    provider_template: dict[str, Any] | None,
) -> None:
    """Refuse (422) a template that cannot be used safely; see the module docstring."""
    declared = {v["name"] for v in variables}
    if len(declared) != len(variables):
        raise InvalidTemplate("Variable names must be unique.", field="variables")
    for spec in variables:
        if spec.get("default") is not None:
            try:
                coerce(spec, spec["default"])
            except RenderError as exc:
                raise InvalidTemplate(f"Default of {exc}", field="variables") from None
    _check_source(body, declared, "body")
    if subject:
        _check_source(subject, declared, "subject")
    if provider_template:
        if channel not in {"whatsapp", "messenger"}:
            raise InvalidTemplate(
                "Provider templates exist on whatsapp and messenger only.",
                field="provider_template",
            )
        for name in provider_template.get("parameters") or []:
            if name.split(".", 1)[0] not in declared | {"contact"}:
                raise InvalidTemplate(
                    f"Parameter {name!r} is neither a declared variable nor contact.<field>.",
                    field="provider_template.parameters",
                )
    elif not body.strip():
        raise InvalidTemplate("The body is empty.", field="body")
    # a trial render: whatever the sandbox calls unsafe is refused now, not at send time
    sample = {v["name"]: _SAMPLES.get(v.get("type", "string"), "x") for v in variables}
    sample["contact"] = {"name": "x", "attributes": {}, "tags": [], "addresses": {}}
    for where, source in (("body", body), ("subject", subject or "")):
        try:
            ENV.from_string(source).render(sample)
        except (SecurityError, OverflowError) as exc:  # beyond the sandbox's limits
            raise InvalidTemplate(
                f"The {where} does something unsafe: {exc}", field=where
            ) from None
        except Exception:  # noqa: S110 (missing attributes and such are for send time)
            pass


def coerce(spec: dict[str, Any], value: Any) -> Any:
    """`value` as the variable's declared type, or RenderError."""
    kind, name = spec.get("type", "string"), spec["name"]
    try:
        if kind == "string":
            if isinstance(value, dict | list):
                raise ValueError
            text = str(value)
            limit = spec.get("max_length")
            if limit and len(text) > limit:
                raise RenderError(f"variable {name!r} is longer than {limit} characters")
            return text
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"true", "yes", "1"}:
                return True
            if text in {"false", "no", "0"}:
                return False
            raise ValueError
        if kind == "date":
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError):
        raise RenderError(f"variable {name!r} is not a valid {kind}: {str(value)[:40]!r}") from None
    raise RenderError(f"variable {name!r} has an unknown type {kind!r}")


def contact_context(
    contact: Any | None, tags: list[str], addresses: dict[str, str]
) -> dict[str, Any]:
    if contact is None:
        return {"name": None, "first_name": None, "attributes": {}, "tags": [], "addresses": {}}
    name = contact.name or ""
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": name.split(" ", 1)[0] if name else None,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "attributes": dict(contact.attributes or {}),
        "tags": list(tags),
        "addresses": dict(addresses),
    }


@dataclass
class Rendered:
    body: str | None
    subject: str | None
    provider_template: dict[str, Any] | None  # the `template` of a send request


def _compiled(template: Template, which: str, source: str) -> Any:
    key = (f"{template.id}:{which}", f"{template.updated_at.isoformat()}:{hash(source)}")
    hit = _cache.get(key)
    if hit is None:
        hit = ENV.from_string(source)
        _cache[key] = hit
        if len(_cache) > 512:
            _cache.popitem(last=False)
    return hit


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise RenderError(f"parameter {dotted!r} has no value")
        value = value[part]
    return value


def render(template: Template, variables: dict[str, Any], contact: dict[str, Any]) -> Rendered:
    """Render for one recipient: campaign or request `variables` first, then the contact's
    attribute of the same name, then the declared default. RenderError on any failure."""
    values: dict[str, Any] = {}
    attributes = contact.get("attributes") or {}
    for spec in template.variables or []:
        name = spec["name"]
        value = variables.get(name)
        if value is None:
            value = attributes.get(name)
        if value is None:
            value = spec.get("default")
        if value is None:
            if spec.get("required", True):
                raise RenderError(f"variable {name!r} has no value")
            values[name] = ""
            continue
        values[name] = coerce(spec, value)
    context = {**values, "contact": contact}
    try:
        body = _compiled(template, "body", template.body).render(context) if template.body else ""
        subject = (
            _compiled(template, "subject", template.subject).render(context).strip()
            if template.subject
            else None
        )
    except SecurityError as exc:
        raise RenderError(f"unsafe template: {exc}") from None
    except TemplateError as exc:
        raise RenderError(str(exc) or type(exc).__name__) from None
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise RenderError(f"{type(exc).__name__}: {exc}") from None
    limit = min(MAX_BODY.get(template.channel, MAX_OUTPUT), MAX_OUTPUT)
    if len(body) > limit:
        raise RenderError(
            f"the rendered body has {len(body)} characters; {template.channel} allows {limit}"
        )
    provider = None
    if template.provider_template:
        pt = template.provider_template
        provider = {
            "name": pt["name"],
            "language": pt.get("language", "en"),
            "variables": [str(_lookup(context, p)) for p in pt.get("parameters") or []],
        }
    elif not body.strip():
        raise RenderError("the template renders to an empty message")
    return Rendered(body or None, subject, provider)
