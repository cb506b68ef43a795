"""Configuration: `NEXUS_*` environment variables, an optional `nexus.toml`, and defaults.

Precedence (highest first): keyword arguments, environment, `nexus.toml`, defaults.
Per-service overrides follow the pattern `NEXUS_<SERVICE>_DATABASE_URL` and
`NEXUS_<SERVICE>_URL` (where a remote service answers over HTTP).
"""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_SERVICE_ENV = re.compile(r"^NEXUS_([A-Z][A-Z0-9_]*?)_(DATABASE_URL|URL)$")


def _toml_path() -> Path:
    return Path(os.environ.get("NEXUS_CONFIG", "nexus.toml"))


class Settings(BaseSettings):
    """The effective configuration of one Nexus process."""

    model_config = SettingsConfigDict(
        env_prefix="NEXUS_", extra="ignore", validate_default=True, frozen=False
    )

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = None

    database_url: str | None = None
    service_database_urls: dict[str, str] = Field(default_factory=dict)
    service_urls: dict[str, str] = Field(default_factory=dict)
    bus_url: str = "memory://"
    bus_namespace: str = Field("nexus", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    redis_url: str | None = None

    jwt_audience: str = "nexus"
    jwt_issuer: str | None = None
    jwks_url: str | None = None

    services: Annotated[list[str], NoDecode] = Field(default_factory=list)
    plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    secret_key: SecretStr | None = None

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    shutdown_timeout_s: float = Field(5.0, ge=0)
    db_pool_size: int = Field(10, ge=1)
    run_workers: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, env_settings, toml, file_secret_settings)

    @field_validator("services", "plugins", "cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _per_service_env(self) -> Settings:
        """`NEXUS_<SERVICE>_DATABASE_URL` / `NEXUS_<SERVICE>_URL` (environment wins)."""
        own = {name.upper() for name in type(self).model_fields}
        for key, value in os.environ.items():
            match = _SERVICE_ENV.match(key)
            if not match or key.removeprefix("NEXUS_") in own:
                continue
            target = self.service_database_urls if match[2] == "DATABASE_URL" else self.service_urls
            target[match[1].lower()] = value
        return self

    # -- derived values ---------------------------------------------------------------
    def default_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'nexus.db').resolve()}"

    def issuer(self) -> str:
        """The `iss` of tokens this installation issues and accepts."""
        issuer = self.jwt_issuer or self.public_url or self.service_urls.get("idaas")
        return (issuer or f"http://{self.host}:{self.port}").rstrip("/")

    def database_url_for(self, service: str) -> str:
        return self.service_database_urls.get(service) or self.default_database_url()

    def secret(self) -> str:
        """The process secret: given, or generated once into the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        value = path.read_text().strip()
        self.secret_key = SecretStr(value)
        return value

    def masked(self) -> dict[str, Any]:
        """The configuration as plain data, with secrets and URL passwords masked."""
        data = self.model_dump(mode="json")
        data["secret_key"] = (
            "********" if self.secret_key or (self.data_dir / "secret_key").exists() else None
        )
        data["database_url"] = self.default_database_url()
        for field in ("database_url", "bus_url", "redis_url"):
            data[field] = mask_url(data[field])
        for mapping in ("service_database_urls", "service_urls"):
            data[mapping] = {k: mask_url(v) for k, v in data[mapping].items()}
        return data


def mask_url(url: str | None) -> str | None:
    """Hide the password of a URL such as postgresql://user:pw@host/db."""
    if not url:
        return url
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1********@", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
