"""Public keys at the root: /.well-known/jwks.json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from nexus.services.idaas.deps import Idaas, get_idaas

router = APIRouter(tags=["oidc"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify Nexus tokens")
async def jwks(response: Response, idaas: Idaas = Depends(get_idaas)) -> dict[str, Any]:
    response.headers["cache-control"] = "public, max-age=300"
    return await idaas.keys.jwks()
