"""CRM figures: search latency at 1,000,000 contacts and pipeline board load time at 10,000
open deals, through the HTTP API.

    .venv/bin/python benchmarks/crm.py [--mode embedded|services|all] [--quick]
        [--contacts N] [--deals N] [--requests N]

Modes:
- embedded: a SQLite file in a temporary directory (FTS5 search).
- services: a temporary PostgreSQL database (full text + pg_trgm search), dropped at the
  end. Only the database differs: the bus is not involved in these reads.

The rows are generated with bulk SQL (recursive CTE / generate_series), not the ORM:
contacts with names from 200 first and 200 last names (so about 25 contacts share each
full name at 1M), an e-mail and a phone each, 20 owners, plus their search rows (the
FTS5 index on SQLite is filled by its triggers). Then, with the production app in
process (httpx's ASGI transport, so the figures include FastAPI and JSON but no socket),
requests run one after another:
- search, per kind of query: a 3-letter prefix of a last name, a full name, an e-mail,
  a phone number, a misspelt name that only the fuzzy fallback finds, and a prefix as a
  rep who sees only its own records (1 owner in 20);
- the board (`GET /crm/pipelines/{id}/board`, 50 deals per stage with counts and sums) of
  --deals open deals over 4 stages, as an admin and as a rep.
Each figure is one JSON object per line on stdout; progress goes to stderr. `--quick`
uses 100,000 contacts and fewer requests. The machine is shared: read the figures as
orders of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from benchmarks._common import drop_services
from sqlalchemy import text

from nexus.kernel.config import Settings
from nexus.kernel.db import Database
from nexus.kernel.http import create_app
from nexus.kernel.logging import configure_logging
from nexus.kernel.migrate import upgrade
from nexus.kernel.runtime import Runtime
from nexus.services.crm import service as crm_service
from nexus.services.crm.normalize import soundex
from nexus.testing.tokens import TestIssuer

PG_ADMIN = os.environ.get("NEXUS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("NEXUS_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def _words(text: str) -> list[str]:
    return text.split()[:200]


ORG = "01a20000-0000-7000-8000-00000000b001"
OWNERS = 20
FIRST = _words("""james mary john patricia robert jennifer michael linda william elizabeth david
barbara richard susan joseph jessica thomas sarah charles karen christopher nancy daniel lisa
matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna
joshua michelle kenneth dorothy kevin carol brian amanda george melissa edward deborah ronald
stephanie timothy rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy
nicholas shirley eric angela jonathan helen stephen anna larry brenda justin pamela scott nicole
brandon emma benjamin samantha samuel katherine gregory christine frank debra alexander rachel
raymond catherine patrick carolyn jack janet dennis ruth jerry maria tyler heather aaron diane
jose virginia adam julie henry joyce nathan victoria douglas olivia zachary kelly peter christina
kyle lauren walter joan ethan evelyn jeremy judith harold megan keith cheryl christian andrea
roger hannah noah martha gerald jacqueline carl frances terry gloria sean ann austin teresa
arthur kathryn lawrence sara jesse janice dylan jean bryan alice joe madison jordan doris billy
abigail bruce julia albert judy willie grace gabriel denise logan amber alan marilyn juan beverly
wayne danielle roy theresa ralph sophia randy marie eugene diana vincent brittany russell natalie
elijah isabella louis charlotte bobby rose philip alexis johnny kayla""")
LAST = _words("""smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white
harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen
hill flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips
evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson
watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders
patel myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler
henderson barnes gonzales fisher vasquez simmons romero jordan patterson alexander hamilton
graham reynolds griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina
aguilar stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington
kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter
hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black
robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson
nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins""")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(figure: dict[str, Any]) -> None:
    import json

    print(json.dumps(figure), flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 2)


async def _names(conn: Any, pg: bool) -> None:
    for table, names in (("bench_first", FIRST), ("bench_last", LAST)):
        await conn.execute(
            text(f"CREATE TEMP TABLE {table} (i INTEGER PRIMARY KEY, name TEXT, code TEXT)")
        )
        await conn.execute(
            text(f"INSERT INTO {table} (i, name, code) VALUES (:i, :name, :code)"),
            [{"i": i, "name": n, "code": soundex(n)} for i, n in enumerate(names)],
        )


def _contacts_sql(pg: bool) -> tuple[str, str]:
    """(contacts, search docs) INSERT ... SELECT for ids [:start, :stop)."""
    if pg:
        series = "SELECT generate_series(:start, :stop - 1) AS i"
        hexid = "'00000000-0000-7000-8000-' || lpad(to_hex(n.i), 12, '0')"
        phone = "'+1415' || lpad((n.i % 10000000)::text, 7, '0')"
        email = "f.name || '.' || l.name || n.i || '@example.com'"
        json_list = "jsonb_build_array({})"
        now = "now()"
        owner = "'owner-' || (n.i % 20)"
        suffix = ""
    else:
        series = (
            "WITH RECURSIVE s(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM s "
            "WHERE i + 1 < :stop) SELECT i FROM s"
        )
        hexid = "printf('00000000-0000-7000-8000-%012x', n.i)"
        phone = "'+1415' || printf('%07d', n.i % 10000000)"
        email = "f.name || '.' || l.name || n.i || '@example.com'"
        json_list = "json_array({})"
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        owner = "'owner-' || (n.i % 20)"
        suffix = ""
    source = (
        f"FROM ({series}) n JOIN bench_first f ON f.i = n.i % 200 "
        f"JOIN bench_last l ON l.i = (n.i / 200) % 200{suffix}"
    )
    contacts = (
        "INSERT INTO crm_contacts (id, org_id, first_name, last_name, emails, phones, owner_id, "
        "lifecycle_stage, tags, custom, consent, created_at, updated_at) "
        f"SELECT {hexid}, :org, initcap_f, initcap_l, {json_list.format(email)}, "
        f"{json_list.format(phone)}, {owner}, 'lead', {json_list.format('')}, "
        f"{'jsonb_build_object()' if pg else 'json_object()'}, "
        f"{'jsonb_build_object()' if pg else 'json_object()'}, {now}, {now} {source}"
    )
    cap = "initcap(f.name)" if pg else "upper(substr(f.name, 1, 1)) || substr(f.name, 2)"
    cap_l = "initcap(l.name)" if pg else "upper(substr(l.name, 1, 1)) || substr(l.name, 2)"
    contacts = contacts.replace("initcap_f", cap).replace("initcap_l", cap_l)
    docs = (
        "INSERT INTO crm_search_docs (object_id, org_id, object_type, owner_id, title, "
        "subtitle, text, sounds) "
        f"SELECT {hexid}, :org, 'contact', {owner}, {cap} || ' ' || {cap_l}, {email}, "
        f"f.name || ' ' || l.name || ' ' || {email} || ' ' || f.name || ' ' || l.name || n.i "
        f"|| ' example com ' || substr({phone}, 2), f.code || ' ' || l.code {source}"
    )
    return contacts, docs


async def load_contacts(db: Database, count: int) -> float:
    pg = not db.is_sqlite
    contacts, docs = _contacts_sql(pg)
    started = time.perf_counter()
    batch = 100_000
    async with db.engine.connect() as conn:
        await _names(conn, pg)
        await conn.commit()
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            for sql in (contacts, docs):
                await conn.execute(text(sql), {"start": start, "stop": stop, "org": ORG})
            await conn.commit()
            log(f"  {stop:,} contacts ({time.perf_counter() - started:.0f} s)")
        if pg:
            await conn.execute(text("ANALYZE crm_search_docs"))
            await conn.execute(text("ANALYZE crm_contacts"))
            await conn.commit()
    return time.perf_counter() - started


async def load_deals(db: Database, count: int, pipeline_id: str, stages: list[str]) -> float:
    pg = not db.is_sqlite
    started = time.perf_counter()
    if pg:
        series = "generate_series(0, :count - 1) AS n(i)"
        hexid = "'00000000-0000-7000-9000-' || lpad(to_hex(n.i), 12, '0')"
        stage = "(ARRAY[:s0, :s1, :s2, :s3])[n.i % 4 + 1]"
        now, custom = "now()", "jsonb_build_object()"
    else:
        series = (
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :count) "
            "SELECT i FROM s) n"
        )
        hexid = "printf('00000000-0000-7000-9000-%012x', n.i)"
        stage = "CASE n.i % 4 WHEN 0 THEN :s0 WHEN 1 THEN :s1 WHEN 2 THEN :s2 ELSE :s3 END"
        now, custom = "strftime('%Y-%m-%d %H:%M:%f', 'now')", "json_object()"
    sql = (
        "INSERT INTO crm_deals (id, org_id, name, amount, currency, pipeline_id, stage_id, "
        "owner_id, status, custom, created_at, updated_at) "
        f"SELECT {hexid}, :org, 'Deal ' || n.i, 1000 + (n.i % 50) * 100, 'USD', :pipeline, "
        f"{stage}, 'owner-' || (n.i % 20), 'open', {custom}, {now}, {now} FROM {series}"
    )
    params = {"count": count, "org": ORG, "pipeline": pipeline_id}
    params.update({f"s{i}": s for i, s in enumerate(stages)})
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)
        if pg:
            await conn.execute(text("ANALYZE crm_deals"))
    return time.perf_counter() - started


def queries(kind: str, rng: random.Random, contacts: int) -> str:
    i = rng.randrange(contacts)
    first, last = FIRST[i % 200], LAST[(i // 200) % 200]
    if kind == "prefix":
        return last[:3]
    if kind == "full_name":
        return f"{first} {last}"
    if kind == "email":
        return f"{first}.{last}{i}@example.com"
    if kind == "phone":
        digits = f"{i % 10_000_000:07d}"
        return f"+1 415 {digits[:3]} {digits[3:]}"
    # fuzzy: a vowel changed in the last name, so no word starts like it
    typo = last.replace("a", "e", 1) if "a" in last else last.replace("e", "a", 1)
    typo = typo if typo != last else last + "h"
    return f"{first} {typo}"


async def timed(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int, params: Any
) -> tuple[list[float], Any]:
    latencies: list[float] = []
    last: Any = None
    for k in range(n):
        started = time.perf_counter()
        response = await client.get(path, params=params(k), headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        last = response.json()
    return latencies, last


def figure(name: str, mode: str, latencies: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "bench": name,
        "mode": mode,
        **extra,
        "requests": len(latencies),
        "p50_ms": pct(latencies, 0.5),
        "p95_ms": pct(latencies, 0.95),
        "p99_ms": pct(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies), 2),
    }


async def run(mode: str, contacts: int, deals: int, requests: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nexus-crm-bench-"))
    values: dict[str, Any] = {
        "data_dir": tmp / "var",
        "env": "test",
        "secret_key": "bench-" + "x" * 40,
        "jwt_issuer": "http://nexus.bench",
    }
    database = None
    if mode == "services":
        import asyncpg

        database = f"nexus_bench_crm_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{database}"')
        await conn.close()
        host = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
        values["database_url"] = f"postgresql+asyncpg://{host}/{database}"
    settings = Settings(**values)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, [crm_service])
    try:
        await upgrade(runtime)
        await runtime.start(workers=False)
        issuer = TestIssuer(issuer="http://nexus.bench")
        issuer.install(runtime)
        db = runtime.db("crm")
        log(f"[{mode}] loading {contacts:,} contacts")
        load_s = await load_contacts(db, contacts)
        emit(
            {
                "bench": "crm.load_contacts",
                "mode": mode,
                "contacts": contacts,
                "seconds": round(load_s, 1),
                "rows_per_s": round(contacts / load_s),
            }
        )
        app = create_app(settings, runtime=runtime)
        admin = issuer.headers(org_id=ORG, sub="admin", permissions=["crm:*"])
        rep = issuer.headers(
            org_id=ORG,
            sub="owner-3",
            permissions=[],
            cg=[
                {"p": f"crm:{k}:read", "c": ["resource.owner_id == user.id"]}
                for k in ("contact", "company", "deal")
            ],
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60
        ) as client:
            pipeline = (await client.get("/api/v1/crm/pipelines", headers=admin)).json()[0]
            rng = random.Random(11)
            for kind, headers in (
                ("prefix", admin),
                ("full_name", admin),
                ("email", admin),
                ("phone", admin),
                ("fuzzy", admin),
                ("prefix_as_rep", rep),
            ):
                texts = [
                    queries(kind.removesuffix("_as_rep"), rng, contacts) for _ in range(requests)
                ]
                await timed(
                    client,
                    "/api/v1/crm/search",
                    headers,
                    3,
                    lambda k, t=texts: {"q": t[k], "type": "contact"},
                )
                latencies, last = await timed(
                    client,
                    "/api/v1/crm/search",
                    headers,
                    requests,
                    lambda k, t=texts: {"q": t[k], "type": "contact"},
                )
                emit(
                    figure(
                        "crm.search",
                        mode,
                        latencies,
                        contacts=contacts,
                        query=kind,
                        example=texts[-1],
                        hits_last=len(last["items"]),
                        match_last=last["match"],
                    )
                )
            log(f"[{mode}] loading {deals:,} open deals")
            deal_s = await load_deals(
                db, deals, pipeline["id"], [s["id"] for s in pipeline["stages"]]
            )
            emit(
                {
                    "bench": "crm.load_deals",
                    "mode": mode,
                    "deals": deals,
                    "seconds": round(deal_s, 2),
                }
            )
            board = f"/api/v1/crm/pipelines/{pipeline['id']}/board"
            for who, headers in (("admin", admin), ("rep", rep)):
                await timed(client, board, headers, 2, lambda k: {"per_stage": 50})
                latencies, last = await timed(
                    client, board, headers, max(requests // 4, 10), lambda k: {"per_stage": 50}
                )
                emit(
                    figure(
                        "crm.board",
                        mode,
                        latencies,
                        open_deals=deals,
                        caller=who,
                        per_stage=50,
                        deals_counted=sum(s["count"] for s in last["stages"]),
                    )
                )
    finally:
        await runtime.stop()
        await runtime.databases.dispose()
        if database:
            await drop_services(
                namespace=None, database=database, nats_url=NATS_URL, pg_admin=PG_ADMIN
            )
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["embedded", "services", "all"], default="embedded")
    parser.add_argument("--quick", action="store_true", help="100,000 contacts, fewer requests")
    parser.add_argument("--contacts", type=int)
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--requests", type=int)
    args = parser.parse_args()
    configure_logging("WARNING", "console", stream=sys.stderr)
    contacts = args.contacts or (100_000 if args.quick else 1_000_000)
    requests = args.requests or (40 if args.quick else 200)
    for mode in ("embedded", "services") if args.mode == "all" else (args.mode,):
        asyncio.run(run(mode, contacts, args.deals, requests))


if __name__ == "__main__":
    main()
