"""/api/v1/messages (unified) and the channel endpoints /sms, /whatsapp, /telegram, /messenger."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy import select

from nexus.kernel.auth import Principal, require
from nexus.kernel.errors import BadRequest, Conflict, NotFound, Problem
from nexus.kernel.pagination import Page, page_of, paginate
from nexus.services.vas import dispatch, encoding
from nexus.services.vas.accept import Item
from nexus.services.vas.addresses import InvalidAddress, normalize
from nexus.services.vas.messages import Prepared, SendRequest, prepare
from nexus.services.vas.models import Message, MessageEvent
from nexus.services.vas.schemas import (
    BulkIn,
    BulkOut,
    BulkResult,
    ChannelBulkIn,
    ChannelSendIn,
    EventOut,
    LocationSendIn,
    MediaSendIn,
    MessageOut,
    PreviewIn,
    PreviewOut,
    PreviewProblem,
    SendIn,
    TemplateSendIn,
)
from nexus.services.vas.settings import MAX_BODY
from nexus.services.vas.state import Vas, vas_of

router = APIRouter(tags=["messages"])
IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=200,
    description="Repeat a request safely: the same key returns the same message.",
)


async def get_vas(request: Request) -> Vas:
    return vas_of(request.app.state.runtime)


def _request(body: SendIn | ChannelSendIn, channel: str) -> SendRequest:
    data = body.model_dump(mode="json", exclude_none=True)
    return SendRequest(
        channel=channel,
        to=body.to,
        body=body.body,
        sender=body.from_,
        subject=getattr(body, "subject", None),
        template=data.get("template"),
        media=data.get("media"),
        location=data.get("location"),
        send_at=_utc(body.send_at),
        ttl_s=body.ttl_s,
        region=body.region,
        metadata=body.metadata,
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _out(
    message: Message | dict[str, Any], history: list[MessageEvent] | None = None
) -> MessageOut:
    out = MessageOut.model_validate(message)
    if history is not None:
        out.history = [EventOut.model_validate(e) for e in history]
    return out


async def _send_one(
    vas: Vas, principal: Principal, request: SendRequest, key: str | None, response: Response
) -> MessageOut:
    org = await vas.org(principal.org_id)
    prepared = prepare(request, org.default_region)  # 4xx before anything is stored
    routes = await vas.accounts.routes(principal.org_id, request.channel)
    [accepted] = await vas.acceptor.accept(principal.org_id, [Item(prepared, routes, key)])
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _out(accepted.row)


async def _send_bulk(
    vas: Vas, principal: Principal, requests: list[SendRequest], key: str | None
) -> BulkOut:
    if len(requests) > vas.settings.max_bulk:
        raise BadRequest(f"At most {vas.settings.max_bulk} messages per request.")
    results: list[BulkResult] = []
    ready: list[tuple[int, Prepared]] = []
    region = (await vas.org(principal.org_id)).default_region
    for index, request in enumerate(requests):
        try:
            ready.append((index, prepare(request, region)))
        except Problem as exc:
            results.append(BulkResult(index=index, status=exc.status, error=exc.detail))
    routes = {
        channel: await vas.accounts.routes(principal.org_id, channel)
        for channel in {p.request.channel for _, p in ready}
    }
    items = [
        Item(prepared, routes[prepared.request.channel], f"{key}:{index}" if key else None)
        for index, prepared in ready
    ]
    accepted = await vas.acceptor.accept(principal.org_id, items)
    for (index, _), done in zip(ready, accepted, strict=True):
        results.append(
            BulkResult(
                index=index,
                status=202,
                message_id=done.row["id"],
                message_status=done.row["status"],
            )
        )
    results.sort(key=lambda r: r.index)
    return BulkOut(
        accepted=sum(1 for r in results if r.status == 202 and r.message_status != "rejected"),
        rejected=sum(1 for r in results if r.message_status == "rejected"),
        failed=sum(1 for r in results if r.status != 202),
        results=results,
    )


# -- unified -------------------------------------------------------------------------------
@router.post(
    "/messages/send",
    response_model=MessageOut,
    status_code=202,
    summary="Send a message on any channel",
    responses={422: {"description": "Invalid recipient, channel or content; nothing stored"}},
)
async def send(
    body: SendIn,
    response: Response,
    key: str | None = IdempotencyKey,
    principal: Principal = require("vas:message:send"),
    vas: Vas = Depends(get_vas),
) -> MessageOut:
    """Stored durably before the answer; `status` is `queued`, or `rejected` with the reason
    (opted-out recipient, no provider for the channel)."""
    return await _send_one(vas, principal, _request(body, body.channel), key, response)


@router.post(
    "/messages/send/bulk",
    response_model=BulkOut,
    status_code=207,
    summary="Send many messages; per-item results",
)
async def send_bulk(
    body: BulkIn,
    key: str | None = IdempotencyKey,
    principal: Principal = require("vas:message:send"),
    vas: Vas = Depends(get_vas),
) -> BulkOut:
    return await _send_bulk(vas, principal, [_request(m, m.channel) for m in body.messages], key)


@router.post(
    "/messages/preview",
    response_model=PreviewOut,
    summary="Encoding, segments and cost of a message being written (nothing is sent)",
)
async def preview(
    body: PreviewIn,
    principal: Principal = require("vas:message:send"),
    vas: Vas = Depends(get_vas),
) -> PreviewOut:
    """For a compose form's live preview: problems come back in the answer, not as 4xx."""
    problems: list[PreviewProblem] = []
    to = None
    if body.to and body.to.strip():
        region = body.region or (await vas.org(principal.org_id)).default_region
        try:
            to = normalize(body.channel, body.to, region)
        except InvalidAddress as exc:
            problems.append(PreviewProblem(field="to", message=str(exc)))
    text = body.body
    limit = MAX_BODY[body.channel]
    if len(text) > limit:
        problems.append(
            PreviewProblem(
                field="body", message=f"{len(text)} characters; {body.channel} allows {limit}."
            )
        )
    out = PreviewOut(
        channel=body.channel, to=to, characters=len(text), segments=1, max_body=limit, providers=0
    )
    if body.channel == "sms" and text:
        info = encoding.analyze(text)
        out.encoding, out.units, out.segments = info.encoding, info.units, info.segments
        out.per_segment, out.remaining = info.per_segment, info.remaining
    routes = await vas.accounts.routes(principal.org_id, body.channel)
    out.providers = len(routes)
    if routes:
        out.estimated_cost = min(r.candidate.cost_per_unit for r in routes) * out.segments
        out.currency = routes[0].account.currency
    else:
        problems.append(
            PreviewProblem(field="channel", message=f"No {body.channel} provider is enabled.")
        )
    out.problems = problems
    return out


