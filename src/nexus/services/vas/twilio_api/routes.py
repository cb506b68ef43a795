"""Twilio's Messaging REST API at `/2010-04-01/Accounts/{AccountSid}/…` (form-encoded in,
Twilio's JSON shapes and error bodies out, HTTP Basic auth with Twilio-style credentials).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.services.vas import dispatch, lifecycle
from nexus.services.vas.models import Message, MessageEvent
from nexus.services.vas.state import Vas, vas_of
from nexus.services.vas.twilio_api import resources, sending
from nexus.services.vas.twilio_api.credentials import TwilioCaller, authenticate
from nexus.services.vas.twilio_api.errors import TwilioError, TwilioRoute
from nexus.services.vas.twilio_api.models import TwilioCredential, TwilioMessage

router = APIRouter(prefix="/2010-04-01", route_class=TwilioRoute, tags=["twilio-compatible"])
ACCOUNT = "/Accounts/{AccountSid}"
CHANNELS = ("sms", "whatsapp")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


async def _caller(request: Request, account_sid: str) -> tuple[Vas, TwilioCaller]:
    vas = vas_of(request.app.state.runtime)
    return vas, await authenticate(vas, request, account_sid)


async def _form(request: Request) -> sending.Form:
    body = (await request.body()).decode("utf-8", "replace")
    return sending.Form(parse_qsl(body, keep_blank_values=True))


@router.get(ACCOUNT + ".json", summary="The account (Twilio's Account resource)")
async def fetch_account(AccountSid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    async with vas.db.read(org_id=caller.org_id) as session:
        account = await session.scalar(
            select(TwilioCredential).where(TwilioCredential.sid == caller.account_sid)
        )
    assert account is not None
    uri = f"/{resources.API_VERSION}{ACCOUNT.format(AccountSid=account.sid)}"
    return JSONResponse(
        {
            "sid": account.sid,
            "owner_account_sid": account.sid,
            "friendly_name": account.friendly_name,
            "status": "active",
            "type": "Full",
            "date_created": resources.format_date(account.created_at),
            "date_updated": resources.format_date(account.created_at),
            "uri": uri + ".json",
            "subresource_uris": {"messages": uri + "/Messages.json"},
        }
    )


@router.post(
    ACCOUNT + "/Messages.json", status_code=201, summary="Send a message (Twilio's Create Message)"
)
async def create_message(AccountSid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    org = await vas.org(caller.org_id)
    send = sending.parse(await _form(request), org.default_region)
    key = request.headers.get("idempotency-key")
    message, extra = await sending.accept(vas, caller, send, key[:200] if key else None)
    refusal = sending.refusal(message)
    if refusal is not None:
        raise refusal
    return JSONResponse(resources.resource(message, caller.account_sid, extra), status_code=201)


async def _message(
    session: AsyncSession, caller: TwilioCaller, sid: str, *, lock: bool = False
) -> tuple[Message, TwilioMessage | None]:
    message_id = resources.message_id(sid)
    message = await session.get(Message, message_id, with_for_update=lock) if message_id else None
    if message is None or message.org_id != caller.org_id or message.channel not in CHANNELS:
        raise TwilioError(20404, f"The requested resource {sid} was not found")
    return message, await session.get(TwilioMessage, message.id)


@router.get(ACCOUNT + "/Messages/{Sid}.json", summary="A message (Twilio's Fetch Message)")
async def fetch_message(AccountSid: str, Sid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    async with vas.db.read(org_id=caller.org_id) as session:
        message, extra = await _message(session, caller, Sid)
    return JSONResponse(resources.resource(message, caller.account_sid, extra))


@router.post(
    ACCOUNT + "/Messages/{Sid}.json",
    summary="Cancel (Status=canceled) or redact (Body=) a message (Twilio's Update Message)",
)
async def update_message(AccountSid: str, Sid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    form = await _form(request)
    status, body = form.get("Status"), form.get("Body")
    if status is not None and status != "canceled":
        raise TwilioError(20001, "Status can only be set to canceled.")
    if body is not None and body != "":
        raise TwilioError(20001, "Body can only be set to an empty string (to redact it).")
    async with vas.db.transaction(org_id=caller.org_id) as session:
        message, extra = await _message(session, caller, Sid, lock=True)
        if status == "canceled" and not await dispatch.cancel(vas, session, message):
            raise TwilioError(30409, f"The message is {resources.twilio_status(message)}.")
        if body == "":
            if message.status not in lifecycle.FINAL:
                raise TwilioError(20009, "A message can be redacted once its delivery is done.")
            message.body = ""
            lifecycle.record(
                session, message, message.status, kind="redacted", reason="Body redacted."
            )
    return JSONResponse(resources.resource(message, caller.account_sid, extra))


@router.delete(
    ACCOUNT + "/Messages/{Sid}.json", status_code=204, summary="Delete a finished message"
)
async def delete_message(AccountSid: str, Sid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    async with vas.db.transaction(org_id=caller.org_id) as session:
        message, _ = await _message(session, caller, Sid)
        if message.status not in lifecycle.FINAL:
            raise TwilioError(20009)
        for model, column in (
            (MessageEvent, MessageEvent.message_id),
            (TwilioMessage, TwilioMessage.message_id),
        ):
            await session.execute(delete(model).where(column == message.id))
        await session.delete(message)
    return Response(status_code=204)


# -- list with Twilio's paging ----------------------------------------------------------
def _span(raw: str, name: str, *, whole_day: bool = False) -> tuple[dt.datetime, dt.datetime]:
    """The instants a filter value stands for, [start, end): a date (`YYYY-MM-DD`) is its
    UTC day; a time is itself, or its day with `whole_day`."""
    text = raw.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
            whole_day = True
        else:
            value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TwilioError(
            20001, f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time."
        ) from None
    value = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if whole_day:
        day = dt.datetime.combine(value.date(), dt.time(), dt.UTC)
        return day, day + dt.timedelta(days=1)
    return value, value + dt.timedelta(microseconds=1)


def _filters(params: dict[str, str]) -> tuple[list[Any], list[tuple[str, str]]]:
    """SQL conditions for Twilio's filters, and the filters to repeat in page URIs."""
    conditions: list[Any] = [Message.channel.in_(CHANNELS)]
    kept: list[tuple[str, str]] = []
    sender = func.coalesce(TwilioMessage.sender, Message.sender)
    for name, column in (("To", Message.to), ("From", sender)):
        value = params.get(name)
        if value:
            kept.append((name, value))
            whatsapp = value.startswith(sending.WHATSAPP)
            conditions += [
                column == value.removeprefix(sending.WHATSAPP),
                Message.channel == ("whatsapp" if whatsapp else "sms"),
            ]
    sent = func.coalesce(Message.sent_at, Message.created_at)
    if params.get("DateSent"):  # the day of the value (SDKs send dates as midnight times)
        kept.append(("DateSent", params["DateSent"]))
        start, end = _span(params["DateSent"], "DateSent", whole_day=True)
        conditions += [sent >= start, sent < end]
    if params.get("DateSent<"):  # on or before
        kept.append(("DateSent<", params["DateSent<"]))
        conditions.append(sent < _span(params["DateSent<"], "DateSent<")[1])
    if params.get("DateSent>"):  # on or after
        kept.append(("DateSent>", params["DateSent>"]))
        conditions.append(sent >= _span(params["DateSent>"], "DateSent>")[0])
    return conditions, kept


