"""`nexus vas ...`: send a message and follow it from the command line; reconcile
messages whose delivery report never came."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from nexus.services.vas.reconcile import Summary

cli = typer.Typer(help="Messaging: send and follow messages.", no_args_is_help=True)
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
console = Console()
err = Console(stderr=True)

ApiUrl = Annotated[str, typer.Option(envvar="NEXUS_API_URL", help="Nexus base URL.")]
Token = Annotated[
    str | None,
    typer.Option(
        envvar="NEXUS_TOKEN", help="An access token or API key (nxk_...); else --email/--password."
    ),
]


def _auth(
    api_url: str, token: str | None, email: str | None, password: str | None
) -> dict[str, str]:
    if token:
        return (
            {"X-API-Key": token}
            if token.startswith("nxk_")
            else {"Authorization": f"Bearer {token}"}
        )
    if not (email and password):
        err.print("[red]error:[/] give --token (or NEXUS_TOKEN), or --email and --password")
        raise typer.Exit(2)
    response = httpx.post(
        f"{api_url}/api/v1/auth/login", json={"email": email, "password": password}
    )
    if response.status_code != 200 or "access_token" not in response.json():
        err.print(f"[red]login failed:[/] {response.json().get('detail', response.text)}")
        raise typer.Exit(1)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@cli.command()
def send(
    to: Annotated[str, typer.Option("--to", help="Recipient (E.164 number, chat id, e-mail).")],
    body: Annotated[str, typer.Option("--body", help="Text of the message.")],
    channel: Annotated[
        str, typer.Option("--channel", help="sms, whatsapp, telegram, messenger, email.")
    ] = "sms",
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
    email: Annotated[str | None, typer.Option(envvar="NEXUS_EMAIL")] = None,
    password: Annotated[str | None, typer.Option(envvar="NEXUS_PASSWORD")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the message until a final status.")] = True,
    timeout_s: Annotated[float, typer.Option(help="How long to follow it.")] = 30.0,
) -> None:
    """Send a message, then follow it to its final status and print its history."""
    api_url = api_url.rstrip("/")
    headers = _auth(api_url, token, email, password)
    headers["Idempotency-Key"] = os.urandom(12).hex()
    response = httpx.post(
        f"{api_url}/api/v1/messages/send",
        headers=headers,
        json={"channel": channel, "to": to, "body": body},
    )
    if response.status_code >= 400:
        err.print(f"[red]refused ({response.status_code}):[/] {response.json().get('detail')}")
        raise typer.Exit(1)
    message = response.json()
    console.print(f"message [bold]{message['id']}[/]: {message['status']}")
    deadline = time.monotonic() + timeout_s
    final = {"delivered", "undelivered", "failed", "rejected", "expired", "canceled"}
    while wait and message["status"] not in final and time.monotonic() < deadline:
        time.sleep(0.3)
        message = httpx.get(f"{api_url}/api/v1/messages/{message['id']}", headers=headers).json()
    if wait:
        message = httpx.get(f"{api_url}/api/v1/messages/{message['id']}", headers=headers).json()
        table = Table("time", "status", "kind", "provider", "reason")
        for step in message.get("history") or []:
            table.add_row(
                step["at"][11:23],
                step["status"],
                step["kind"],
                (step["provider_id"] or "")[:8],
                (step["reason"] or "")[:60],
            )
        console.print(table)
        console.print(f"final status: [bold]{message['status']}[/]")
    if message["status"] in {"failed", "undelivered", "rejected", "expired"}:
        raise typer.Exit(1)


def _seconds(value: str) -> float:
    match = DURATION.match(value.strip().lower())
    if match is None:
        raise typer.BadParameter("a duration such as 90s, 10m, 2h or 1d")
    return float(match[1]) * UNIT_S[match[2]]


@cli.command()
def reconcile(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Messages sent longer ago than this (90s, 10m, 2h); "
            "default NEXUS_VAS_RECONCILE_AFTER_S.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Ask the providers; change nothing.")
    ] = False,
) -> None:
    """Ask the providers now about messages still `sent` whose delivery report never came;
    apply the final statuses found (through the workers' `vas.status` queue)."""
    older_than_s = _seconds(older_than) if older_than is not None else None
    summary = asyncio.run(_reconcile(older_than_s, dry_run))
    table = Table("outcome", "messages")
    for outcome, count in sorted(summary.outcomes.items()):
        table.add_row(outcome, str(count))
    console.print(table)
    found = ", ".join(f"{n} {status}" for status, n in sorted(summary.found.items())) or "none"
    verb = "would apply" if dry_run else "applied"
    console.print(f"checked {summary.checked}; final statuses found: {found} ({verb})")
    if summary.stopped_early:
        console.print("[yellow]stopped at the time budget[/]: run again to go on")


async def _reconcile(older_than_s: float | None, dry_run: bool) -> Summary:
    from nexus.kernel.config import get_settings
    from nexus.kernel.migrate import upgrade
    from nexus.kernel.runtime import Runtime
    from nexus.kernel.service import load_services
    from nexus.services.vas.reconcile import reconcile as run
    from nexus.services.vas.state import vas_of

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, load_services(["vas"], settings.plugins))
    await upgrade(runtime)
    await runtime.start(workers=False)  # the relay forwards the queued statuses
    try:
        progress = Progress(
            TextColumn("[bold]looking up"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        )
        with progress:
            task = progress.add_task("lookups", total=0)
            return await run(
                vas_of(runtime),
                older_than_s=older_than_s,
                dry_run=dry_run,
                on_page=lambda n: progress.update(
                    task, total=(progress.tasks[task].total or 0) + n
                ),
                on_checked=lambda _candidate, _outcome: progress.advance(task),
            )
    finally:
        await runtime.stop()
