"""The official `twilio` npm package against Nexus, run with Node.

The package is installed once into `var/twilio-node/` (ignored by git). Without Node the
test is skipped, except in CI (`CI` set), where it fails."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.services.vas.twilio_api.conftest import TwilioEnv
from tests.services.vas.twilio_api.test_python_sdk import FROM, TO

ROOT = Path(__file__).resolve().parents[4]
CACHE = ROOT / "var" / "twilio-node"
SCRIPT = Path(__file__).with_name("node_sdk_check.js")
TWILIO_NPM = "twilio@5"
OPTED_OUT = "+14155550177"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI for the Twilio Node SDK test")
        pytest.skip(f"{name} is not installed: cannot run the Twilio Node SDK test")
    return path


async def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, f"{args[0]} failed: {stderr.decode()[-2000:]}"
    return stdout.decode()


async def _install(npm: str) -> Path:
    modules = CACHE / "node_modules"
    if not (modules / "twilio" / "package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        package = CACHE / "package.json"
        if not package.exists():
            package.write_text('{"name": "twilio-node-compat", "private": true}\n')
        await _run(npm, "install", "--no-audit", "--no-fund", TWILIO_NPM, cwd=CACHE)
    return modules


async def test_the_node_sdk_creates_lists_cancels_and_gets_twilio_errors(
    twilio: TwilioEnv,
) -> None:
    node, npm = _tool("node"), _tool("npm")
    modules = await _install(npm)
    r = await twilio.api.put(
        "/api/v1/consents",
        json={"channel": "sms", "address": OPTED_OUT, "opted_out": True},
        headers=twilio.headers(),
    )
    assert r.status_code in (200, 201), r.text
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_PATH": str(modules),
        "BASE_URL": twilio.base_url,
        "ACCOUNT_SID": twilio.account_sid,
        "AUTH_TOKEN": twilio.auth_token,
        "TO": TO,
        "FROM": FROM,
        "OPTED_OUT": OPTED_OUT,
    }
    result = json.loads(await _run(node, str(SCRIPT), cwd=ROOT, env=env))

    sids = [m["sid"] for m in result["created"]]
    assert all(s.startswith("SM") and len(s) == 34 for s in sids)
    assert {(m["status"], m["to"], m["from"]) for m in result["created"]} == {("queued", TO, FROM)}
    assert result["fetched"] == {
        "sid": sids[0],
        "body": "node 0",
        "numSegments": "1",
        "dateCreated": True,
        "accountSid": twilio.account_sid,
    }
    newest_first = sids[::-1]
    assert result["firstPage"] == newest_first[:2]
    assert result["secondPage"] == newest_first[2:4]
    assert result["all"] == newest_first
    assert (result["scheduled"], result["canceled"]) == ("scheduled", "canceled")
    codes = {
        name: (result[name]["code"], result[name]["status"])
        for name in ("cancelAgain", "invalidTo", "missingBody", "optedOut", "badAuth", "notFound")
    }
    assert codes == {
        "cancelAgain": (30409, 400),
        "invalidTo": (21211, 400),
        "missingBody": (21602, 400),
        "optedOut": (21610, 400),
        "badAuth": (20003, 401),
        "notFound": (20404, 404),
    }
    assert result["optedOut"]["moreInfo"] == "https://www.twilio.com/docs/errors/21610"
