"""Contact import: bad rows reported with row, column and reason; dedupe on normalized
addresses; the same file twice changes nothing; dry run; the CLI with its progress bar
against a real server."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from nexus.kernel.http import create_app
from nexus.services.vas import service as vas_service
from nexus.services.vas.engagement.models import Contact, ContactAddress
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory
from tests.kernel.test_cli import free_port
from tests.services.vas.conftest import VasEnv
from tests.services.vas.engagement.conftest import import_csv, phone

ROWS = 2000
BAD = {17: "phone", 404: "email", 1200: "timezone", 1999: "opted_out"}


def contacts_csv(rows: int = ROWS) -> str:
    """`rows` contacts with a few bad rows and a few duplicates (in other notations)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["Mobile", "E-mail", "First Name", "Last Name", "Tags", "TZ", "Opt out", "Plan"]
    )
    for i in range(rows):
        row = [
            phone(i),
            f"p{i}@example.com",
            f"First{i}",
            "Last",
            "a,b",
            "Europe/Paris",
            "no",
            "gold",
        ]
        if i % 500 == 7:  # the same number as the row before, written nationally
            row[0] = f"(415) 555-{i - 1:04d}"
            row[1] = ""
        bad = BAD.get(i)
        if bad == "phone":
            row[0] = "+1 555"
        elif bad == "email":
            row[0], row[1] = "", "not-an-address"
        elif bad == "timezone":
            row[5] = "Mars/Base"
        elif bad == "opted_out":
            row[6] = "maybe"
        writer.writerow(row)
    return out.getvalue()


async def _count(env: VasEnv, model: type) -> int:  # type: ignore[type-arg]
    async with env.runtime.db("vas").read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_import_reports_errors_dedupes_and_is_idempotent(sms: VasEnv) -> None:
    text = contacts_csv()
    duplicates = sum(1 for i in range(ROWS) if i % 500 == 7)
    dry = await import_csv(sms, text, dry_run="true", region="US", tags="imported")
    assert dry["status"] == "completed"
    assert await _count(sms, Contact) == 0

    done = await import_csv(sms, text, region="US", tags="imported")
    assert done["status"] == "completed"
    assert done["mapping"]["phone"] == "Mobile"
    assert done["mapping"]["opted_out"] == "Opt out"
    assert done["rows_read"] == ROWS
    assert done["rows_failed"] == len(BAD)
    assert done["created"] == ROWS - len(BAD) - duplicates
    assert done["unchanged"] + done["updated"] == duplicates
    assert dry["rows_failed"] == done["rows_failed"]
    assert await _count(sms, Contact) == done["created"]
    # one row per address: phone → sms + whatsapp, and e-mail
    assert await _count(sms, ContactAddress) == 3 * done["created"]

    errors = await sms.client.get(
        f"/api/v1/contacts/imports/{done['id']}/errors", headers=sms.headers
    )
    assert errors.status_code == 200
    report = list(csv.DictReader(io.StringIO(errors.text)))
    # row numbers count the header as row 1
    assert [(int(r["row"]), r["column"]) for r in report] == [
        (19, "Mobile"),
        (406, "E-mail"),
        (1202, "TZ"),
        (2001, "Opt out"),
    ]
    assert "not-an-address" in report[1]["E-mail"]
    assert all(r["reason"] for r in report)

    again = await import_csv(sms, text, region="US", tags="imported")
    assert (again["created"], again["updated"], again["rows_failed"]) == (0, 0, len(BAD))
    assert await _count(sms, Contact) == done["created"]

    one = (
        await sms.client.get("/api/v1/contacts", params={"q": phone(5)}, headers=sms.headers)
    ).json()
    contact = one["items"][0]
    assert contact["name"] == "First5 Last"
    assert contact["tags"] == ["a", "b", "imported"]
    assert contact["attributes"] == {"plan": "gold"}
    assert contact["timezone"] == "Europe/Paris"


async def test_import_merges_updates_and_opt_outs(sms: VasEnv) -> None:
    await import_csv(sms, f"phone,name,plan\n{phone(1)},Ann,free\n{phone(2)},Bob,free\n")
    changed = await import_csv(
        sms,
        f"phone,email,plan,opted out\n{phone(1)},ann@example.com,gold,yes\n{phone(2)},,free,no\n",
    )
    assert (changed["created"], changed["updated"], changed["unchanged"]) == (0, 1, 1)
    ann = (
        await sms.client.get("/api/v1/contacts", params={"q": "ann"}, headers=sms.headers)
    ).json()
    addresses = {a["channel"]: a for a in ann["items"][0]["addresses"]}
    assert addresses["email"]["address"] == "ann@example.com"
    assert addresses["sms"]["opted_out"]
    assert addresses["sms"]["consent_source"] == "import"
    assert ann["items"][0]["attributes"] == {"plan": "gold"}
    # a row whose phone and e-mail belong to two different contacts is refused
    conflict = await import_csv(sms, f"phone,email\n{phone(2)},ann@example.com\n")
    assert conflict["rows_failed"] == 1


async def test_bad_files_are_refused_before_anything_is_stored(sms: VasEnv) -> None:
    for body, status in (
        (b"", 422),
        (b"name,plan\nAnn,gold\n", 422),  # no address column
        (b"\xff\xfe\x00x\n", 422),
    ):
        response = await sms.client.post(
            "/api/v1/contacts/import",
            content=body,
            headers={**sms.headers, "content-type": "text/csv"},
        )
        assert response.status_code == status, (body, response.text)
    response = await sms.client.post(
        "/api/v1/contacts/import",
        content=b"a,b\n",
        params={"mapping": '{"phone": "missing"}'},
        headers={**sms.headers, "content-type": "text/csv"},
    )
    assert response.status_code == 422
    assert "missing" in response.json()["detail"]
    listed = await sms.client.get("/api/v1/contacts/imports", headers=sms.headers)
    assert listed.json()["items"] == []
    imports = sms.runtime.settings.data_dir / "imports" / "vas"
    assert list(imports.glob("*")) == []  # partial uploads removed


@pytest.fixture
async def served(make_runtime: RuntimeFactory, settings, issuer: TestIssuer) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([vas_service])
    port = free_port()
    app = create_app(settings, runtime=runtime)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.slow
async def test_cli_import_with_progress_bar(
    served: str, issuer: TestIssuer, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(contacts_csv())
    token = issuer.token(org_id="org-cli")

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nexus.cli",
            "vas",
            "contacts",
            *args,
            "--api-url",
            served,
            "--token",
            token,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NEXUS_LOG_LEVEL": "WARNING"},
        )
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("import", str(path), "--region", "US", "--tag", "cli")
    assert code == 0, err
    assert "import" in err  # the progress bar (on stderr)
    assert "100%" in err
    assert "completed" in out
    report = path.with_name("contacts.csv.errors.csv").read_text()
    assert len(report.strip().splitlines()) == 1 + len(BAD)

    code, out, err = await cli("import", str(path), "--region", "US", "--tag", "cli")
    assert code == 0, err
    async with httpx.AsyncClient(base_url=served) as client:
        headers = issuer.headers(org_id="org-cli")
        imports = (await client.get("/api/v1/contacts/imports", headers=headers)).json()["items"]
        assert imports[0]["created"] == 0
        assert imports[0]["updated"] == 0

    export = tmp_path / "out.csv"
    code, out, err = await cli("export", "--out", str(export), "--tag", "cli")
    assert code == 0, err
    assert len(export.read_text().strip().splitlines()) == 1 + imports[1]["created"]
