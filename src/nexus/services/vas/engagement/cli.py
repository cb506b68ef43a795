"""`nexus vas contacts ...` and `nexus vas campaigns ...`: import with a progress bar,
export, and campaign control, over the HTTP API."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nexus.services.vas.cli import ApiUrl, Token, _auth, console, err

contacts_cli = typer.Typer(help="Contacts: import and export CSV files.", no_args_is_help=True)
campaigns_cli = typer.Typer(help="Campaigns: start, pause, follow, stats.", no_args_is_help=True)

Email = Annotated[str | None, typer.Option(envvar="NEXUS_EMAIL")]
Password = Annotated[str | None, typer.Option(envvar="NEXUS_PASSWORD")]
FINAL_IMPORT = {"completed", "failed", "canceled"}
FINAL_CAMPAIGN = {"completed", "canceled", "paused", "draft"}
CHUNK = 256 * 1024


def _client(
    api_url: str, token: str | None, email: str | None, password: str | None
) -> httpx.Client:
    api_url = api_url.rstrip("/")
    return httpx.Client(
        base_url=f"{api_url}/api/v1",
        headers=_auth(api_url, token, email, password),
        timeout=httpx.Timeout(60, connect=10),
    )


def _fail(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:300]
        err.print(f"[red]refused ({response.status_code}):[/] {detail}")
        raise typer.Exit(1)


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@contacts_cli.command("import")
def import_contacts(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A CSV file.")],
    dry_run: Annotated[bool, typer.Option(help="Validate and count; write nothing.")] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=Column, e.g. --map phone=Mobile (repeatable)."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag every contact (repeatable).")] = None,
    region: Annotated[str | None, typer.Option(help="Region of national numbers, e.g. GB.")] = None,
    update: Annotated[bool, typer.Option(help="Update contacts found by address.")] = True,
    errors_out: Annotated[
        Path | None, typer.Option(help="Where to write refused rows (default FILE.errors.csv).")
    ] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """Upload FILE, follow the import with a progress bar, and save the refused rows."""
    params: dict[str, Any] = {"dry_run": dry_run, "update_existing": update, "filename": file.name}
    if map_:
        pairs = [m.split("=", 1) for m in map_]
        if any(len(p) != 2 for p in pairs):
            err.print("[red]error:[/] --map takes field=Column")
            raise typer.Exit(2)
        params["mapping"] = json.dumps(dict(pairs))
    if tag:
        params["tags"] = tag
    if region:
        params["region"] = region
    size = file.stat().st_size
    with _client(api_url, token, email, password) as client, _bar() as progress:
        upload = progress.add_task("upload", total=size, info="")

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as f:
                while data := f.read(CHUNK):
                    progress.advance(upload, len(data))
                    yield data

        response = client.post(
            "/contacts/import",
            params=params,
            content=chunks(),
            headers={"content-type": "text/csv", "content-length": str(size)},
        )
        _fail(response)
        status = response.json()
        task = progress.add_task("import", total=max(status["total_bytes"], 1), info="")
        while True:
            info = (
                f"{status['rows_read']:,} rows: {status['created']:,} new, "
                f"{status['updated']:,} updated, {status['rows_failed']:,} refused"
            )
            done = (
                status["total_bytes"] if status["status"] in FINAL_IMPORT else status["byte_offset"]
            )
            progress.update(task, completed=done, info=info)
            if status["status"] in FINAL_IMPORT:
                break
            time.sleep(0.3)
            response = client.get(f"/contacts/imports/{status['id']}")
            _fail(response)
            status = response.json()
    table = Table("import", "status", "rows", "created", "updated", "unchanged", "refused")
    table.add_row(
        status["id"][:8] + (" (dry run)" if status["dry_run"] else ""),
        status["status"],
        f"{status['rows_read']:,}",
        f"{status['created']:,}",
        f"{status['updated']:,}",
        f"{status['unchanged']:,}",
        f"{status['rows_failed']:,}",
    )
    console.print(table)
    if status["rows_failed"]:
        target = errors_out or file.with_name(file.name + ".errors.csv")
        with (
            _client(api_url, token, email, password) as client,
            target.open("wb") as out,
            client.stream("GET", f"/contacts/imports/{status['id']}/errors") as response,
        ):
            for data in response.iter_bytes():
                out.write(data)
        console.print(f"refused rows (row, column, reason, the row): [bold]{target}[/]")
    if status["status"] != "completed":
        err.print(f"[red]import {status['status']}:[/] {status.get('error') or ''}")
        raise typer.Exit(1)


@contacts_cli.command("export")
def export_contacts(
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only contacts with this tag.")] = None,
    q: Annotated[str | None, typer.Option(help="Name or address contains.")] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """Stream every matching contact as CSV (the format `import` reads)."""
    params: dict[str, Any] = {"tag": tag or []}
    if q:
        params["q"] = q
    target = out.open("wb") if out else sys.stdout.buffer
    try:
        with (
            _client(api_url, token, email, password) as client,
            client.stream("GET", "/contacts/export", params=params) as response,
        ):
            if response.status_code >= 400:
                response.read()
                _fail(response)
            for data in response.iter_bytes():
                target.write(data)
    finally:
        if out:
            target.close()


def _campaign_action(action: str, campaign_id: str, client: httpx.Client) -> dict[str, Any]:
    response = client.post(f"/campaigns/{campaign_id}/{action}")
    _fail(response)
    return response.json()  # type: ignore[no-any-return]


def _follow(client: httpx.Client, campaign: dict[str, Any]) -> dict[str, Any]:
    with _bar() as progress:
        task = progress.add_task(
            campaign["name"][:30], total=campaign.get("audience_total") or 1, info=""
        )
        while True:
            info = (
                f"{campaign['status']}: {campaign['accepted']:,} accepted, "
                f"{campaign['excluded_opted_out']:,} opted out, "
                f"{campaign['render_failed'] + campaign['rejected']:,} rejected"
            )
            progress.update(
                task,
                total=campaign.get("audience_total") or 1,
                completed=campaign["processed"],
                info=info,
            )
            if campaign["status"] in FINAL_CAMPAIGN:
                return campaign
            time.sleep(0.5)
            response = client.get(f"/campaigns/{campaign['id']}")
            _fail(response)
            campaign = response.json()


@campaigns_cli.command("list")
def list_campaigns(
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """The latest campaigns and their progress."""
    with _client(api_url, token, email, password) as client:
        response = client.get("/campaigns", params={"limit": 50})
        _fail(response)
    table = Table("id", "name", "channel", "status", "progress", "accepted")
    for c in response.json()["items"]:
        table.add_row(
            c["id"],
            c["name"],
            c["channel"],
            c["status"],
            f"{c['progress']:.0%}",
            f"{c['accepted']:,}",
        )
    console.print(table)


def _control(action: str) -> Any:
    def command(
        campaign_id: Annotated[str, typer.Argument(help="The campaign id.")],
        follow: Annotated[bool, typer.Option(help="Follow progress until it stops.")] = action
        in {"start", "resume"},
        api_url: ApiUrl = "http://127.0.0.1:8000",
        token: Token = None,
        email: Email = None,
        password: Password = None,
    ) -> None:
        with _client(api_url, token, email, password) as client:
            campaign = _campaign_action(action, campaign_id, client)
            if follow:
                campaign = _follow(client, campaign)
        console.print(f"campaign [bold]{campaign['id']}[/]: {campaign['status']}")

    command.__doc__ = f"{action.capitalize()} a campaign."
    return command


for _action in ("start", "pause", "resume", "cancel"):
    campaigns_cli.command(_action)(_control(_action))


@campaigns_cli.command("stats")
def campaign_stats(
    campaign_id: Annotated[str, typer.Argument(help="The campaign id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
    email: Email = None,
    password: Password = None,
) -> None:
    """Sent, delivered, failed, opted out, replies and cost, per variant."""
    with _client(api_url, token, email, password) as client:
        response = client.get(f"/campaigns/{campaign_id}/stats")
        _fail(response)
    stats = response.json()
    table = Table(
        "variant",
        "sent",
        "delivered",
        "failed",
        "rejected",
        "opted out",
        "replies",
        "cost",
        "delivery",
    )
    for row in [*stats["variants"], stats["overall"]]:
        rate = row["delivery_rate"]
        table.add_row(
            row["variant"],
            f"{row['sent']:,}",
            f"{row['delivered']:,}",
            f"{row['failed']:,}",
            f"{row['rejected']:,}",
            f"{row['opted_out']:,}",
            f"{row['replies']:,}",
            str(row["cost"]),
            f"{rate:.1%}" if rate is not None else "-",
        )
    console.print(table)
    console.print(
        f"excluded (opted out): {stats['excluded_opted_out']:,}; winner by "
        f"{stats['winner_metric']}: [bold]{stats['winner'] or '-'}[/]"
    )
