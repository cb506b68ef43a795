"""IDaaS: organizations, users, roles, login with MFA, tokens, API keys, OIDC, audit."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from nexus.kernel.auth import TokenVerifier
from nexus.kernel.runtime import Runtime
from nexus.kernel.service import Service
from nexus.services.idaas import routes
from nexus.services.idaas.apikeys import ApiKeyAuthenticator
from nexus.services.idaas.cli import cli, init
from nexus.services.idaas.deps import Idaas, refuse_foreign_org
from nexus.services.idaas.keys import KeyStore, LocalKeys
from nexus.services.idaas.models import Base
from nexus.services.idaas.settings import get_idaas_settings
from nexus.services.idaas.tokens import TokenIssuer

PERMISSIONS = {
    "idaas:org:read": "See the org and its child orgs.",
    "idaas:org:manage": "Create and change child orgs; act in them.",
    "idaas:user:read": "List and see users.",
    "idaas:user:manage": "Create, change, suspend and deactivate users.",
    "idaas:group:read": "List and see groups and their members.",
    "idaas:group:manage": "Create and delete groups, change their members.",
    "idaas:role:read": "See roles and role bindings; explain decisions for others.",
    "idaas:role:manage": "Create custom roles; grant and revoke roles.",
    "idaas:apikey:manage": "List, create and revoke API keys.",
    "idaas:client:manage": "List, create and revoke OAuth clients.",
    "idaas:audit:review": "Read the audit log.",
}

router = APIRouter(dependencies=[Depends(refuse_foreign_org)])
for module in routes.API:
    router.include_router(module.router)

public_router = APIRouter()
for module in routes.PUBLIC:
    public_router.include_router(module.router)


async def _start(runtime: Runtime) -> None:
    settings = runtime.settings
    db = runtime.db("idaas")
    keys = KeyStore(db, settings.secret())
    await keys.refresh()
    idaas = get_idaas_settings()
    runtime.state["idaas"] = Idaas(
        runtime=runtime,
        db=db,
        keys=keys,
        issuer=TokenIssuer(keys, settings, idaas),
        settings=settings,
        idaas=idaas,
    )
    runtime.authenticator.verifier = TokenVerifier(
        LocalKeys(keys), issuer=settings.issuer(), audience=settings.jwt_audience
    )
    api_keys = ApiKeyAuthenticator(db)
    runtime.state["idaas_apikeys"] = api_keys
    runtime.authenticator.add_strategy(api_keys)


service = Service(
    name="idaas",
    router=router,
    public_router=public_router,
    metadata=Base.metadata,
    migrations="nexus.services.idaas.migrations",
    permissions=PERMISSIONS,
    cli=cli,
    commands=[init],
    on_startup=[_start],
)
