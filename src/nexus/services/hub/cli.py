"""`nexus hub ...`: screenshots of the main pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

cli = typer.Typer(help="The Hub (web UI).", no_args_is_help=True)
console = Console()


@cli.command()
def screenshots(
    outdir: Annotated[Path, typer.Argument(help="Where to write the PNG files.")],
    url: Annotated[
        str | None,
        typer.Option(help="A running Nexus to capture (default: a throw-away demo one)."),
    ] = None,
    email: Annotated[str, typer.Option(help="Who logs in (with --url).")] = (
        "owner@demo.example.com"
    ),
    password: Annotated[
        str | None, typer.Option(help="Their password (with --url).", envvar="NEXUS_HUB_PASSWORD")
    ] = None,
) -> None:
    """Write PNG screenshots of the main pages, at desktop and phone widths."""
    from nexus.services.hub import screenshots as shots
    from nexus.services.hub.browser import BrowserMissing

    if url and not password:
        console.print("[red]error:[/] --url needs --password (or NEXUS_HUB_PASSWORD).")
        raise typer.Exit(2)
    try:
        import playwright  # noqa: F401
    except ImportError:
        console.print("[red]error:[/] screenshots need Playwright: pip install -e '.[dev]'")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("screenshots", total=shots.total_steps(url is None))

        def step(name: str) -> None:
            progress.update(task, advance=1, description=name)

        try:
            written = shots.run(outdir, url, email, password, step)
        except BrowserMissing as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
    console.print(f"[green]✓[/] {len(written)} screenshots in {outdir}")