def _page_params(params: dict[str, str]) -> tuple[int, int, str | None]:
    try:
        size = int(params.get("PageSize") or DEFAULT_PAGE_SIZE)
        page = int(params.get("Page") or 0)
    except ValueError:
        raise TwilioError(20001, "Page and PageSize must be whole numbers.") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise TwilioError(20001, f"PageSize must be from 1 to {MAX_PAGE_SIZE}.")
    if page < 0:
        raise TwilioError(20001, "Page must be 0 or more.")
    return size, page, params.get("PageToken") or None


def _token(token: str) -> tuple[str, str]:
    """A PageToken: `PA<sid>` (the page after that message) or `PB<sid>` (before it)."""
    direction, sid = token[:2], token[2:]
    message_id = resources.message_id(sid)
    if direction not in {"PA", "PB"} or message_id is None:
        raise TwilioError(20001, "PageToken is not valid; use the next_page_uri of a page.")
    return direction, message_id


@router.get(ACCOUNT + "/Messages.json", summary="List messages, newest first (Twilio's paging)")
async def list_messages(AccountSid: str, request: Request) -> Response:
    vas, caller = await _caller(request, AccountSid)
    params = dict(request.query_params)
    conditions, kept = _filters(params)
    size, page, token = _page_params(params)
    stmt: Select[Any] = (
        select(Message, TwilioMessage)
        .outerjoin(TwilioMessage, TwilioMessage.message_id == Message.id)
        .where(Message.org_id == caller.org_id, *conditions)
    )
    before = False
    if token:
        direction, anchor = _token(token)
        before = direction == "PB"
        stmt = stmt.where(Message.id > anchor if before else Message.id < anchor)
    order = Message.id.asc() if before else Message.id.desc()
    stmt = stmt.order_by(order).limit(size + 1)
    if not token and page:
        stmt = stmt.offset(page * size)
    async with vas.db.read(org_id=caller.org_id) as session:
        rows = [(m, extra) for m, extra in await session.execute(stmt)]
    more = len(rows) > size
    rows = rows[:size]
    if before:
        rows.reverse()
        more = True  # the anchor message itself comes after this page
    items = [resources.resource(m, caller.account_sid, extra) for m, extra in rows]
    base = f"/{resources.API_VERSION}/Accounts/{caller.account_sid}/Messages.json"

    def uri(page_number: int, page_token: str | None = None) -> str:
        query = [*kept, ("PageSize", str(size)), ("Page", str(page_number))]
        if page_token:
            query.append(("PageToken", page_token))
        return f"{base}?{urlencode(query)}"

    start = page * size
    return JSONResponse(
        {
            "messages": items,
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(items) - 1, 0),
            "uri": uri(page, token),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, "PA" + items[-1]["sid"]) if more and items else None,
            "previous_page_uri": uri(page - 1, "PB" + items[0]["sid"])
            if page > 0 and items
            else None,
        }
    )


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def not_supported(path: str) -> Response:
    """Other Twilio resources (calls, media, numbers, ...) are not served: Twilio's 404."""
    raise TwilioError(
        20404, f"The requested resource /{resources.API_VERSION}/{path} was not found"
    )
