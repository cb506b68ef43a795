"""CRM settings (`NEXUS_CRM_*`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CrmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_CRM_", extra="ignore")

    default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="Region of phone numbers written without a country code; else they need +.",
    )
    scoring_interval_s: float = Field(
        86_400, ge=60, description="How often every org's lead-scoring model is retrained."
    )


@lru_cache(maxsize=1)
def get_crm_settings() -> CrmSettings:
    return CrmSettings()
