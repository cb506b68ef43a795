"""What every HTTP provider fake shares: a loopback aiohttp server, request records,
counters, fault knobs (fail rate, latency, outages, forced error codes) and the
delivery-callback player (delay, batching, shuffling, duplicates, losses).

A subclass adds the provider's routes and answers in the provider's own shapes; it
turns accepted messages into `CallbackEvent`s and renders them into the provider's
signed callback requests (`render_callbacks`). A fake whose provider can be asked for
a message's status keeps its messages in `lookups` and moves them on in `advance`,
when their status changes at the provider, whether or not the callback then gets through
(`callback_loss`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, get_args
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

OutageMode = Literal["refuse", "hang", "error"]
OUTAGE_MODES: tuple[str, ...] = get_args(OutageMode)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Destinations (phone numbers, chat ids, PSIDs) steer the fake's outcome by their ending,
# like the sandbox provider: ...0000 invalid, ...0001 accepted but never delivered,
# ...0002 blocked / unsubscribed, ...0003 outside the messaging window (Meta channels).
OUTCOME_SUFFIXES = {
    "0000": "invalid",
    "0001": "undeliverable",
    "0002": "blocked",
    "0003": "no_session",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in LOOPBACK_HOSTS


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request a fake (or a webhook sink) received, exactly as it arrived."""

    method: str
    url: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form_items(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def form(self) -> dict[str, str]:
        return dict(self.form_items())

    def webhook_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the adapters' `WebhookRequest`."""
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": self.body,
            "query": dict(self.query),
        }

    @classmethod
    async def from_aiohttp(cls, request: web.Request) -> ReceivedRequest:
        body = await request.read()
        return cls(
            method=request.method,
            url=str(request.url),
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )


# Where the middleware keeps the recorded request (a typed key on aiohttp >= 3.12).
RECEIVED: Any = (
    web.RequestKey("received", ReceivedRequest) if hasattr(web, "RequestKey") else "received"
)


def received_of(request: web.Request) -> ReceivedRequest:
    received: ReceivedRequest = request[RECEIVED]
    return received


@dataclass(frozen=True)
class CallbackEvent:
    """One thing the fake will report (a status change, an inbound message) to `url`."""

    url: str
    data: dict[str, Any]


@dataclass(frozen=True)
class OutgoingCall:
    """A rendered, signed callback request."""

    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass
class SentCallback:
    call: OutgoingCall
    status: int | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400

    def as_received(self) -> ReceivedRequest:
        """The callback as its receiver saw it (for adapters' verify/parse in tests)."""
        parts = urlsplit(self.call.url)
        return ReceivedRequest(
            method=self.call.method,
            url=self.call.url,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.call.headers.items()},
            body=self.call.body,
            at=self.at,
        )


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers=headers,
    )


