"""VAS settings (`NEXUS_VAS_*`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class VasSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_VAS_", extra="ignore")

    public_url: str | None = Field(
        None, description="Base URL providers reach us at (callbacks); default: NEXUS_PUBLIC_URL."
    )
    default_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    send_timeout_s: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(8, ge=1, le=50)
    dispatch_concurrency: int = Field(64, ge=1, le=1000)
    dispatch_lease_s: float = Field(
        30.0, gt=0, description="How long a worker owns a message before another may take it over."
    )
    max_bulk: int = Field(1000, ge=1, le=10_000)
    sandbox_for_new_orgs: bool = Field(
        True,
        description="Give every new org a sandbox provider on each channel (embedded default).",
    )
    health_interval_s: float = Field(60.0, gt=0, description="Provider health probes.")
    circuit_failure_streak: int = Field(5, ge=1)
    circuit_cooldown_s: float = Field(10.0, gt=0)
    reconcile_enabled: bool = Field(
        True, description="Ask providers about messages whose delivery report never came."
    )
    reconcile_after_s: float = Field(
        600.0, gt=0, description="A message `sent` this long without a report is looked up."
    )
    reconcile_max_age_s: float = Field(
        72 * 3600.0, gt=0, description="Messages sent longer ago are no longer looked up."
    )
    reconcile_interval_s: float = Field(60.0, ge=5, le=3600, description="Between two runs.")
    reconcile_rate_per_s: int = Field(
        5, ge=1, le=1000, description="Status lookups a second, per provider account."
    )
    reconcile_budget_s: float = Field(
        300.0, gt=0, description="A run stops looking up after this long (the next goes on)."
    )
    stop_keywords: list[str] = Field(
        default_factory=lambda: ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET"]
    )
    start_keywords: list[str] = Field(default_factory=lambda: ["START", "UNSTOP"])


MAX_BODY = {"sms": 1600, "whatsapp": 4096, "telegram": 4096, "messenger": 2000, "email": 100_000}


@lru_cache(maxsize=1)
def get_vas_settings() -> VasSettings:
    return VasSettings()
