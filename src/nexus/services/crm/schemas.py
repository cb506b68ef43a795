"""Request and response bodies of the CRM API."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LifecycleStage = Literal[
    "subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other"
]
ActivityKind = Literal["call", "meeting", "email", "message", "note", "task"]
ObjectType = Literal["contact", "company", "deal"]
FieldType = Literal["text", "number", "date", "select", "multi_select", "boolean"]
Id = Field(min_length=1, max_length=36)
Custom = Field(default=None, description="Custom field values by key (see /custom-fields).")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- companies -------------------------------------------------------------------------------
class CompanyIn(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    domain: str | None = Field(None, max_length=253, examples=["acme.com"])
    industry: str | None = Field(None, max_length=100)
    size: int | None = Field(None, ge=0, le=10_000_000, description="Employees.")
    owner_id: str | None = Field(None, max_length=36, description="Default: the caller.")
    custom: dict[str, Any] | None = Custom


class CompanyPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=300)
    domain: str | None = Field(None, max_length=253)
    industry: str | None = Field(None, max_length=100)
    size: int | None = Field(None, ge=0, le=10_000_000)
    owner_id: str | None = Field(None, min_length=1, max_length=36)
    custom: dict[str, Any] | None = None


class CompanyOut(_Out):
    id: str
    name: str
    domain: str | None
    industry: str | None
    size: int | None
    owner_id: str
    custom: dict[str, Any]
    merged_into_id: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class CompanyDuplicateOut(BaseModel):
    company: CompanyOut
    reasons: list[str]


# -- contacts --------------------------------------------------------------------------------
class ContactIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "emails": ["ada@example.com"],
                    "phones": ["+14155550123"],
                    "lifecycle_stage": "lead",
                }
            ]
        }
    )

    first_name: str | None = Field(None, max_length=150)
    last_name: str | None = Field(None, max_length=150)
    emails: list[str] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(default_factory=list, max_length=20)
    company_id: str | None = Field(None, max_length=36)
    owner_id: str | None = Field(None, max_length=36, description="Default: the caller.")
    lifecycle_stage: LifecycleStage = "lead"
    lead_source: str | None = Field(None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    custom: dict[str, Any] | None = Custom
    consent: dict[str, Any] = Field(default_factory=dict)
    region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Region of national phone numbers."
    )

    @model_validator(mode="after")
    def _someone(self) -> ContactIn:
        if not (self.first_name or self.last_name or self.emails or self.phones):
            raise ValueError("give a name, an e-mail or a phone")
        return self


class ContactPatch(BaseModel):
    first_name: str | None = Field(None, max_length=150)
    last_name: str | None = Field(None, max_length=150)
    emails: list[str] | None = Field(None, max_length=20)
    phones: list[str] | None = Field(None, max_length=20)
    company_id: str | None = Field(None, max_length=36)
    owner_id: str | None = Field(None, min_length=1, max_length=36)
    lifecycle_stage: LifecycleStage | None = None
    lead_source: str | None = Field(None, max_length=100)
    tags: list[str] | None = Field(None, max_length=50)
    custom: dict[str, Any] | None = None
    consent: dict[str, Any] | None = None
    region: str | None = Field(None, pattern=r"^[A-Z]{2}$")


class ContactOut(_Out):
    id: str
    name: str
    first_name: str | None
    last_name: str | None
    emails: list[str]
    phones: list[str]
    company_id: str | None
    owner_id: str
    lifecycle_stage: str
    lead_source: str | None
    tags: list[str]
    custom: dict[str, Any]
    consent: dict[str, Any]
    merged_into_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class MergeIn(BaseModel):
    other_id: str = Field(min_length=1, max_length=36, description="Merged into this contact.")


class DuplicateOut(BaseModel):
    contact: ContactOut
    reasons: list[str]


# -- pipelines -------------------------------------------------------------------------------
class StageIn(BaseModel):
    id: str | None = Field(None, max_length=36, description="Keep an existing stage (by id).")
    name: str = Field(min_length=1, max_length=200)
    probability: float = Field(ge=0, le=1)


class PipelineIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    stages: list[StageIn] = Field(min_length=1, max_length=50)
    is_default: bool = False


class PipelinePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    stages: list[StageIn] | None = Field(None, min_length=1, max_length=50)
    is_default: bool | None = None


class StageOut(_Out):
    id: str
    name: str
    position: int
    probability: float


class PipelineOut(BaseModel):
    id: str
    name: str
    is_default: bool
    stages: list[StageOut]


# -- deals -----------------------------------------------------------------------------------
class DealIn(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    amount: Decimal = Field(Decimal(0), ge=0, le=Decimal("1e15"), decimal_places=2)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    pipeline_id: str | None = Field(None, max_length=36, description="Default: the default one.")
    stage_id: str | None = Field(None, max_length=36, description="Default: the first stage.")
    probability: float | None = Field(None, ge=0, le=1, description="Default: the stage's.")
    expected_close: dt.date | None = None
    owner_id: str | None = Field(None, max_length=36)
    company_id: str | None = Field(None, max_length=36)
    contact_ids: list[str] = Field(default_factory=list, max_length=50)
    custom: dict[str, Any] | None = Custom


class DealPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=300)
    amount: Decimal | None = Field(None, ge=0, le=Decimal("1e15"), decimal_places=2)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    stage_id: str | None = Field(None, max_length=36, description="Move the deal (recorded).")
    probability: float | None = Field(None, ge=0, le=1)
    clear_probability: bool = Field(False, description="Back to the stage's probability.")
    expected_close: dt.date | None = None
    owner_id: str | None = Field(None, min_length=1, max_length=36)
    company_id: str | None = Field(None, max_length=36)
    contact_ids: list[str] | None = Field(None, max_length=50)
    status: Literal["open", "won", "lost"] | None = None
    lost_reason: str | None = Field(None, max_length=500)
    custom: dict[str, Any] | None = None


class DealOut(_Out):
    id: str
    name: str
    amount: Decimal
    currency: str
    pipeline_id: str
    stage_id: str
    probability: float
    probability_override: float | None
    expected_close: dt.date | None
    owner_id: str
    company_id: str | None
    contact_ids: list[str] = Field(default_factory=list)
    status: str
    lost_reason: str | None
    closed_at: dt.datetime | None
    custom: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


class StageChangeOut(_Out):
    id: str
    from_stage_id: str | None
    to_stage_id: str
    from_status: str | None
    to_status: str
    changed_by: str | None
    at: dt.datetime


class BoardStage(BaseModel):
    stage: StageOut
    count: int
    amount: dict[str, Decimal] = Field(description="Sum of open deal amounts per currency.")
    weighted: dict[str, Decimal]
    deals: list[DealOut]
    next_cursor: str | None = Field(
        None, description="More deals of this stage: GET /deals?stage_id=…&cursor=…"
    )


class BoardOut(BaseModel):
    pipeline: PipelineOut
    stages: list[BoardStage]


# -- activities ------------------------------------------------------------------------------
class ActivityIn(BaseModel):
    kind: ActivityKind
    subject: str | None = Field(None, max_length=300)
    body: str | None = Field(None, max_length=100_000)
    contact_id: str | None = Field(None, max_length=36)
    company_id: str | None = Field(None, max_length=36)
    deal_id: str | None = Field(None, max_length=36)
    assignee_id: str | None = Field(None, max_length=36, description="Tasks: who does it.")
    due_at: dt.datetime | None = None
    done: bool = False
    occurred_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _attached(self) -> ActivityIn:
        if not (self.contact_id or self.company_id or self.deal_id):
            raise ValueError("attach the activity to a contact, a company or a deal")
        return self


class ActivityPatch(BaseModel):
    subject: str | None = Field(None, max_length=300)
    body: str | None = Field(None, max_length=100_000)
    assignee_id: str | None = Field(None, max_length=36)
    due_at: dt.datetime | None = None
    done: bool | None = None


class ActivityOut(_Out):
    id: str
    kind: str
    subject: str | None
    body: str | None
    contact_id: str | None
    company_id: str | None
    deal_id: str | None
    owner_id: str | None
    assignee_id: str | None
    due_at: dt.datetime | None
    done: bool
    done_at: dt.datetime | None
    occurred_at: dt.datetime
    direction: str | None
    channel: str | None
    external_id: str | None
    status: str | None
    data: dict[str, Any]
    created_at: dt.datetime


class MessageIn(BaseModel):
    channel: Literal["sms", "whatsapp", "email"] = "sms"
    body: str = Field(min_length=1, max_length=100_000)
    subject: str | None = Field(None, max_length=300, description="E-mail subject.")
    to: str | None = Field(
        None, max_length=320, description="Default: the contact's first phone (or e-mail)."
    )
    deal_id: str | None = Field(None, max_length=36, description="Also on this deal's timeline.")


class MessageSentOut(BaseModel):
    activity: ActivityOut
    message: dict[str, Any] = Field(description="The message as VAS accepted it.")


# -- custom fields ---------------------------------------------------------------------------
class CustomFieldIn(BaseModel):
    object_type: ObjectType
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    label: str = Field(min_length=1, max_length=200)
    type: FieldType
    options: list[str] = Field(default_factory=list, max_length=500)
    required: bool = False

    @model_validator(mode="after")
    def _options(self) -> CustomFieldIn:
        if self.type in ("select", "multi_select") and not self.options:
            raise ValueError("select fields need options")
        if self.type not in ("select", "multi_select") and self.options:
            raise ValueError("only select fields have options")
        if any(not o or len(o) > 200 or ";" in o for o in self.options):
            raise ValueError("options are 1-200 characters, without ';'")
        return self


class CustomFieldPatch(BaseModel):
    label: str | None = Field(None, min_length=1, max_length=200)
    options: list[str] | None = Field(None, max_length=500)
    required: bool | None = None


class CustomFieldOut(_Out):
    id: str
    object_type: str
    key: str
    label: str
    type: str
    options: list[str]
    required: bool


# -- search, scoring, forecast ---------------------------------------------------------------
class SearchHit(BaseModel):
    type: str
    id: str
    title: str
    subtitle: str | None
    owner_id: str | None


class SearchOut(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None
    match: Literal["prefix", "fuzzy"]


class Factor(BaseModel):
    feature: str
    value: float
    effect: float = Field(description="Contribution to the score (log-odds, + raises it).")


class ScoreOut(BaseModel):
    contact_id: str
    score: int = Field(ge=0, le=100)
    model: Literal["ml", "rules"]
    factors: list[Factor]


class ScoringModelOut(_Out):
    kind: str
    samples: int
    auc_ml: float | None
    auc_rules: float | None
    trained_at: dt.datetime
    note: str | None


class ForecastRow(BaseModel):
    period: str = Field(description="YYYY-MM, YYYY-Qn, or unscheduled (open, no close date).")
    owner_id: str
    currency: str
    open_deals: int
    pipeline: Decimal
    weighted: Decimal
    won: Decimal
    committed: Decimal
    best_case: Decimal


class ForecastTotals(BaseModel):
    pipeline: Decimal = Decimal(0)
    weighted: Decimal = Decimal(0)
    won: Decimal = Decimal(0)
    committed: Decimal = Decimal(0)
    best_case: Decimal = Decimal(0)


class StageDays(BaseModel):
    stage_id: str
    stage: str | None
    deals: int = Field(description="Deals that left this stage.")
    avg_days: float


class ForecastOut(BaseModel):
    grain: Literal["month", "quarter"]
    from_: dt.date = Field(alias="from")
    to: dt.date
    rows: list[ForecastRow]
    totals: dict[str, ForecastTotals] = Field(description="Per currency.")
    won_deals: int
    lost_deals: int
    win_rate: float | None = Field(description="Won / (won + lost) of the deals closed.")
    stage_days: list[StageDays] = Field(
        description="Mean days the deals stayed in each stage before moving on."
    )
    avg_cycle_days: float | None = Field(
        description="Mean days from a won deal's first stage-history entry to its win."
    )
