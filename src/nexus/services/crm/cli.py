"""`nexus crm ...`: retrain lead scoring from the command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

cli = typer.Typer(help="CRM: lead scoring.", no_args_is_help=True)
console = Console()


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
