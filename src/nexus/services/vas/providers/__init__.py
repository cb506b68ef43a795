"""Provider adapters, one module each, found by their `type`."""

from __future__ import annotations

from importlib import import_module

from nexus.services.vas.providers.base import ProviderAdapter

# type -> module; each module defines `Adapter`.
ADAPTERS: dict[str, str] = {
    "sandbox": "nexus.services.vas.providers.sandbox",
}


def adapter_class(provider_type: str) -> type[ProviderAdapter]:
    if provider_type not in ADAPTERS:
        raise LookupError(f"unknown provider type {provider_type!r}")
    return import_module(ADAPTERS[provider_type]).Adapter  # type: ignore[no-any-return]
