"""The owner rules with real IDaaS tokens: a role bound with `resource.owner_id == user.id`
arrives as conditional grants in the access token, and the CRM honours them."""

from __future__ import annotations

import httpx

from nexus.kernel.http import create_app
from nexus.services.crm import service as crm_service
from nexus.services.idaas import service as idaas_service
from nexus.services.idaas.bootstrap import create_org_with_owner
from tests.conftest import RuntimeFactory

PASSWORD = "correct-horse-battery-staple"


async def test_reps_bound_with_an_owner_condition_see_their_own_deals(
    make_runtime: RuntimeFactory, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.jwt_issuer = "http://nexus.test"
    runtime = await make_runtime([idaas_service, crm_service])
    await idaas_service.on_startup[0](runtime)  # IDaaS's own signing keys, not the test issuer
    made = await create_org_with_owner(
        runtime.db("idaas"),
        org_name="Acme",
        email="owner@acme.example.com",
        password=PASSWORD,
        name="Owner",
    )
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://nexus.test") as c:

        async def login(email: str) -> dict[str, str]:
            response = await c.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        owner = await login(made.owner.email)
        role = await c.post(
            "/api/v1/roles",
            json={"name": "sales-rep", "permissions": ["crm:contact:*", "crm:deal:*"]},
            headers=owner,
        )
        assert role.status_code == 201, role.text
        reps = {}
        for name in ("ann", "bob"):
            user = await c.post(
                "/api/v1/users",
                json={"email": f"{name}@acme.example.com", "password": PASSWORD, "roles": []},
                headers=owner,
            )
            assert user.status_code == 201, user.text
            bound = await c.post(
                "/api/v1/role-bindings",
                json={
                    "role": "sales-rep",
                    "user_id": user.json()["id"],
                    "conditions": ["resource.owner_id == user.id"],
                },
                headers=owner,
            )
            assert bound.status_code == 201, bound.text
            reps[name] = (user.json()["id"], await login(f"{name}@acme.example.com"))

        ann_id, ann = reps["ann"]
        _, bob = reps["bob"]
        deal = await c.post("/api/v1/crm/deals", json={"name": "Ann's deal"}, headers=ann)
        assert deal.status_code == 201, deal.text
        assert deal.json()["owner_id"] == ann_id
        assert (
            await c.get(f"/api/v1/crm/deals/{deal.json()['id']}", headers=bob)
        ).status_code == 404
        assert (await c.get("/api/v1/crm/deals", headers=bob)).json()["items"] == []
        moved = await c.patch(
            f"/api/v1/crm/deals/{deal.json()['id']}", json={"amount": "5"}, headers=bob
        )
        assert moved.status_code == 404
        listed = (await c.get("/api/v1/crm/deals", headers=owner)).json()["items"]
        assert [d["name"] for d in listed] == ["Ann's deal"]  # the owner role: every deal
        no_company_rights = await c.get("/api/v1/crm/companies", headers=ann)
        assert no_company_rights.status_code == 403
