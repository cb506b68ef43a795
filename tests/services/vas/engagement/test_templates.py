"""Templates: sandboxed Jinja2 (injection refused), typed variables, preview with SMS
encoding, segments and cost, WhatsApp template mapping, render failures."""

from __future__ import annotations

import pytest

from tests.services.vas.conftest import VasEnv
from tests.services.vas.engagement.conftest import template

API = "/api/v1/templates"

INJECTIONS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ ''['__class__'] }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ contact.name.__class__ }}",
    "{{ config }}",
    "{{ request.application }}",
    "{% include '/etc/passwd' %}",
    "{% import 'x' as y %}{{ y }}",
    "{% extends 'base' %}",
    "{{ 'a' * 100000000 }}",
    "{{ 10 ** 1000000 }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ ('_' ~ '_class_' ~ '_') }}{{ ''|attr(('_' ~ '_class_' ~ '_')) }}",
    "{% for x in range(1000000000) %}{% endfor %}",
    "{{ unclosed",
]


@pytest.mark.parametrize("source", INJECTIONS)
async def test_template_injection_is_refused(vas: VasEnv, source: str) -> None:
    response = await vas.client.post(
        API, json={"name": "evil", "channel": "sms", "body": source}, headers=vas.headers
    )
    assert response.status_code == 422, (source, response.text)
    assert response.json()["type"].endswith("/invalid-template")
    listed = await vas.client.get(API, headers=vas.headers)
    assert listed.json()["items"] == []


async def test_values_are_data_never_template_code(sms: VasEnv) -> None:
    t = await template(sms, body="Code: {{ code }}", variables=[{"name": "code"}])
    preview = await sms.client.post(
        f"{API}/{t['id']}/preview",
        json={"variables": {"code": "{{ ''.__class__ }}"}},
        headers=sms.headers,
    )
    assert preview.json()["body"] == "Code: {{ ''.__class__ }}"


async def test_preview_reports_encoding_segments_and_cost(sms: VasEnv) -> None:
    t = await template(
        sms,
        body="Hi {{ contact.first_name }}, {{ n }} points {{ '🎉' if vip else '' }}{{ filler }}",
        variables=[
            {"name": "n", "type": "integer"},
            {"name": "vip", "type": "boolean", "required": False, "default": False},
            {"name": "filler", "required": False},
        ],
    )
    contact = await sms.client.post(
        "/api/v1/contacts",
        json={"name": "Ada Lovelace", "addresses": {"sms": "+14155550100"}},
        headers=sms.headers,
    )
    url = f"{API}/{t['id']}/preview"
    gsm = await sms.client.post(
        url,
        json={"variables": {"n": "12"}, "contact_id": contact.json()["id"]},
        headers=sms.headers,
    )
    body = gsm.json()
    assert body["ok"], body
    assert body["body"] == "Hi Ada, 12 points "
    assert (body["encoding"], body["segments"]) == ("GSM-7", 1)
    assert float(body["estimated_cost"]) == pytest.approx(0.01)

    long = await sms.client.post(
        url, json={"variables": {"n": 1, "vip": "yes", "filler": "x" * 80}}, headers=sms.headers
    )
    body = long.json()
    assert body["encoding"] == "UCS-2"
    assert body["segments"] == 2
    assert len(body["parts"]) == 2
    assert float(body["estimated_cost"]) == pytest.approx(0.02)

    for variables, reason in (
        ({}, "'n' has no value"),
        ({"n": "twelve"}, "not a valid integer"),
        ({"n": 1, "vip": "perhaps"}, "not a valid boolean"),
    ):
        failed = (
            await sms.client.post(url, json={"variables": variables}, headers=sms.headers)
        ).json()
        assert not failed["ok"]
        assert reason in failed["error"]
        assert failed["body"] is None  # never half-rendered


async def test_whatsapp_template_mapping(vas: VasEnv) -> None:
    t = await template(
        vas,
        name="order",
        channel="whatsapp",
        body="",
        variables=[{"name": "order_id"}],
        provider_template={
            "name": "order_update",
            "language": "pt_BR",
            "parameters": ["contact.name", "order_id"],
        },
    )
    preview = await vas.client.post(
        f"{API}/{t['id']}/preview", json={"variables": {"order_id": "A-17"}}, headers=vas.headers
    )
    assert preview.json()["provider_template"] == {
        "name": "order_update",
        "language": "pt_BR",
        "variables": ["None", "A-17"],
    }
    bad = await vas.client.post(
        API,
        json={
            "name": "x",
            "channel": "sms",
            "body": "hi",
            "provider_template": {"name": "y", "parameters": []},
        },
        headers=vas.headers,
    )
    assert bad.status_code == 422


async def test_crud_and_isolation(vas: VasEnv) -> None:
    t = await template(vas, name="one", body="Hello")
    dup = await vas.client.post(
        API, json={"name": "one", "channel": "sms", "body": "x"}, headers=vas.headers
    )
    assert dup.status_code == 409
    patched = await vas.client.patch(
        f"{API}/{t['id']}",
        json={"body": "Hello {{ who }}", "variables": [{"name": "who"}]},
        headers=vas.headers,
    )
    assert patched.status_code == 200, patched.text
    bad = await vas.client.patch(
        f"{API}/{t['id']}", json={"body": "{{ x.__class__ }}"}, headers=vas.headers
    )
    assert bad.status_code == 422
    assert (await vas.client.get(f"{API}/{t['id']}", headers=vas.headers)).json()[
        "body"
    ] == "Hello {{ who }}"
    other = vas.headers_for("org-b")
    assert (await vas.client.get(f"{API}/{t['id']}", headers=other)).status_code == 404
    assert (
        await vas.client.post(f"{API}/{t['id']}/preview", json={}, headers=other)
    ).status_code == 404
    assert (await vas.client.delete(f"{API}/{t['id']}", headers=other)).status_code == 404
    assert (await vas.client.delete(f"{API}/{t['id']}", headers=vas.headers)).status_code == 204
