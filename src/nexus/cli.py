"""The `nexus` command: serve, worker, migrate, config, version, and service sub-commands."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import nexus
from nexus.kernel.config import Settings, get_settings
from nexus.kernel.logging import configure_logging
from nexus.kernel.service import Service, available_services, load_services

app = typer.Typer(
    name="nexus",
    help="Nexus: the self-hosted business operating system.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console()
err = Console(stderr=True)

ServiceOpt = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Run only this service (repeatable). Default: all."),
]


def _settings(services: list[str] | None = None, **overrides: object) -> Settings:
    settings = get_settings()
    if services:
        settings.services = list(services)
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def _services(settings: Settings) -> list[Service]:
    try:
        return load_services(settings.services, settings.plugins)
    except LookupError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


async def _migrate(settings: Settings, services: list[Service]) -> list[str]:
    from nexus.kernel.migrate import upgrade
    from nexus.kernel.runtime import Runtime

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, services)
    try:
        return await upgrade(runtime)
    finally:
        await runtime.databases.dispose()


@app.command()
def migrate(service: ServiceOpt = None) -> None:
    """Apply pending database migrations of the kernel and the services."""
    settings = _settings(service)
    configure_logging(settings.log_level, "console")
    done = asyncio.run(_migrate(settings, _services(settings)))
    for line in done:
        console.print(f"[green]✓[/] migrated {line}")


@app.command("makemigration")
def make_migration(
    service: Annotated[str, typer.Argument(help="The service (or 'kernel').")],
    message: Annotated[str, typer.Option("--message", "-m", help="What the change does.")],
    empty: Annotated[bool, typer.Option(help="Write an empty revision, no autogenerate.")] = False,
) -> None:
    """Write a new migration for a service from its models (developers)."""
    from nexus.kernel.migrate import revision
    from nexus.kernel.runtime import Runtime

    settings = _settings([] if service == "kernel" else [service])
    configure_logging("WARNING", "console")
    services = [] if service == "kernel" else _services(settings)

    async def go() -> None:
        await _migrate(settings, services)
        runtime = Runtime(settings, services)
        try:
            await revision(runtime, service, message, autogenerate=not empty)
        finally:
            await runtime.databases.dispose()

    asyncio.run(go())


@app.command()
def serve(
    service: ServiceOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        bool | None,
        typer.Option(
            "--workers/--no-workers",
            help="Also run job and event workers (default: NEXUS_RUN_WORKERS, true).",
            show_default=False,
        ),
    ] = None,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations at start-up.")
    ] = True,
) -> None:
    """Serve the HTTP API (and, by default, the workers) of the chosen services."""
    import uvicorn

    from nexus.kernel.http import create_app

    settings = _settings(service, host=host, port=port, run_workers=workers)
    configure_logging(settings.log_level, settings.log_format)
    services = _services(settings)
    settings.secret()
    if migrate_first:
        asyncio.run(_migrate(settings, services))
    application = create_app(settings, services)
    names = ", ".join(s.name for s in services) or "the kernel"
    err.print(
        f"[bold]Nexus {nexus.__version__}[/] serving {names} on "
        f"http://{settings.host}:{settings.port}  (docs: /docs, Ctrl-C to stop)"
    )
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s)),
        lifespan="on",
        server_header=False,
    )


@app.command()
def worker(service: ServiceOpt = None) -> None:
    """Run only the job and event workers of the chosen services (no HTTP)."""
    from nexus.kernel.runtime import Runtime

    settings = _settings(service)
    configure_logging(settings.log_level, settings.log_format)
    services = _services(settings)

    async def main() -> None:
        await _migrate(settings, services)
        runtime = Runtime(settings, services)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start(workers=True)
        err.print(f"worker running {', '.join(s.name for s in services) or 'no services'}")
        await stop.wait()
        await runtime.stop()

    asyncio.run(main())


@app.command()
def version() -> None:
    """Print the Nexus version."""
    console.print(nexus.__version__)


@app.command("services")
def list_services() -> None:
    """List the services this installation can run."""
    settings = get_settings()
    table = Table("service", "import", "permissions")
    refs = available_services(settings.plugins)
    for svc in load_services(list(refs), settings.plugins):
        table.add_row(svc.name, refs[svc.name], str(len(svc.permissions)))
    console.print(table)


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration, secrets masked."""
    data = get_settings().masked()
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table("setting", "value")
    for key, value in data.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    console.print(table)


def _add_service_commands() -> None:
    try:
        settings = get_settings()
        for svc in load_services((), settings.plugins):
            if svc.cli is not None:
                app.add_typer(svc.cli, name=svc.name)
            for command in svc.commands:
                app.command()(command)
    except Exception as exc:  # a broken plugin must not take the whole CLI down
        err.print(f"[yellow]warning:[/] service commands not loaded: {exc}")


def main() -> None:
    _add_service_commands()
    app()


if __name__ == "__main__":
    main()
