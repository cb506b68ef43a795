"""The kernel's streaming CSV import, driven through a tiny service of its own: upload over
HTTP (larger than the body limit), chunked background job, per-row errors, dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nexus.kernel import csv_import as ci
from nexus.kernel.auth import Principal, require
from nexus.kernel.db import IdMixin, OrgScoped, insert_ignore
from nexus.kernel.events import Job
from nexus.kernel.http import create_app, large_body
from nexus.kernel.service import HandlerContext, JobHandler, Service
from nexus.testing.tokens import TestIssuer
from tests.conftest import RuntimeFactory, eventually

QUEUE = "csvt.import"


class Base(DeclarativeBase):
    pass


class Person(Base, OrgScoped):
    __tablename__ = "csvt_people"
    email: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class PeopleImport(Base, IdMixin, OrgScoped, ci.CsvImportMixin):
    __tablename__ = "csvt_imports"


class PeopleImportError(Base, IdMixin, OrgScoped, ci.CsvImportErrorMixin):
    __tablename__ = "csvt_import_errors"


class People:
    fields = (
        ci.ImportField("email", required=True, aliases=("e-mail", "mail")),
        ci.ImportField("name", aliases=("full name",)),
        ci.ImportField("age"),
    )

    def validate(self, row: ci.Row, import_: Any) -> dict[str, str]:
        email = row.values.get("email", "").lower()
        if "@" not in email:
            raise ci.RowInvalid("email", f"{email!r} is not an e-mail address.")
        if "age" in row.values and not row.values["age"].isdigit():
            raise ci.RowInvalid("age", "The age must be a whole number.")
        return {"org_id": import_.org_id, "email": email, "name": row.values.get("name", "")}

    async def write(
        self,
        session: AsyncSession,
        import_: Any,
        items: list[tuple[ci.Row, dict[str, str]]],
        dry_run: bool,
    ) -> ci.Outcome:
        outcome = ci.Outcome()
        for row, item in items:
            if item["name"] == "boom":
                raise RuntimeError("the database is on fire")
            if item["name"] == "conflict":
                outcome.errors.append(ci.RowError(row.number, "name", "Refused while writing."))
            elif await insert_ignore(session, Person, [item]):
                outcome.created += 1
            else:
                outcome.unchanged += 1
        return outcome


HANDLER = People()


async def _chunk(job: Job, ctx: HandlerContext) -> None:
    await ci.run_chunk(
        ctx.runtime.db("csvt"),
        job,
        PeopleImport,
        PeopleImportError,
        HANDLER,
        chunk_rows=3,
        max_attempts=2,
    )


router = APIRouter()


@router.post("/csvt/import", status_code=202)
@large_body(10_000_000)
async def upload(
    request: Request, dry_run: bool = False, principal: Principal = require("csvt:import:run")
) -> dict[str, Any]:
    runtime = request.app.state.runtime
    directory = ci.import_dir(runtime.settings.data_dir, "csvt")
    up = await ci.save_upload(request.stream(), directory, max_bytes=10_000_000, filename="p.csv")
    mapping = ci.resolve_mapping(up.header, HANDLER.fields)
    async with runtime.db("csvt").transaction(org_id=principal.org_id) as session:
        imp = PeopleImport(
            org_id=principal.org_id, mapping=mapping, dry_run=dry_run, **up.columns()
        )
        session.add(imp)
        await session.flush()
        await ci.start(session, imp, QUEUE)
    return ci.ImportStatus.model_validate(imp).model_dump(mode="json")


@router.post("/csvt/small")
async def small(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}


csvt = Service(
    name="csvt",
    router=router,
    metadata=Base.metadata,
    jobs=[JobHandler(QUEUE, _chunk, transactional=False, backoff_base_s=0.05, max_attempts=2)],
    permissions={"csvt:import:run": "Import people (test service)."},
)

CSV = (
    "\ufeffE-Mail;Full Name;Age\n"  # BOM, semicolons, aliases
    "ann@example.com;Ann;31\n"
    "bob@example.com;Bob;x\n"  # row 3: bad age
    "\n"  # row 4: blank
    'cat@example.com;"Cat\nMultiline";40\n'  # row 5: quoted line break
    "not-an-email;Dan;22\n"  # row 6
    "ann@example.com;Ann again;31\n"  # row 7: duplicate
    "eve@example.com;Eve;1;extra\n"  # row 8: too many columns
    "fay@example.com;conflict;5\n"  # row 9: refused by write()
    "gus@example.com;Gus"  # row 10: short row, no final newline
)


async def _run(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, **params: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/csvt/import", content=body, headers=headers, params=params
    )
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_import_in_chunks_with_row_errors_and_dry_run(
    make_runtime: RuntimeFactory, settings, issuer: TestIssuer
) -> None:  # type: ignore[no-untyped-def]
    runtime = await make_runtime([csvt])
    db = runtime.db("csvt")
    headers = issuer.headers(org_id="org-1", permissions=["csvt:import:run"])
    app = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:

        async def finished(import_id: str) -> PeopleImport:
            async def done() -> bool:
                async with db.read() as s:
                    return (await s.get(PeopleImport, import_id)).status in ci.FINAL  # type: ignore[union-attr]

            await eventually(done)
            async with db.read() as s:
                imp = await s.get(PeopleImport, import_id)
            assert imp is not None
            return imp

        async def people() -> int:
            async with db.read() as s:
                return int(await s.scalar(select(func.count()).select_from(Person)) or 0)

        dry = await finished((await _run(c, headers, CSV.encode(), dry_run=True))["id"])
        assert await people() == 0  # a dry run writes nothing ...
        real = await finished((await _run(c, headers, CSV.encode()))["id"])
        for imp in (dry, real):  # ... and reports what the real run does
            assert imp.status == "completed"
            assert imp.mapping == {"email": "E-Mail", "name": "Full Name", "age": "Age"}
            assert imp.rows_failed == 4
            assert imp.rows_read == 9
            assert imp.chunks >= 3
            assert not Path(imp.path).exists()
        assert (real.created, real.unchanged) == (3, 1)
        # a dry run's chunks are rolled back, so a duplicate in a later chunk counts as new
        assert (dry.created, dry.unchanged) == (4, 0)
        assert await people() == 3

        report = "".join([part async for part in ci.error_report(db, PeopleImportError, real)])
        lines = report.splitlines()
        assert lines[0] == "row,column,reason,E-Mail,Full Name,Age"
        assert [line.split(",")[:2] for line in lines[1:]] == [
            ["3", "age"],
            ["6", "email"],
            ["8", ""],
            ["9", "name"],
        ]
        assert "bob@example.com,Bob,x" in lines[1]

        again = await finished((await _run(c, headers, CSV.encode()))["id"])
        assert (again.created, again.unchanged) == (0, 4)  # the same file twice: no change

        big = ("email,name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(60_000))).encode()
        assert len(big) > settings.max_body_bytes
        assert (await c.post("/api/v1/csvt/small", content=big)).status_code == 413
        started = await _run(c, headers, big)
        assert started["total_bytes"] == len(big)

        # a chunk that keeps failing fails the import (rows of earlier chunks stay)
        broken = await finished((await _run(c, headers, b"email,name\nz@example.com,boom\n"))["id"])
        assert broken.status == "failed"
        assert "RuntimeError" in (broken.error or "")
        assert not Path(broken.path).exists()


def test_mapping() -> None:
    fields = People.fields
    assert ci.resolve_mapping(["Mail", "Name"], fields) == {"email": "Mail", "name": "Name"}
    assert ci.resolve_mapping(["x", "y"], fields, {"email": "y"}) == {"email": "y"}
    with pytest.raises(ci.ImportProblem, match="required"):
        ci.resolve_mapping(["name"], fields)
    with pytest.raises(ci.ImportProblem, match="Unknown field"):
        ci.resolve_mapping(["email"], fields, {"phone": "email"})
    with pytest.raises(ci.ImportProblem, match="does not have"):
        ci.resolve_mapping(["email"], fields, {"email": "mail"})


def test_bad_headers(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    for content, message in (
        (b"\xff\xfe\x00bad\n", "UTF-8"),
        (b"a,b,A\n1,2,3\n", "twice"),
        (b" , \n", "empty"),
    ):
        path.write_bytes(content)
        with pytest.raises(ci.ImportProblem, match=message):
            ci.read_header(path)
    path.write_bytes(b"a\tb\n1\t2\n")
    assert ci.read_header(path) == (["a", "b"], "\t", 4)
