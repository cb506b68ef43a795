"""IDaaS settings (`NEXUS_IDAAS_*`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IdaasSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_IDAAS_", extra="ignore")

    access_token_ttl_s: int = Field(900, ge=60, le=86_400)
    refresh_token_ttl_s: int = Field(30 * 86_400, ge=300)
    session_ttl_s: int = Field(30 * 86_400, ge=300)
    mfa_challenge_ttl_s: int = Field(300, ge=30, le=3600)
    mfa_max_attempts: int = Field(5, ge=1)
    # Brute force: after `backoff_after` failures each attempt must wait 2**(n - backoff_after)
    # seconds; after `lock_after` failures the account or address is locked for `lock_s`.
    backoff_after: int = Field(3, ge=1)
    lock_after: int = Field(10, ge=2)
    lock_s: int = Field(900, ge=1)
    failure_window_s: int = Field(3600, ge=60)
    login_rate_per_minute: int = Field(30, ge=1)
    token_rate_per_minute: int = Field(600, ge=1)


@lru_cache(maxsize=1)
def get_idaas_settings() -> IdaasSettings:
    return IdaasSettings()
