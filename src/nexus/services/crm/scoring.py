"""Lead scoring: the chance a contact's deal is won, learned from the org's own history.

Each closed deal (won = 1, lost = 0) with a contact is one example. Its features describe
the contact as it was before the close: lifecycle stage, lead source, company industry
and size, which addresses it has, tags, how many calls, meetings, e-mails, messages each
way, notes and done tasks it had, its age, and the deal amount (log). A logistic
regression (scikit-learn: DictVectorizer, StandardScaler, LogisticRegression) is fitted
and kept as plain numbers in `crm_scoring_models` (no pickle), so a score's top factors
are the features' contributions to its log-odds.

With too little history (fewer than `MIN_DEALS` closed deals, or fewer than `MIN_CLASS`
won or lost) the org gets the rule-based score: points for lifecycle stage, addresses and
engagement. Training holds out the most recent quarter of the closed deals, measures
both the model and the rules on it (ROC AUC), and keeps the model only if it beats the
rules there; it is then refitted on everything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.kernel.db import Database, insert_ignore, utcnow
from nexus.kernel.ids import new_id
from nexus.services.crm.models import Activity, Company, Contact, Deal, DealContact, ScoringModel

MIN_DEALS = 50
MIN_CLASS = 10
HOLDOUT = 0.25
LIFECYCLE_POINTS = {
    "subscriber": 5,
    "lead": 10,
    "mql": 20,
    "sql": 30,
    "opportunity": 40,
    "customer": 50,
    "evangelist": 50,
    "other": 5,
}
COUNTED = {"call": "calls", "meeting": "meetings", "email": "emails", "note": "notes"}


@dataclass
class ContactFacts:
    contact: Any  # a row with lifecycle_stage, lead_source, emails, phones, tags, created_at
    company: Any | None  # a row with industry, size
    activities: list[tuple[str, str | None, bool, dt.datetime]]  # kind, direction, done, at


def features(facts: ContactFacts, cutoff: dt.datetime, amount: float) -> dict[str, float]:
    c = facts.contact
    out: dict[str, float] = {
        f"lifecycle={c.lifecycle_stage}": 1.0,
        f"source={(c.lead_source or 'unknown').lower()}": 1.0,
        "has_email": float(bool(c.emails)),
        "has_phone": float(bool(c.phones)),
        "tags": float(len(c.tags or [])),
        "amount_log": math.log1p(max(amount, 0.0)),
        "age_days": min(max((cutoff - c.created_at).total_seconds() / 86400, 0.0), 3650.0),
    }
    if facts.company is not None:
        out[f"industry={(facts.company.industry or 'unknown').lower()}"] = 1.0
        out["company_size_log"] = math.log1p(facts.company.size or 0)
    counts = dict.fromkeys([*COUNTED.values(), "messages_in", "messages_out", "tasks_done"], 0.0)
    for kind, direction, done, at in facts.activities:
        if at > cutoff:
            continue
        if kind == "message":
            counts["messages_in" if direction == "inbound" else "messages_out"] += 1
        elif kind == "task":
            counts["tasks_done"] += float(done)
        elif kind in COUNTED:
            counts[COUNTED[kind]] += 1
    out.update(counts)
    return out


def rule_points(x: dict[str, float]) -> dict[str, float]:
    """The rule-based score's parts (they add up to at most 100)."""
    stage = next((k.split("=", 1)[1] for k in x if k.startswith("lifecycle=")), "other")
    return {
        f"lifecycle={stage}": float(LIFECYCLE_POINTS.get(stage, 5)),
        "has_email": 5 * x.get("has_email", 0),
        "has_phone": 5 * x.get("has_phone", 0),
        "meetings": min(10 * x.get("meetings", 0), 20),
        "calls": min(5 * x.get("calls", 0), 10),
        "messages_in": min(5 * x.get("messages_in", 0), 10),
        "emails": min(2 * x.get("emails", 0), 10),
    }


def rule_score(x: dict[str, float]) -> float:
    return min(sum(rule_points(x).values()), 100.0) / 100


def ml_contributions(params: dict[str, Any], x: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(probability, contribution of each feature to the log-odds)."""
    logit = params["intercept"]
    parts: dict[str, float] = {}
    for name, mean, scale, coef in zip(
        params["features"], params["mean"], params["scale"], params["coef"], strict=True
    ):
        value = x.get(name, 0.0)
        effect = coef * (value - mean) / (scale or 1.0)
        logit += effect
        if "=" not in name or value:
            parts[name] = effect
    return 1 / (1 + math.exp(-max(min(logit, 50), -50))), parts


def fit(xs: list[dict[str, float]], ys: list[int]) -> dict[str, Any]:
    """Fit the model; its parameters as plain numbers."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    vectorizer = DictVectorizer(sparse=False)
    matrix = vectorizer.fit_transform(xs)
    scaler = StandardScaler().fit(matrix)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(matrix), ys)
    return {
        "features": list(vectorizer.get_feature_names_out()),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }


def auc(ys: list[int], scores: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(ys, scores))


@dataclass
class Sample:
    x: dict[str, float]
    y: int
    closed_at: dt.datetime


