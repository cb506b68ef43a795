"""IDaaS HTTP routes: API under /api/v1 and public paths at the root."""

from nexus.services.idaas.oidc import routes as oidc
from nexus.services.idaas.routes import (
    apikeys,
    audit,
    auth,
    groups,
    me,
    oauth_clients,
    orgs,
    roles,
    users,
    wellknown,
)

API = (auth, me, orgs, users, groups, roles, apikeys, audit, oauth_clients)
PUBLIC = (wellknown, oidc)
