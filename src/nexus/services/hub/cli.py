"""`nexus hub ...`: screenshots of the main pages."""

from __future__ import annotations

import typer

cli = typer.Typer(help="The Hub (web UI).", no_args_is_help=True)
