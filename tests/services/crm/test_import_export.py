"""CSV import (mapping, dry run, errors, twice without duplicates) and export."""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from nexus.kernel.http import create_app
from tests.conftest import eventually
from tests.kernel.test_cli import free_port
from tests.services.crm.conftest import Crm

CONTACTS = """E-mail,Given Name,Surname,Mobile,Company,Website,Lifecycle,Plan
ada@example.com,Ada,Lovelace,+44 20 7946 0001,Analytical,engines.example,customer,gold
grace@example.com,Grace,Hopper,+1 415 555 0101,Navy,,sql,silver
bad-email,Bad,Row,,,,,
linus@example.com,Linus,,,Analytical,engines.example,lead,platinum
ada@example.com,Ada,,,,,,
"""


async def _import(crm: Crm, h: dict[str, str], body: str, **params: Any) -> dict[str, Any]:
    response = await crm.client.post(
        "/api/v1/crm/import",
        params=params,
        content=body.encode(),
        headers={**h, "content-type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    import_id = response.json()["id"]
    final: dict[str, Any] = {}

    async def done() -> bool:
        final.update(await crm.get(f"/import/{import_id}", h))
        return final["status"] in ("completed", "failed")

    await eventually(done, timeout_s=30)
    return final


async def test_importing_twice_creates_no_duplicates(crm: Crm) -> None:
    h = crm.admin()
    await crm.post(
        "/custom-fields",
        h,
        object_type="contact",
        key="plan",
        label="Plan",
        type="select",
        options=["gold", "silver"],
    )
    dry = await _import(crm, h, CONTACTS, object="contacts", dry_run=True)
    assert (dry["created"], dry["rows_failed"]) == (2, 2)
    assert (await crm.get("/contacts", h))["items"] == []  # a dry run writes nothing

    first = await _import(crm, h, CONTACTS, object="contacts")
    assert first["mapping"]["email"] == "E-mail"
    assert first["mapping"]["cf.plan"] == "Plan"
    assert (first["created"], first["updated"], first["rows_failed"]) == (2, 0, 2)
    errors = await crm.client.get(f"/api/v1/crm/import/{first['id']}/errors", headers=h)
    report = list(csv.reader(io.StringIO(errors.text)))
    assert [(r[0], r[1]) for r in report[1:]] == [("4", "E-mail"), ("5", "Plan")]
    contacts = (await crm.get("/contacts", h))["items"]
    assert len(contacts) == 2
    ada = next(c for c in contacts if c["first_name"] == "Ada")
    assert ada["phones"] == ["+442079460001"]
    assert ada["custom"] == {"plan": "gold"}
    companies = (await crm.get("/companies", h))["items"]
    assert len(companies) == 2  # Analytical (engines.example) once, Navy

    second = await _import(crm, h, CONTACTS, object="contacts")
    assert (second["created"], second["updated"]) == (0, 0)
    assert second["unchanged"] == 3
    assert len((await crm.get("/contacts", h))["items"]) == 2
    assert len((await crm.get("/companies", h))["items"]) == 2

    changed = await _import(
        crm, h, "email,lead_source\nada@example.com,webinar\n", object="contacts"
    )
    assert (changed["created"], changed["updated"]) == (0, 1)
    ada = await crm.get(f"/contacts/{ada['id']}", h)
    assert ada["lead_source"] == "webinar"
    assert ada["last_name"] == "Lovelace"  # empty cells change nothing


async def test_deals_and_companies_import_and_export_round_trip(crm: Crm) -> None:
    h = crm.admin()
    await _import(crm, h, "name,domain,size\nGlobex,globex.example,120\n", object="companies")
    await crm.post("/contacts", h, first_name="Hank", emails=["hank@globex.example"])
    deals_csv = (
        "Deal,Value,Stage,Contact,Company,Close date,Status\n"
        "Doomsday,10000,Proposal,hank@globex.example,globex.example,2027-01-15,open\n"
        "Old one,500,,,globex.example,,lost\n"
        "Broken,abc,,,,,\n"
    )
    first = await _import(crm, h, deals_csv, object="deals")
    assert (first["created"], first["rows_failed"]) == (2, 1)
    again = await _import(crm, h, deals_csv, object="deals")
    assert (again["created"], again["unchanged"]) == (0, 2)
    deals = {d["name"]: d for d in (await crm.get("/deals", h))["items"]}
    assert set(deals) == {"Doomsday", "Old one"}
    assert deals["Doomsday"]["probability"] == 0.5
    assert deals["Old one"]["status"] == "lost"

    exported = await crm.client.get("/api/v1/crm/export", params={"object": "deals"}, headers=h)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["name"]: r["stage"] for r in rows} == {"Doomsday": "Proposal", "Old one": "Lead in"}
    assert {r["company_domain"] for r in rows} == {"globex.example"}
    back = await _import(crm, h, exported.text, object="deals")
    assert (back["created"], back["rows_failed"]) == (0, 0)

    contacts = await crm.client.get("/api/v1/crm/export", params={"object": "contacts"}, headers=h)
    assert next(iter(csv.DictReader(io.StringIO(contacts.text))))["email"] == "hank@globex.example"


async def test_import_rules(crm: Crm) -> None:
    rep = crm.issuer.headers(
        org_id="org-a",
        sub="rep-1",
        permissions=["crm:data:import", "crm:data:export"],
        cg=[{"p": "crm:contact:*", "c": ["resource.owner_id == user.id"]}],
    )
    admin = crm.admin()
    theirs = await crm.post("/contacts", admin, first_name="Boss", emails=["boss@example.com"])
    result = await _import(
        crm,
        rep,
        "email,first_name,owner_id\nboss@example.com,Hacked,\nnew@example.com,New,admin-1\n"
        "mine@example.com,Mine,\n",
        object="contacts",
    )
    assert (result["created"], result["rows_failed"]) == (1, 2)
    assert (await crm.get(f"/contacts/{theirs['id']}", admin))["first_name"] == "Boss"
    exported = await crm.client.get("/api/v1/crm/export?object=contacts", headers=rep)
    assert [r["email"] for r in csv.DictReader(io.StringIO(exported.text))] == ["mine@example.com"]

    no_import = crm.rep("rep-2")
    refused = await crm.client.post(
        "/api/v1/crm/import?object=contacts",
        content=b"email\na@b.c\n",
        headers={**no_import, "content-type": "text/csv"},
    )
    assert refused.status_code == 403
    bad = await crm.client.post(
        "/api/v1/crm/import?object=deals",
        content=b"amount\n5\n",
        headers={**admin, "content-type": "text/csv"},
    )
    assert bad.status_code == 422  # no column for the required field name
    other_org = await crm.client.get(
        f"/api/v1/crm/import/{result['id']}", headers=crm.admin("org-b")
    )
    assert other_org.status_code == 404


@pytest.fixture
async def served(crm: Crm) -> AsyncIterator[str]:
    app = create_app(crm.runtime.settings, runtime=crm.runtime)
    port = free_port()
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
async def test_the_cli_imports_with_a_progress_bar_and_exports(
    crm: Crm, served: str, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("email,first_name\nann@example.com,Ann\nnot-an-email,Bad\n")
    token = crm.issuer.token(org_id="org-a", permissions=["crm:*"])

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nexus.cli",
            "crm",
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

    code, out, err = await cli("import", str(path), "--object", "contacts")
    assert code == 0, err
    assert "100%" in err
    assert "completed" in out
    report = path.with_name("contacts.csv.errors.csv").read_text()
    assert "not-an-email" in report
    export = tmp_path / "out.csv"
    code, out, err = await cli("export", "--object", "contacts", "--out", str(export))
    assert code == 0, err
    assert "1 contacts written" in out
    assert "ann@example.com" in export.read_text()
