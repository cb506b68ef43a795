"""Run one provider fake on loopback:

    python -m nexus.testing.fakes <provider> --port N [--fail-rate R] [--latency-ms L]
        [--callback-url URL] [--outage [hang|error|refuse]] [--callback-delay-ms D]
        [--callback-loss R]

It prints one JSON line (provider, base_url, the credentials it accepts) and serves
until interrupted. HTTP fakes also answer `GET /_fake/stats`, `POST /_fake/knobs`
(JSON knobs, e.g. {"fail_rate": 0.2, "outage": "hang"}) and `POST /_fake/inbound`
(`{"from": ..., "text": ...}`) so a benchmark can steer them while they run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from nexus.testing.fakes import FAKES, fake_class
from nexus.testing.fakes._base import OUTAGE_MODES, is_loopback_url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nexus.testing.fakes", description="Run a loopback provider fake."
    )
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        help="share of sends answered with a retryable provider error",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument(
        "--callback-url", help="where delivery callbacks go when a send names none (loopback only)"
    )
    parser.add_argument("--callback-delay-ms", type=float, default=50.0)
    parser.add_argument(
        "--callback-loss",
        type=float,
        default=0.0,
        help="share of delivery callbacks never sent (the provider's status lookup still knows)",
    )
    parser.add_argument(
        "--outage",
        nargs="?",
        const="hang",
        choices=OUTAGE_MODES,
        help="start in an outage: hang (default), error or refuse",
    )
    parser.add_argument("--seed", type=int, help="seed of the fake's random choices")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    if not 0.0 <= args.callback_loss <= 1.0:
        parser.error("--callback-loss must be between 0 and 1")
    if args.callback_url and not is_loopback_url(args.callback_url):
        parser.error("--callback-url must point at 127.0.0.1 / localhost")
    return args


async def serve(args: argparse.Namespace) -> None:
    knobs: dict[str, Any] = {
        "port": args.port,
        "fail_rate": args.fail_rate,
        "latency_ms": args.latency_ms,
        "outage": args.outage,
        "seed": args.seed,
    }
    if args.provider != "smtp":
        knobs.update(
            callback_url=args.callback_url,
            callback_delay_ms=args.callback_delay_ms,
            callback_loss=args.callback_loss,
        )
    fake = fake_class(args.provider)(**knobs)
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
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot start the {args.provider} fake: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
