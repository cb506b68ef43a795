"""`nexus crm ...`: import and export CSV over the HTTP API, retrain lead scoring."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

cli = typer.Typer(help="CRM: import and export CSV, retrain lead scoring.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
CHUNK = 256 * 1024
FINAL = {"completed", "failed", "canceled"}
ApiUrl = Annotated[str, typer.Option(envvar="NEXUS_API_URL", help="Nexus base URL.")]
Token = Annotated[
    str | None,
    typer.Option(envvar="NEXUS_TOKEN", help="An access token or an API key (nxk_...)."),
]
Object = Annotated[str, typer.Option("--object", help="contacts, companies or deals.")]


def _client(api_url: str, token: str | None) -> httpx.Client:
    if not token:
        err.print("[red]error:[/] give --token (or NEXUS_TOKEN): an access token or an API key")
        raise typer.Exit(2)
    auth = (
        {"X-API-Key": token} if token.startswith("nxk_") else {"Authorization": f"Bearer {token}"}
    )
    return httpx.Client(
        base_url=api_url.rstrip("/") + "/api/v1/crm",
        headers=auth,
        timeout=httpx.Timeout(60, connect=10),
    )


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:300]
        err.print(f"[red]refused ({response.status_code}):[/] {detail}")
        raise typer.Exit(1)
    return response.json()


@cli.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A CSV file.")],
    object_: Object = "contacts",
    dry_run: Annotated[bool, typer.Option(help="Check every row; write nothing.")] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=Column, e.g. --map email=E-mail (repeatable)."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="Region of national phones, e.g. GB.")] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Upload FILE, follow the import with a progress bar, save the refused rows next to it."""
    params: dict[str, Any] = {"object": object_, "dry_run": dry_run, "filename": file.name}
    if map_:
        pairs = [m.split("=", 1) for m in map_]
        if any(len(p) != 2 for p in pairs):
            err.print("[red]error:[/] --map takes field=Column")
            raise typer.Exit(2)
        params["mapping"] = json.dumps(dict(pairs))
    if region:
        params["region"] = region
    size = file.stat().st_size
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
    )
    with _client(api_url, token) as client, bar:
        upload = bar.add_task("upload", total=size, info="")

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as f:
                while data := f.read(CHUNK):
                    bar.advance(upload, len(data))
                    yield data

        status = _check(
            client.post(
                "/import",
                params=params,
                content=chunks(),
                headers={"content-type": "text/csv", "content-length": str(size)},
            )
        )
        task = bar.add_task("import", total=max(status["total_bytes"], 1), info="")
        while True:
            final = status["status"] in FINAL
            bar.update(
                task,
                completed=status["total_bytes"] if final else status["byte_offset"],
                info=f"{status['rows_read']:,} rows, {status['rows_failed']:,} refused",
            )
            if final:
                break
            time.sleep(0.3)
            status = _check(client.get(f"/import/{status['id']}"))
        if status["rows_failed"]:
            target = file.with_name(file.name + ".errors.csv")
            with (
                target.open("wb") as out,
                client.stream("GET", f"/import/{status['id']}/errors") as response,
            ):
                for data in response.iter_bytes():
                    out.write(data)
    table = Table("import", "status", "rows", "created", "updated", "unchanged", "refused")
    table.add_row(
        status["id"][:8] + (" (dry run)" if status["dry_run"] else ""),
        status["status"],
        *(
            f"{status[k]:,}"
            for k in ("rows_read", "created", "updated", "unchanged", "rows_failed")
        ),
    )
    console.print(table)
    if status["rows_failed"]:
        console.print(f"refused rows (row, column, reason, the row): [bold]{target}[/]")
    if status["status"] != "completed":
        err.print(f"[red]import {status['status']}:[/] {status.get('error') or ''}")
        raise typer.Exit(1)


@cli.command("export")
def export_csv(
    out: Annotated[Path, typer.Option("--out", help="Where to write the CSV.")],
    object_: Object = "contacts",
    api_url: ApiUrl = "http://127.0.0.1:8000",
    token: Token = None,
) -> None:
    """Export every record you may read as CSV (it imports back)."""
    with (
        _client(api_url, token) as client,
        client.stream("GET", "/export", params={"object": object_}) as response,
    ):
        if response.status_code >= 400:
            response.read()
            _check(response)
        with out.open("wb") as f:
            for data in response.iter_bytes():
                f.write(data)
    with out.open(newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    console.print(f"[green]✓[/] {rows:,} {object_} written to [bold]{out}[/]")


@cli.command("train-scoring")
def train_scoring(
    org: Annotated[
        list[str] | None, typer.Option("--org", help="Org id (repeatable); default: every org.")
    ] = None,
) -> None:
    """Retrain the lead-scoring model of each org from its won and lost deals."""
    from sqlalchemy import select

    from nexus.kernel.config import get_settings
    from nexus.kernel.migrate import upgrade
    from nexus.kernel.runtime import Runtime
    from nexus.kernel.service import load_services
    from nexus.services.crm import scoring
    from nexus.services.crm.models import Deal

    async def go() -> list[tuple[str, scoring.ScoringModel]]:
        settings = get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        runtime = Runtime(settings, load_services(["crm"], settings.plugins))
        await upgrade(runtime)
        db = runtime.db("crm")
        try:
            orgs = list(org or [])
            if not orgs:
                async with db.read() as session:
                    orgs = list(await session.scalars(select(Deal.org_id).distinct()))
            done = []
            with Progress(console=console) as progress:
                task = progress.add_task("training", total=len(orgs))
                for org_id in orgs:
                    done.append((org_id, await scoring.train_org(db, org_id)))
                    progress.advance(task)
            return done
        finally:
            await runtime.databases.dispose()

    results = asyncio.run(go())
    table = Table("org", "model", "closed deals", "AUC model", "AUC rules", "note")
    for org_id, model in results:
        table.add_row(
            org_id,
            model.kind,
            str(model.samples),
            f"{model.auc_ml:.3f}" if model.auc_ml is not None else "-",
            f"{model.auc_rules:.3f}" if model.auc_rules is not None else "-",
            model.note or "",
        )
    console.print(table if results else "no org has deals yet")
