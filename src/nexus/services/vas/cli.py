"""`nexus vas ...`: send a message and follow it from the command line."""

from __future__ import annotations

import os
import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

cli = typer.Typer(help="Messaging: send and follow messages.", no_args_is_help=True)
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
