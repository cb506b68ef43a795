"""Lead scoring: the model beats the rules on held-out deals; rules with little history;
retrained by the command and by the schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys

import pytest

from nexus.kernel.db import utcnow
from nexus.kernel.events import enqueue
from nexus.services.crm import jobs
from tests.conftest import eventually, settings_env
from tests.services.crm.conftest import Crm
from tests.services.crm.history import generate


async def test_the_model_beats_the_rules_on_5000_deals(crm: Crm) -> None:
    h = crm.admin()
    await generate(crm.runtime.db("crm"), "org-a", 5000)
    trained = await crm.post("/scoring/train", h)
    print(
        f"\nlead scoring on held-out deals: AUC model {trained['auc_ml']:.3f}, "
        f"rules {trained['auc_rules']:.3f} ({trained['samples']} closed deals)"
    )
    assert trained["samples"] == 5000
    assert trained["auc_ml"] > trained["auc_rules"]
    assert trained["kind"] == "ml"
    assert await crm.get("/scoring", h) == trained

    referral = await crm.post(
        "/contacts", h, first_name="Warm", lead_source="referral", lifecycle_stage="lead"
    )
    cold = await crm.post(
        "/contacts", h, first_name="Cold", lead_source="cold_call", lifecycle_stage="opportunity"
    )
    warm_score = await crm.get(f"/contacts/{referral['id']}/score", h)
    cold_score = await crm.get(f"/contacts/{cold['id']}/score", h)
    assert warm_score["model"] == "ml"
    assert warm_score["score"] > cold_score["score"]
    assert "source=referral" in [f["feature"] for f in warm_score["factors"]]
    assert "source=cold_call" in [f["feature"] for f in cold_score["factors"]]
    assert len(warm_score["factors"]) == 5


async def test_little_history_scores_by_rules(crm: Crm) -> None:
    h = crm.admin()
    await generate(crm.runtime.db("crm"), "org-a", 30)
    trained = await crm.post("/scoring/train", h)
    assert trained["kind"] == "rules"
    assert "too little history" in trained["note"]
    contact = await crm.post(
        "/contacts", h, first_name="Sal", lifecycle_stage="sql", emails=["s@example.com"]
    )
    score = await crm.get(f"/contacts/{contact['id']}/score", h)
    assert score["model"] == "rules"
    assert score["score"] == 35  # sql 30 + e-mail 5
    assert score["factors"][0]["feature"] == "lifecycle=sql"


async def test_a_rep_cannot_train(crm: Crm) -> None:
    refused = await crm.client.post("/api/v1/crm/scoring/train", headers=crm.rep("rep-1"))
    assert refused.status_code == 403
    nothing = await crm.client.get("/api/v1/crm/scoring", headers=crm.admin())
    assert nothing.status_code == 404


async def test_the_schedule_retrains_every_org(crm: Crm) -> None:
    db = crm.runtime.db("crm")
    await generate(db, "org-a", 60, seed=1)
    await generate(db, "org-b", 60, seed=2)
    async with db.transaction() as session:  # the next scheduled run, due now
        await enqueue(session, jobs.SCHEDULE, {"slot": 1}, run_at=utcnow())

    async def trained() -> bool:
        for org in ("org-a", "org-b"):
            response = await crm.client.get("/api/v1/crm/scoring", headers=crm.admin(org))
            if response.status_code != 200:
                return False
        return True

    await eventually(trained, timeout_s=30)


@pytest.mark.slow
async def test_the_command_retrains(crm: Crm) -> None:
    await generate(crm.runtime.db("crm"), "org-a", 80)
    env = settings_env(crm.runtime.settings)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "nexus.cli", "crm", "train-scoring", "--org", "org-a"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "org-a" in result.stdout
    model = await crm.get("/scoring", crm.admin())
    assert model["samples"] == 80
    assert dt.datetime.fromisoformat(model["trained_at"]) > utcnow() - dt.timedelta(minutes=5)
