"""Browser tests: Nexus (IDaaS, VAS, the Hub) served by uvicorn on a free loopback port,
driven by Playwright through Debian's Chromium (one browser for the whole session).

Every page a test opens is watched: a console error or an uncaught script error fails
the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from nexus.services.hub.browser import CHROMIUM, DESKTOP, launch
from nexus.services.hub.live import api_login, free_port, serving
from tests.conftest import RuntimeFactory
from tests.services.hub.conftest import OWNER, PASSWORD, make_hub


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"browser tests need {CHROMIUM}: apt-get install -y chromium")
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}"))


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()


@dataclass
class Live:
    url: str
    runtime: Any
    token: str
    console: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=30)


@pytest.fixture
async def live(make_runtime: RuntimeFactory, settings) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    runtime, app = await make_hub(make_runtime, settings)
    port = free_port()
    runtime.state["vas"].accounts.public_url = f"http://127.0.0.1:{port}"  # callbacks
    async with serving(app, port) as url:
        token = await api_login(url, OWNER, PASSWORD)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            for _ in range(200):  # the sandbox providers come with the org.created event
                if len((await api.get("/api/v1/providers")).json()) == 5:
                    break
                await asyncio.sleep(0.05)
        yield Live(url, runtime, token)


@pytest.fixture
async def page(browser: Any, live: Live) -> AsyncIterator[Any]:
    context = await browser.new_context(base_url=live.url, **DESKTOP)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    problems = live.console

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    yield page
    await context.close()
    assert not problems, "console errors:\n" + "\n".join(problems)


async def log_in(page: Any, email: str = OWNER, password: str = PASSWORD) -> None:
    """With the keyboard only: type, Tab, type, Enter."""
    await page.goto("/login")
    await page.locator("#email").focus()
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