def train(samples: list[Sample]) -> dict[str, Any]:
    """What to store: kind, params, AUCs on the held-out most recent deals, a note."""
    won = sum(s.y for s in samples)
    if len(samples) < MIN_DEALS or min(won, len(samples) - won) < MIN_CLASS:
        return {
            "kind": "rules",
            "params": {},
            "auc_ml": None,
            "auc_rules": None,
            "note": f"too little history ({len(samples)} closed deals, {won} won): rules",
        }
    ordered = sorted(samples, key=lambda s: s.closed_at)
    cut = int(len(ordered) * (1 - HOLDOUT))
    head, tail = ordered[:cut], ordered[cut:]
    if len({s.y for s in tail}) < 2 or len({s.y for s in head}) < 2:
        head, tail = ordered[::2] + ordered[1::4], ordered[3::4]
    params = fit([s.x for s in head], [s.y for s in head])
    ys = [s.y for s in tail]
    auc_ml = auc(ys, [ml_contributions(params, s.x)[0] for s in tail])
    auc_rules = auc(ys, [rule_score(s.x) for s in tail])
    kind = "ml" if auc_ml > auc_rules else "rules"
    note = f"model AUC {auc_ml:.3f} vs rules {auc_rules:.3f} on the latest {len(tail)} deals: " + (
        "model kept" if kind == "ml" else "rules kept"
    )
    return {
        "kind": kind,
        "params": fit([s.x for s in ordered], [s.y for s in ordered]),
        "auc_ml": auc_ml,
        "auc_rules": auc_rules,
        "note": note,
    }


async def _facts(session: AsyncSession, contact_ids: list[str]) -> dict[str, ContactFacts]:
    out: dict[str, ContactFacts] = {}
    for i in range(0, len(contact_ids), 500):
        chunk = contact_ids[i : i + 500]
        contacts = (
            await session.execute(
                select(
                    Contact.id,
                    Contact.lifecycle_stage,
                    Contact.lead_source,
                    Contact.emails,
                    Contact.phones,
                    Contact.tags,
                    Contact.created_at,
                    Contact.company_id,
                ).where(Contact.id.in_(chunk))
            )
        ).all()
        company_ids = {c.company_id for c in contacts if c.company_id}
        companies = {
            row.id: row
            for row in (
                await session.execute(
                    select(Company.id, Company.industry, Company.size).where(
                        Company.id.in_(company_ids)
                    )
                )
            ).all()
        }
        acts: dict[str, list[Any]] = defaultdict(list)
        rows = await session.execute(
            select(
                Activity.contact_id,
                Activity.kind,
                Activity.direction,
                Activity.done,
                Activity.occurred_at,
            ).where(Activity.contact_id.in_(chunk))
        )
        for contact_id, kind, direction, done, at in rows:
            acts[contact_id].append((kind, direction, done, at))
        for c in contacts:
            out[c.id] = ContactFacts(c, companies.get(c.company_id), acts[c.id])
    return out


async def samples_of(session: AsyncSession, org_id: str) -> list[Sample]:
    deals = (
        await session.execute(
            select(Deal.id, Deal.status, Deal.amount, Deal.closed_at).where(
                Deal.org_id == org_id,
                Deal.status.in_(("won", "lost")),
                Deal.closed_at.is_not(None),
            )
        )
    ).all()
    first_contact: dict[str, str] = {}
    ids = [d.id for d in deals]
    for i in range(0, len(ids), 500):
        rows = await session.execute(
            select(DealContact.deal_id, DealContact.contact_id)
            .where(DealContact.deal_id.in_(ids[i : i + 500]))
            .order_by(DealContact.contact_id)
        )
        for deal_id, contact_id in rows:
            first_contact.setdefault(deal_id, contact_id)
    facts = await _facts(session, sorted(set(first_contact.values())))
    out = []
    for d in deals:
        contact = facts.get(first_contact.get(d.id, ""))
        if contact is not None:
            x = features(contact, d.closed_at, float(d.amount or 0))
            out.append(Sample(x, int(d.status == "won"), d.closed_at))
    return out


async def train_org(db: Database, org_id: str) -> ScoringModel:
    """Retrain the org's model from its history and store it (replacing the last one)."""
    async with db.read(org_id=org_id) as session:
        samples = await samples_of(session, org_id)
    result = await asyncio.to_thread(train, samples)
    async with db.transaction(org_id=org_id) as session:
        await insert_ignore(
            session, ScoringModel, [{"id": new_id(), "org_id": org_id, "kind": "rules"}]
        )
        model = await session.scalar(select(ScoringModel).where(ScoringModel.org_id == org_id))
        assert model is not None
        model.kind, model.params = result["kind"], result["params"]
        model.auc_ml, model.auc_rules = result["auc_ml"], result["auc_rules"]
        model.samples, model.note, model.trained_at = len(samples), result["note"], utcnow()
    return model


async def score(session: AsyncSession, contact: Contact) -> dict[str, Any]:
    """The contact's score (0-100) and the five features that moved it most."""
    model = await session.scalar(select(ScoringModel).where(ScoringModel.org_id == contact.org_id))
    facts = (await _facts(session, [contact.id]))[contact.id]
    amounts = await session.scalars(
        select(Deal.amount)
        .join(DealContact, DealContact.deal_id == Deal.id)
        .where(DealContact.contact_id == contact.id, Deal.status == "open")
    )
    x = features(facts, utcnow(), float(max(amounts, default=0) or 0))
    if model is not None and model.kind == "ml" and model.params:
        probability, parts = ml_contributions(model.params, x)
        kind = "ml"
    else:
        probability, kind = rule_score(x), "rules"
        parts = {k: v / 100 for k, v in rule_points(x).items() if v}
    top = sorted(parts.items(), key=lambda kv: abs(kv[1]), reverse=True)[:5]
    return {
        "contact_id": contact.id,
        "score": round(probability * 100),
        "model": kind,
        "factors": [
            {
                "feature": name,
                "value": x.get(name, 1.0 if "=" in name else 0.0),
                "effect": round(effect, 4),
            }
            for name, effect in top
        ],
    }
