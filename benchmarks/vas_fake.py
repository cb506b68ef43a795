"""One provider fake process for `vas_throughput.py`.

Exactly `python -m nexus.testing.fakes <provider> [options]` (same fake classes, same
options, same JSON line on start-up), with the delivery-callback timeout set like
Twilio's (15 s; `--callback-timeout-s`), plus one read-only control endpoint so the
benchmark can find messages a provider accepted twice:

    GET /_fake/accepted-to?since=N  ->  {"count": total, "to": [destination, ...]}

lists the destination numbers (digits only) of the sends the fake accepted, in order,
from the N-th on. Every benchmark message has its own destination number, so a number
listed twice (by one fake or across fakes) is a duplicated send. Twilio's send request
does not carry the Nexus message id; the destination identifies the message on every
provider.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from aiohttp import web

from nexus.testing.fakes import fake_class
from nexus.testing.fakes.__main__ import parse_args as fake_args

MAX_LISTED = 2_000_000  # destinations remembered (the benchmark sends far fewer)


def tracked_class(provider: str) -> Any:
    base = fake_class(provider)

    class Tracked(base):  # type: ignore[misc, valid-type]
        def __init__(self, **knobs: Any) -> None:
            super().__init__(**knobs)
            self.accepted_to: list[str] = []

        def record_accepted(self, **message: Any) -> None:
            super().record_accepted(**message)
            if len(self.accepted_to) < MAX_LISTED:
                self.accepted_to.append("".join(c for c in str(message.get("to")) if c.isdigit()))

        def build_app(self) -> web.Application:
            app = super().build_app()
            app.add_routes([web.get("/_fake/accepted-to", self._accepted_to)])
            return app

        async def _accepted_to(self, request: web.Request) -> web.Response:
            since = max(0, int(request.query.get("since", "0")))
            body = {"count": len(self.accepted_to), "to": self.accepted_to[since:]}
            return web.json_response(body)

    Tracked.__name__ = f"Tracked{base.__name__}"
    return Tracked


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The fake's own options, plus `--callback-timeout-s` (how long a delivery callback
    waits for the webhook's answer; the fakes' default is 5 s, Twilio's is 15 s)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    timeout = 15.0
    if "--callback-timeout-s" in argv:
        at = argv.index("--callback-timeout-s")
        timeout = float(argv[at + 1])
        del argv[at : at + 2]
    args = fake_args(argv)
    args.callback_timeout_s = timeout
    return args


async def serve(args: argparse.Namespace) -> None:
    knobs: dict[str, Any] = {
        "port": args.port,
        "fail_rate": args.fail_rate,
        "latency_ms": args.latency_ms,
        "outage": args.outage,
        "seed": args.seed,
        "callback_url": args.callback_url,
        "callback_delay_ms": args.callback_delay_ms,
        "callback_timeout_s": args.callback_timeout_s,
    }
    fake = tracked_class(args.provider)(**knobs)
    await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    print(
        json.dumps(
            {
                "provider": args.provider,
                "base_url": fake.base_url,
                "credentials": fake.credentials,
                "outage": fake.outage,
            }
        ),
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.provider == "smtp":
        print("vas_fake.py runs the HTTP provider fakes only", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot start the {args.provider} fake: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
