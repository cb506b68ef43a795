"""`nexus idaas ...` and `nexus init`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

cli = typer.Typer(help="Identity: orgs, users, keys.", no_args_is_help=True)
console = Console()


def _runtime():  # type: ignore[no-untyped-def]
    from nexus.kernel.config import get_settings
    from nexus.kernel.runtime import Runtime
    from nexus.kernel.service import load_services

    settings = get_settings()
    return Runtime(settings, load_services(["idaas"], settings.plugins))


async def _migrated():  # type: ignore[no-untyped-def]
    from nexus.kernel.migrate import upgrade

    runtime = _runtime()
    runtime.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(runtime)
    return runtime


@cli.command("rotate-keys")
def rotate_keys() -> None:
    """Make a new signing key; old keys stay published until their tokens expire."""
    from nexus.services.idaas.keys import KeyStore
    from nexus.services.idaas.settings import get_idaas_settings

    async def go() -> str:
        runtime = await _migrated()
        try:
            store = KeyStore(runtime.db("idaas"), runtime.settings.secret())
            keep = get_idaas_settings().access_token_ttl_s + 60
            return await store.rotate(retire_after_s=keep)
        finally:
            await runtime.databases.dispose()

    kid = asyncio.run(go())
    console.print(f"[green]✓[/] new signing key {kid}")
    console.print("  previous keys stay published until the tokens they signed expire")


def init(
    org_name: Annotated[str, typer.Option("--org-name", help="Name of the first org.")],
    email: Annotated[str, typer.Option("--email", help="E-mail of its owner.")],
    password: Annotated[
        str | None, typer.Option("--password", help="Owner's password (generated when omitted).")
    ] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when an org exists.")
    ] = False,
) -> None:
    """Create the first org and its owner."""
    from nexus.kernel.errors import Problem
    from nexus.services.idaas.bootstrap import create_org_with_owner, org_count

    async def go() -> None:
        runtime = await _migrated()
        try:
            db = runtime.db("idaas")
            if if_empty and await org_count(db):
                return
            made = await create_org_with_owner(
                db, org_name=org_name, email=email, password=password
            )
        finally:
            await runtime.databases.dispose()
        console.print(
            f"[green]✓[/] org [bold]{made.org.name}[/] ({made.org.slug}, id {made.org.id})"
        )
        console.print(f"  owner: [bold]{made.owner.email}[/]")
        if made.generated:
            console.print(
                f"  password: [bold]{made.password}[/]  (shown once; change it after logging in)"
            )

    try:
        asyncio.run(go())
    except Problem as exc:
        console.print(f"[red]error:[/] {exc.detail}")
        raise typer.Exit(2) from None
