"""`nexus hub screenshots OUTDIR`: PNGs of the main pages at desktop and phone widths.

Without `--url`, a throw-away installation is started in a temporary directory (SQLite,
in-process bus, sandbox providers), with a demo org, some messages and a sales pipeline
with a handful of deals, and stopped after.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus.services.hub.browser import DESKTOP, PHONE, launch
from nexus.services.hub.live import (
    Demo,
    api_login,
    free_port,
    seed_crm,
    seed_messages,
    serving,
)

PAGES: list[tuple[str, str]] = [
    ("home", "/"),
    ("compose", "/messages/new"),
    ("message-log", "/messages"),
    ("message", "/messages/{message}"),
    ("providers", "/providers"),
    ("provider-new", "/providers/new?type=twilio"),
    ("analytics", "/analytics"),
    ("contacts", "/contacts"),
    ("templates", "/templates"),
    ("campaigns", "/campaigns"),
    ("crm-board", "/crm/board"),
    ("crm-deal", "/crm/deals/{deal}"),
    ("crm-contact", "/crm/contacts/{contact}"),
    ("crm-forecast", "/crm/forecast"),
    ("users", "/admin/users"),
    ("roles", "/admin/roles"),
    ("api-keys", "/admin/api-keys"),
    ("audit-log", "/admin/audit"),
    ("org-settings", "/admin/org"),
    ("profile", "/me"),
    ("search", "/search?q=globex"),
]
DEMO_EMAIL = "owner@demo.example.com"


async def capture(
    demo: Demo,
    outdir: Path,
    *,
    ids: dict[str, str] | None = None,
    step: Callable[[str], None] = lambda _name: None,
) -> list[Path]:
    """`ids` fills the pages that show one record (`{message}`, `{deal}`, `{contact}`);
    those without an id are left out."""
    from playwright.async_api import async_playwright

    written: list[Path] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            for width, options in (("desktop", DESKTOP), ("phone", PHONE)):
                context = await browser.new_context(base_url=demo.base_url, **options)
                page = await context.new_page()
                await page.goto("/login")
                path = outdir / f"login-{width}.png"
                await page.screenshot(path=str(path), full_page=True)
                written.append(path)
                step(f"login ({width})")
                await page.fill("#email", demo.email)
                await page.fill("#password", demo.password)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{demo.base_url}/")
                for name, template in PAGES:
                    try:
                        url = template.format_map(ids or {})
                    except KeyError:
                        continue
                    await page.goto(url)
                    await page.wait_for_load_state("load")
                    await asyncio.sleep(0.3)  # let htmx finish its first swap (previews)
                    path = outdir / f"{name}-{width}.png"
                    await page.screenshot(path=str(path), full_page=True)
                    written.append(path)
                    step(f"{name} ({width})")
                if width == "phone":  # the folded navigation, opened
                    await page.goto("/")
                    await page.click(".menu-toggle summary")
                    path = outdir / "menu-phone.png"
                    await page.screenshot(path=str(path))
                    written.append(path)
                    step("menu (phone)")
                await context.close()
        finally:
            await browser.close()
    return written


async def _create_demo_org(settings: Any, password: str) -> None:
    """`nexus init` in a child process on the same data dir: the Hub uses IDaaS through
    its published interfaces only, never its internals."""
    env = {
        **os.environ,
        "NEXUS_DATA_DIR": str(settings.data_dir),
        "NEXUS_SECRET_KEY": settings.secret(),
        "NEXUS_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from nexus.cli import main; main()",
        "init",
        "--org-name",
        "Acme Demo",
        "--email",
        DEMO_EMAIL,
        "--password",
        password,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"nexus init failed: {stderr.decode(errors='replace')[-500:]}")


async def demo_installation(outdir: Path, step: Callable[[str], None]) -> list[Path]:
    """Start a temporary Nexus with a demo org, screenshot it, stop it."""
    from nexus.kernel.config import Settings
    from nexus.kernel.http import create_app
    from nexus.kernel.migrate import upgrade
    from nexus.kernel.runtime import Runtime
    from nexus.kernel.service import load_services

    with tempfile.TemporaryDirectory(prefix="nexus-screens-") as tmp:
        port = free_port()
        settings = Settings(
            data_dir=Path(tmp),
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(40),  # type: ignore[arg-type]
            log_level="WARNING",
            services=["idaas", "vas", "crm", "hub"],
        )
        runtime = Runtime(settings, load_services(settings.services))
        await upgrade(runtime)
        app = create_app(settings, runtime=runtime)
        async with serving(app, port, lifespan="on") as base_url:
            password = secrets.token_urlsafe(16)
            await _create_demo_org(settings, password)
            token = await api_login(base_url, DEMO_EMAIL, password)
            demo = Demo(base_url, DEMO_EMAIL, password, token)
            messages = await seed_messages(demo)
            ids = await seed_crm(demo)
            if messages:
                ids["message"] = messages[0]
            step("demo org, messages and deals")
            await asyncio.sleep(1.0)  # sandbox deliveries land
            return await capture(demo, outdir, ids=ids, step=step)


async def existing_installation(
    url: str, email: str, password: str, outdir: Path, step: Callable[[str], None]
) -> list[Path]:
    token = await api_login(url, email, password)
    return await capture(Demo(url.rstrip("/"), email, password, token), outdir, step=step)


def total_steps(with_demo: bool) -> int:
    return 2 * (len(PAGES) + 1) + 1 + (1 if with_demo else 0)


def run(outdir: Path, url: str | None, email: str, password: str | None, step: Any) -> list[Path]:
    from nexus.kernel.logging import configure_logging

    configure_logging("WARNING", "console")
    outdir.mkdir(parents=True, exist_ok=True)
    if url:
        return asyncio.run(existing_installation(url, email, password or "", outdir, step))
    return asyncio.run(demo_installation(outdir, step))
