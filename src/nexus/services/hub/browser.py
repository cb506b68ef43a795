"""Driving Debian's Chromium with Playwright (screenshots, browser tests). Playwright is a
development dependency: import this module only where a browser is wanted. The browser
is the system's (`apt-get install chromium`), never one downloaded by Playwright."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("NEXUS_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


class BrowserMissing(RuntimeError):
    pass


def chromium() -> str:
    if not CHROMIUM.exists():
        raise BrowserMissing(
            f"No Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium) "
            "or point NEXUS_CHROMIUM at one."
        )
    return str(CHROMIUM)


async def launch(playwright: Any) -> Any:
    return await playwright.chromium.launch(executable_path=chromium(), args=ARGS)