class FakeProvider:
    """Base of the HTTP provider fakes. Use as an async context manager:

        async with TwilioFake(callback_delay_ms=5) as fake:
            fake.base_url, fake.credentials, fake.requests, fake.counters, fake.callbacks
            fake.fail_rate = 0.5
            fake.error_code, fake.error_times = "21211", 1
            await fake.set_outage("refuse")  # or "hang", "error", None
            fake.callback_loss = 1.0  # delivery callbacks are lost (the status still moves)

    Knobs can be changed at any time (attributes), `set_outage` is a coroutine because
    "refuse" closes and later reopens the listening socket.
    """

    name: ClassVar[str] = ""
    default_credentials: ClassVar[dict[str, str]] = {}
    default_number: ClassVar[str] = "+15005550006"
    # The provider error code a `fail_rate` failure answers with (a retryable one).
    transient_code: ClassVar[str] = "http:503"
    # Events per callback request; >1 gathers events for the same URL for `batch_window_ms`.
    default_callback_batch: ClassVar[int] = 1

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        fail_rate: float = 0.0,
        latency_ms: float = 0.0,
        error_code: str | None = None,
        error_times: int | None = None,
        outage: OutageMode | None = None,
        callback_url: str | None = None,
        callback_delay_ms: float = 20.0,
        callback_gap_ms: float = 5.0,
        callback_batch: int | None = None,
        batch_window_ms: float = 20.0,
        callback_retries: int = 0,
        callback_timeout_s: float = 5.0,
        shuffle_callbacks: bool = False,
        duplicate_callbacks: bool = False,
        read_receipts: bool = False,
        undeliverable_rate: float = 0.0,
        callback_loss: float = 0.0,
        max_hang_s: float = 30.0,
        max_records: int = 10_000,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("fakes listen on loopback only")
        if callback_url is not None and not is_loopback_url(callback_url):
            raise ValueError("fakes call back to loopback URLs only")
        self.credentials: dict[str, str] = {**self.default_credentials, **(credentials or {})}
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self.error_code = error_code
        self.error_times = error_times
        self.callback_url = callback_url
        self.callback_delay_ms = callback_delay_ms
        self.callback_gap_ms = callback_gap_ms
        self.callback_batch = callback_batch or self.default_callback_batch
        self.batch_window_ms = batch_window_ms
        self.callback_retries = callback_retries
        self.callback_timeout_s = callback_timeout_s
        self.shuffle_callbacks = shuffle_callbacks
        self.duplicate_callbacks = duplicate_callbacks
        self.read_receipts = read_receipts
        self.undeliverable_rate = undeliverable_rate
        self.callback_loss = callback_loss
        self.max_hang_s = max_hang_s
        self.host = host
        self.port = port
        self.requests: deque[ReceivedRequest] = deque(maxlen=max_records)
        self.callbacks: deque[SentCallback] = deque(maxlen=max_records)
        self.accepted: deque[dict[str, Any]] = deque(maxlen=max_records)
        # what the provider's status lookup answers from, by the provider's message id
        self.lookups: dict[str, dict[str, Any]] = {}
        self._max_records = max_records
        self.counters: Counter[str] = Counter()
        self.sessions: set[str] = set()  # senders who wrote in (Meta's 24-hour window)
        self._rng = random.Random(seed)
        self._outage: OutageMode | None = None
        self._initial_outage = outage
        self._hang_released = asyncio.Event()
        self._hang_released.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._buckets: dict[str, list[CallbackEvent]] = {}
        self._flushers: dict[str, asyncio.Task[Any]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def outage(self) -> OutageMode | None:
        return self._outage

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        app.add_routes(
            [
                web.get("/_fake/stats", self._stats),
                web.post("/_fake/knobs", self._knobs),
                web.post("/_fake/inbound", self._inbound),
            ]
        )
        app.add_routes(self.routes())
        return app

    async def start(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.callback_timeout_s),
            connector=aiohttp.TCPConnector(limit=64),
        )
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()
        if self._initial_outage:
            await self.set_outage(self._initial_outage)
        return self

    async def stop(self) -> None:
        self._hang_released.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            self.port = int(self._runner.addresses[0][1])

    async def set_outage(self, mode: OutageMode | None) -> None:
        """`refuse`: connections refused; `hang`: requests never answered (until cleared,
        at most `max_hang_s`); `error`: the provider's own 5xx; None: back to normal."""
        if mode is not None and mode not in OUTAGE_MODES:
            raise ValueError(f"outage must be one of {OUTAGE_MODES} or None")
        previous, self._outage = self._outage, mode
        if mode == "hang":
            self._hang_released.clear()
        else:
            self._hang_released.set()
        if mode == "refuse" and previous != "refuse" and self._site is not None:
            await self._site.stop()
            self._site = None
            assert self._runner is not None
            server = self._runner.server
            if server is not None:
                for connection in server.connections:
                    connection.force_close()
        elif previous == "refuse" and mode != "refuse":
            await self._listen()

    # -- knobs -------------------------------------------------------------------------

    KNOBS: ClassVar[tuple[str, ...]] = (
        "fail_rate",
        "latency_ms",
        "error_code",
        "error_times",
        "callback_url",
        "callback_delay_ms",
        "callback_gap_ms",
        "callback_batch",
        "shuffle_callbacks",
        "duplicate_callbacks",
        "read_receipts",
        "undeliverable_rate",
        "callback_loss",
    )

    def configure(self, **knobs: Any) -> None:
        for name, value in knobs.items():
            if name not in self.KNOBS:
                raise ValueError(f"unknown knob {name!r}")
            if name == "callback_url" and value is not None and not is_loopback_url(value):
                raise ValueError("fakes call back to loopback URLs only")
            setattr(self, name, value)

    def knob_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.KNOBS} | {"outage": self._outage}

    def injected_error(self) -> str | None:
        """The error code this send must fail with (forced code, else the fail rate)."""
        if self.error_code is not None:
            code = self.error_code
            if self.error_times is not None:
                self.error_times -= 1
                if self.error_times <= 0:
                    self.error_code, self.error_times = None, None
            self.counters["errors_injected"] += 1
            return code
        if self.fail_rate and self._rng.random() < self.fail_rate:
            self.counters["errors_injected"] += 1
            return self.transient_code
        return None

    def outcome(self, address: str) -> str:
        """ok | invalid | undeliverable | blocked | no_session, for a destination."""
        for suffix, outcome in OUTCOME_SUFFIXES.items():
            if address.endswith(suffix):
                if outcome == "no_session" and address in self.sessions:
                    return "ok"
                return outcome
        if self.undeliverable_rate and self._rng.random() < self.undeliverable_rate:
            return "undeliverable"
        return "ok"

    def new_id(self, prefix: str = "", nbytes: int = 16) -> str:
        return prefix + self._rng.randbytes(nbytes).hex()

    def record_accepted(self, **message: Any) -> None:
        self.counters["accepted"] += 1
        self.accepted.append(message)

    def keep(self, message_id: str, record: dict[str, Any]) -> None:
        """Keep `record` for status lookups (the oldest go beyond `max_records`)."""
        self.lookups[message_id] = record
        while len(self.lookups) > self._max_records:
            del self.lookups[next(iter(self.lookups))]

    def advance(self, event: CallbackEvent) -> None:
        """The status `event` reports happened at the provider: update `lookups`."""

    # -- middleware and control endpoints -------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        self.counters["requests"] += 1
        received = await ReceivedRequest.from_aiohttp(request)
        self.requests.append(received)
        request[RECEIVED] = received
        if self._outage == "refuse":  # a request on a connection opened before the outage
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if self._outage == "hang":
            self.counters["hung"] += 1
            try:
                await asyncio.wait_for(self._hang_released.wait(), self.max_hang_s)
            except TimeoutError:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=504)
        if self._outage == "error":
            self.counters["outage_errors"] += 1
            return self.error_response("http:503")
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return await handler(request)

    async def _stats(self, request: web.Request) -> web.Response:
        return json_response({"counters": dict(self.counters), "knobs": self.knob_values()})

    async def _knobs(self, request: web.Request) -> web.Response:
        try:
            values = await request.json()
            outage = values.pop("outage", self._outage)
            if outage == "refuse":
                raise ValueError("refuse cannot be undone over HTTP; use hang or error")
            self.configure(**values)
            await self.set_outage(outage)
        except (ValueError, TypeError, AttributeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(self.knob_values())

    async def _inbound(self, request: web.Request) -> web.Response:
        try:
            values = await request.json()
            sent = await self.inbound(
                str(values["from"]), str(values.get("text", "")), to=values.get("to")
            )
        except (ValueError, KeyError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response([{"status": s.status, "error": s.error} for s in sent])

    # -- provider hooks ----------------------------------------------------------------

    def error_response(self, code: str) -> web.Response:
        """The provider's answer for error `code` (`http:NNN` means a bare HTTP status)."""
        status = int(code.split(":", 1)[1]) if code.startswith("http:") else 500
        return json_response({"error": code}, status)

    def render_callbacks(self, url: str, events: Sequence[CallbackEvent]) -> list[OutgoingCall]:
        """The provider's (signed) callback requests carrying `events`."""
        raise NotImplementedError

    def inbound_events(
        self, url: str, sender: str, text: str, to: str | None, extra: dict[str, Any]
    ) -> list[CallbackEvent]:
        raise NotImplementedError

    @property
    def inbound_url(self) -> str | None:
        return self.callback_url

    # -- callbacks -----------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def schedule(self, events: Iterable[CallbackEvent]) -> None:
        """Report `events` (in order, unless shuffled) after the callback delay."""
        planned = [e for e in events if e.url]
        if not planned:
            return
        if self.shuffle_callbacks:
            self._rng.shuffle(planned)
        if self.duplicate_callbacks:
            planned = [e for e in planned for _ in range(2)]
        self.counters["callbacks_scheduled"] += len(planned)
        self.spawn(self._play(planned))

    async def _play(self, events: list[CallbackEvent]) -> None:
        await asyncio.sleep(self.callback_delay_ms / 1000)
        for i, event in enumerate(events):
            if i and self.callback_gap_ms:
                await asyncio.sleep(self.callback_gap_ms / 1000)
            self.advance(event)
            if self.callback_loss and self._rng.random() < self.callback_loss:
                self.counters["callbacks_lost"] += 1
                continue
            await self._emit(event)

    async def _emit(self, event: CallbackEvent) -> None:
        if self.callback_batch <= 1:
            for call in self.render_callbacks(event.url, [event]):
                await self.post(call)
            return
        bucket = self._buckets.setdefault(event.url, [])
        bucket.append(event)
        if len(bucket) >= self.callback_batch:
            await self._flush(event.url)
        elif event.url not in self._flushers:
            self._flushers[event.url] = self.spawn(self._flush_later(event.url))

    async def _flush_later(self, url: str) -> None:
        try:
            await asyncio.sleep(self.batch_window_ms / 1000)
        finally:
            self._flushers.pop(url, None)
        await self._flush(url)

    async def _flush(self, url: str) -> None:
        events = self._buckets.pop(url, [])
        size = max(1, self.callback_batch)
        for start in range(0, len(events), size):
            for call in self.render_callbacks(url, events[start : start + size]):
                await self.post(call)

    async def post(self, call: OutgoingCall) -> SentCallback:
        """Send one callback (loopback only), with `callback_retries` bounded retries."""
        record = SentCallback(call)
        if not is_loopback_url(call.url):
            record.error = "refused: not a loopback URL"
            self.counters["callbacks_refused"] += 1
            self.callbacks.append(record)
            return record
        assert self._session is not None, "fake not started"
        for attempt in range(self.callback_retries + 1):
            if attempt:
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            try:
                async with self._session.request(
                    call.method, call.url, data=call.body or None, headers=call.headers
                ) as response:
                    await response.read()
                    record.status, record.error = response.status, None
            except (aiohttp.ClientError, TimeoutError) as exc:
                record.status, record.error = None, type(exc).__name__
            if record.ok:
                break
        self.counters["callbacks_sent" if record.ok else "callbacks_failed"] += 1
        record.at = time.time()
        self.callbacks.append(record)
        return record

    async def inbound(
        self, sender: str, text: str, *, to: str | None = None, url: str | None = None, **extra: Any
    ) -> list[SentCallback]:
        """Post an inbound message from `sender` to the webhook, now (no delay)."""
        target = url or self.inbound_url
        if not target:
            raise ValueError("no webhook URL: pass url= or set callback_url")
        self.sessions.add(sender)
        self.counters["inbound"] += 1
        events = self.inbound_events(target, sender, text, to, extra)
        return [await self.post(call) for call in self.render_callbacks(target, events)]

    async def wait_for_callbacks(self, count: int, timeout_s: float = 5.0) -> list[SentCallback]:
        """Wait until `count` callbacks were sent (or failed); the callbacks so far."""
        deadline = time.monotonic() + timeout_s
        while len(self.callbacks) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.callbacks)} of {count} callbacks after {timeout_s}s")
            await asyncio.sleep(0.005)
        return list(self.callbacks)

    async def idle(self, timeout_s: float = 5.0) -> None:
        """Wait until no callback is pending."""
        deadline = time.monotonic() + timeout_s
        while self._tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("callbacks still pending")
            await asyncio.sleep(0.005)


async def read_params(request: web.Request) -> dict[str, str]:
    """Query, form or JSON parameters of a request, merged (the body wins)."""
    params: dict[str, str] = dict(request.query)
    body = received_of(request).body if RECEIVED in request else await request.read()
    content_type = request.content_type
    if content_type == "application/json":
        with contextlib.suppress(ValueError):
            data = json.loads(body or b"{}")
            if isinstance(data, dict):
                params.update(
                    {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
                )
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params