@router.get("/messages", response_model=Page[MessageOut], summary="The message log")
async def list_messages(
    channel: str | None = None,
    status: str | None = None,
    to: str | None = Query(None, max_length=320),
    direction: str | None = Query(None, pattern="^(inbound|outbound)$"),
    provider_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = require("vas:message:read"),
    vas: Vas = Depends(get_vas),
) -> Page[MessageOut]:
    stmt = select(Message).where(Message.org_id == principal.org_id)
    for column, value in (
        (Message.channel, channel),
        (Message.status, status),
        (Message.to, to),
        (Message.direction, direction),
        (Message.provider_id, provider_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since:
        stmt = stmt.where(Message.created_at >= _utc(since))
    if until:
        stmt = stmt.where(Message.created_at < _utc(until))
    async with vas.db.read() as session:
        rows = list(
            (
                await session.scalars(paginate(stmt, Message.id, cursor, limit, descending=True))
            ).all()
        )
    items, next_cursor = page_of(rows, limit)
    return Page(items=[_out(m) for m in items], next_cursor=next_cursor)


async def _get(vas: Vas, principal: Principal, message_id: str) -> MessageOut:
    async with vas.db.read(org_id=principal.org_id) as session:
        message = await session.get(Message, message_id)
        if message is None or message.org_id != principal.org_id:
            raise NotFound(f"No message {message_id}.")
        history = list(
            (
                await session.scalars(
                    select(MessageEvent)
                    .where(MessageEvent.message_id == message_id)
                    .order_by(MessageEvent.at, MessageEvent.id)
                )
            ).all()
        )
    return _out(message, history)


@router.get(
    "/messages/{message_id}", response_model=MessageOut, summary="A message with its history"
)
async def get_message(
    message_id: str, principal: Principal = require("vas:message:read"), vas: Vas = Depends(get_vas)
) -> MessageOut:
    return await _get(vas, principal, message_id)


@router.post(
    "/messages/{message_id}/cancel",
    response_model=MessageOut,
    summary="Cancel a message that has not been sent yet",
)
async def cancel_message(
    message_id: str, principal: Principal = require("vas:message:send"), vas: Vas = Depends(get_vas)
) -> MessageOut:
    async with vas.db.transaction(org_id=principal.org_id) as session:
        # locked: a dispatcher recording the send at the same moment goes first or after
        message = await session.get(Message, message_id, with_for_update=True)
        if message is None:
            raise NotFound(f"No message {message_id}.")
        if not await dispatch.cancel(vas, session, message):
            raise Conflict(
                f"The message is {message.status}; only queued messages can be canceled."
            )
    return await _get(vas, principal, message_id)


# -- channel endpoints ---------------------------------------------------------------------
def _channel_routes(channel: str, extra: dict[str, type[ChannelSendIn]]) -> None:
    async def send_on(
        body: ChannelSendIn,
        response: Response,
        key: str | None = IdempotencyKey,
        principal: Principal = require("vas:message:send"),
        vas: Vas = Depends(get_vas),
    ) -> MessageOut:
        return await _send_one(vas, principal, _request(body, channel), key, response)

    router.add_api_route(
        f"/{channel}/send",
        send_on,
        methods=["POST"],
        status_code=202,
        response_model=MessageOut,
        tags=[channel],
        summary=f"Send a {channel} message",
        name=f"{channel}_send",
    )
    for suffix, model in extra.items():

        def make(model: type[ChannelSendIn]) -> Any:
            async def send_special(
                body: model,
                response: Response,  # type: ignore[valid-type]
                key: str | None = IdempotencyKey,
                principal: Principal = require("vas:message:send"),
                vas: Vas = Depends(get_vas),
            ) -> MessageOut:
                return await _send_one(vas, principal, _request(body, channel), key, response)

            send_special.__annotations__["body"] = model  # a real class, not a string
            return send_special

        router.add_api_route(
            f"/{channel}/send/{suffix}",
            make(model),
            methods=["POST"],
            status_code=202,
            response_model=MessageOut,
            tags=[channel],
            summary=f"Send a {channel} {suffix} message",
            name=f"{channel}_send_{suffix}",
        )


_channel_routes("sms", {})
_channel_routes("whatsapp", {"template": TemplateSendIn, "media": MediaSendIn})
_channel_routes("telegram", {"media": MediaSendIn, "location": LocationSendIn})
_channel_routes("messenger", {"template": TemplateSendIn})


@router.post(
    "/sms/send/bulk",
    response_model=BulkOut,
    status_code=207,
    tags=["sms"],
    summary="Send many SMS; per-item results",
)
async def sms_bulk(
    body: ChannelBulkIn,
    key: str | None = IdempotencyKey,
    principal: Principal = require("vas:message:send"),
    vas: Vas = Depends(get_vas),
) -> BulkOut:
    return await _send_bulk(vas, principal, [_request(m, "sms") for m in body.messages], key)


@router.get(
    "/sms/status/{message_id}",
    response_model=MessageOut,
    tags=["sms"],
    summary="Status and history of an SMS",
)
async def sms_status(
    message_id: str, principal: Principal = require("vas:message:read"), vas: Vas = Depends(get_vas)
) -> MessageOut:
    return await _get(vas, principal, message_id)
