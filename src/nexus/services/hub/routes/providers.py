"""Provider pages over VAS's API: health of every account (live), and adding, editing,
testing, disabling and deleting an account. Credentials are write-only: the API never
returns them, and a form shown again never carries the secrets that were typed."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from nexus.services.hub.api import ApiError
from nexus.services.hub.routes.forms import done, field_errors, text
from nexus.services.hub.web import Ctx, HubRoute, is_htmx, redirect, render, signed_in

router = APIRouter(prefix="/providers", route_class=HubRoute, include_in_schema=False)

DONE = {
    "created": "The provider account is added. Nexus routes messages to it now.",
    "saved": "The changes are saved.",
    "enabled": "The provider account is enabled again.",
    "disabled": "The provider account is disabled: no message is routed to it.",
    "deleted": "The provider account is deleted.",
}
TYPE_NAMES = {
    "twilio": "Twilio",
    "infobip": "Infobip",
    "africastalking": "Africa's Talking",
    "vonage": "Vonage",
    "whatsapp_cloud": "WhatsApp Cloud API",
    "messenger": "Messenger",
    "telegram": "Telegram",
    "smtp": "SMTP server",
    "sandbox": "Sandbox (simulated)",
}
WORDS = {"sid": "SID", "id": "ID", "api": "API"}
SETTINGS = ("name", "channel", "sender", "base_url", "priority", "cost_per_unit", "currency")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")
REFUSED = {400, 404, 409, 422}


def label(field: str) -> str:
    """'account_sid' -> 'Account SID': a credential's name as a form label."""
    words = [WORDS.get(w, w) for w in field.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


# -- health --------------------------------------------------------------------------------
@router.get("")
async def providers(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    health = await ctx.get("vas", "/providers/health")
    if is_htmx(request):
        return render(request, "_providers_rows.html", ctx, providers=health)
    return render(
        request,
        "providers.html",
        ctx,
        providers=health,
        flash=done(request, DONE),
    )


# -- the form ------------------------------------------------------------------------------
class Submitted:
    """A provider form as typed: the values to show again, and the API's body."""

    def __init__(self, form: Any, kind: dict[str, Any]) -> None:
        self.values = {name: text(form, name, 500) for name in SETTINGS}
        self.values["currency"] = self.values["currency"].upper()
        self.values["countries"] = text(form, "countries")
        self.values["rate_limit_per_s"] = text(form, "rate_limit_per_s", 20)
        self.values["options"] = text(form, "options", 10_000)
        self.values["enabled"] = form.get("enabled") == "on"
        self.credentials = {
            f["name"]: text(form, "cred_" + f["name"], 2000) for f in kind["credentials"]
        }
        self.credentials = {k: v for k, v in self.credentials.items() if v}
        secret = {f["name"] for f in kind["credentials"] if f["secret"]}
        self.values["credentials"] = {  # identifiers are shown again, secrets never
            k: v for k, v in self.credentials.items() if k not in secret
        }
        self.errors: dict[str, str] = {}

    def body(self, *, creating: bool) -> dict[str, Any]:
        """The fields for POST (creating) or PATCH; empty optional fields clear on PATCH."""
        v = self.values
        body: dict[str, Any] = {"name": v["name"]}
        for name in ("sender", "base_url", "rate_limit_per_s"):
            if v[name] or not creating:
                body[name] = v[name] or None
        for name in ("priority", "cost_per_unit", "currency"):
            if v[name]:
                body[name] = v[name]
        if creating:  # afterwards, the channel stays and Enable / Disable are buttons
            body["channel"] = v["channel"]
            body["enabled"] = v["enabled"]
        codes = [c for c in re.split(r"[\s,;]+", v["countries"]) if c]
        if any(not COUNTRY.match(c) for c in codes):
            self.errors["countries"] = "Countries are two-letter codes such as US, GB, KE."
        body["countries"] = [c.upper() for c in codes]
        if v["options"]:
            try:
                body["options"] = json.loads(v["options"])
            except ValueError:
                body["options"] = None
            if not isinstance(body["options"], dict):
                self.errors["options"] = 'Options are a JSON object, such as {"timeout_s": 10}.'
        elif not creating:
            body["options"] = {}
        if self.credentials or creating:
            body["credentials"] = self.credentials
        return body


async def _types(ctx: Ctx) -> dict[str, dict[str, Any]]:
    return {t["type"]: t for t in await ctx.get("vas", "/providers/types")}


def _types_page(request: Request, ctx: Ctx, types: dict[str, dict[str, Any]]) -> Response:
    order = {name: n for n, name in enumerate(TYPE_NAMES)}  # the sandbox last, unknown after
    listed = sorted(types.values(), key=lambda t: order.get(t["type"], len(order)))
    return render(request, "provider_types.html", ctx, types=listed, names=TYPE_NAMES)


def _form_page(
    request: Request,
    ctx: Ctx,
    kind: dict[str, Any],
    values: dict[str, Any],
    *,
    account: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    test: dict[str, Any] | None = None,
) -> Response:
    return render(
        request,
        "provider.html",
        ctx,
        kind=kind,
        account=account,
        values=values,
        errors=errors or {},
        error=error,
        test=test,
        names=TYPE_NAMES,
        label=label,
        flash=done(request, DONE),
    )


@router.get("/new")
async def new_provider(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    types = await _types(ctx)
    chosen = request.query_params.get("type", "")
    if chosen not in types:
        return _types_page(request, ctx, types)
    kind = types[chosen]
    values = {"channel": kind["channels"][0], "priority": "100", "currency": "USD"}
    return _form_page(request, ctx, kind, {**values, "enabled": True, "credentials": {}})


@router.post("/new")
async def create_provider(request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    form = await request.form()
    types = await _types(ctx)
    kind = types.get(text(form, "type", 40))
    if kind is None:
        return _types_page(request, ctx, types)
    typed = Submitted(form, kind)
    body = {"type": kind["type"], **typed.body(creating=True)}
    if typed.errors:
        return _form_page(request, ctx, kind, typed.values, errors=typed.errors)
    try:
        created = await ctx.post("vas", "/providers", body)
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return _form_page(
            request, ctx, kind, typed.values, errors=field_errors(exc), error=exc.detail
        )
    return redirect(f"/providers/{created['id']}?done=created", request)


# -- one account ---------------------------------------------------------------------------
def _values_of(account: dict[str, Any]) -> dict[str, Any]:
    values = {name: account.get(name) or "" for name in SETTINGS}
    values["priority"] = str(account["priority"])
    values["cost_per_unit"] = f"{Decimal(str(account['cost_per_unit'])).normalize():f}"
    values["countries"] = ", ".join(account["countries"])
    values["rate_limit_per_s"] = (
        f"{account['rate_limit_per_s']:g}" if account["rate_limit_per_s"] else ""
    )
    values["options"] = json.dumps(account["options"]) if account["options"] else ""
    values["enabled"] = account["enabled"]
    values["credentials"] = {}
    return values


@router.get("/{provider_id}")
async def provider(provider_id: str, request: Request, ctx: Ctx = Depends(signed_in)) -> Response:
    account = await ctx.get("vas", f"/providers/{provider_id}")
    kind = (await _types(ctx))[account["type"]]
    test = None
    if request.query_params.get("test") and ctx.can("vas:provider:manage"):
        test = await ctx.get("vas", f"/providers/{provider_id}/health")
    return _form_page(request, ctx, kind, _values_of(account), account=account, test=test)


@router.post("/{provider_id}")
async def save_provider(
    provider_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    form = await request.form()
    account = await ctx.get("vas", f"/providers/{provider_id}")
    kind = (await _types(ctx))[account["type"]]
    typed = Submitted(form, kind)
    typed.values["channel"] = account["channel"]
    body = typed.body(creating=False)
    if typed.errors:
        return _form_page(request, ctx, kind, typed.values, account=account, errors=typed.errors)
    try:
        await ctx.call("vas", "PATCH", f"/providers/{provider_id}", json=body)
    except ApiError as exc:
        if exc.status not in REFUSED:
            raise
        return _form_page(
            request,
            ctx,
            kind,
            typed.values,
            account=account,
            errors=field_errors(exc),
            error=exc.detail,
        )
    return redirect(f"/providers/{provider_id}?done=saved", request)


@router.post("/{provider_id}/enable")
async def enable_provider(
    provider_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    return await _switch(provider_id, request, ctx, enabled=True)


@router.post("/{provider_id}/disable")
async def disable_provider(
    provider_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    return await _switch(provider_id, request, ctx, enabled=False)


async def _switch(provider_id: str, request: Request, ctx: Ctx, *, enabled: bool) -> Response:
    await ctx.call("vas", "PATCH", f"/providers/{provider_id}", json={"enabled": enabled})
    return redirect(f"/providers/{provider_id}?done={'en' if enabled else 'dis'}abled", request)


@router.post("/{provider_id}/delete")
async def delete_provider(
    provider_id: str, request: Request, ctx: Ctx = Depends(signed_in)
) -> Response:
    await ctx.call("vas", "DELETE", f"/providers/{provider_id}")
    return redirect("/providers?done=deleted", request)
