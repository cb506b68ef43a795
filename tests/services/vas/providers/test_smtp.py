"""SMTP adapter against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import socket

import httpx
import pytest

from nexus.services.vas.providers.base import OutboundMessage, ProviderError, WebhookRequest
from nexus.services.vas.providers.smtp import Adapter
from nexus.testing.fakes.smtp import SmtpFake
from tests.services.vas.providers.conftest import config

SENDER = "Nexus <noreply@nexus.test>"


@pytest.fixture
async def server():
    async with SmtpFake(max_hang_s=2) as fake:
        yield fake


def adapter(
    server: SmtpFake,
    http: httpx.AsyncClient,
    credentials: dict[str, str] | None = None,
    **options: object,
) -> Adapter:
    return Adapter(
        config(
            "smtp",
            "email",
            server.credentials if credentials is None else credentials,
            server.base_url,
            sender=SENDER,
            options={"timeout_s": 1, **options},
        ),
        http,
    )


def mail(to: str = "ada@example.com", **kw: object) -> OutboundMessage:
    values: dict[str, object] = {
        "id": "msg_1",
        "channel": "email",
        "to": to,
        "subject": "Your invoice",
        "body": "Hello Ada",
    }
    values.update(kw)
    return OutboundMessage(**values)  # type: ignore[arg-type]


async def test_mail_delivered(server: SmtpFake, http: httpx.AsyncClient):
    result = await adapter(server, http).send(
        mail(metadata={"html": "<p>Hello</p>", "reply_to": "help@nexus.test"})
    )
    assert result.status == "sent"
    assert result.provider_message_id
    assert result.provider_message_id.endswith("@nexus.test")
    assert "queued as" in result.raw["reply"]
    [received] = server.messages
    assert received.mail_from == "noreply@nexus.test"
    assert received.rcpt_tos == ["ada@example.com"]
    message = received.message
    assert message["Subject"] == "Your invoice"
    assert message["From"] == SENDER
    assert message["Reply-To"] == "help@nexus.test"
    assert message["X-Nexus-Message-Id"] == "msg_1"
    assert message["Message-ID"].strip("<>") == result.provider_message_id
    assert message.get_body(("plain",)).get_content().strip() == "Hello Ada"  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content().strip() == "<p>Hello</p>"  # type: ignore[union-attr]
    assert server.counters["auth_ok"] == 1


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("451", True), ("452", True), ("421", True), ("550", False), ("554", False)],
)
@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_4xx_retryable_5xx_permanent(
    server: SmtpFake, http: httpx.AsyncClient, code: str, retryable: bool, stage: str
):
    server.configure(error_code=code, error_times=1, error_stage=stage)
    with pytest.raises(ProviderError) as caught:
        await adapter(server, http).send(mail())
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert server.messages == type(server.messages)()  # nothing accepted
    await adapter(server, http).send(mail())  # the next one goes through
    assert len(server.messages) == 1


async def test_unknown_recipient_and_bad_credentials(server: SmtpFake, http: httpx.AsyncClient):
    with pytest.raises(ProviderError) as caught:
        await adapter(server, http).send(mail(to="nobody0000@example.com"))
    assert (caught.value.code, caught.value.retryable) == ("550", False)
    bad = adapter(server, http, {"username": "nexus", "password": "wrong"})
    with pytest.raises(ProviderError) as caught:
        await bad.send(mail())
    assert (caught.value.code, caught.value.retryable) == ("535", False)
    health = await bad.health()
    assert not health.ok
    assert "535" in health.detail
    assert "wrong" not in health.detail
    anonymous = adapter(server, http, {})
    with pytest.raises(ProviderError) as caught:
        await anonymous.send(mail())
    assert caught.value.code == "530"  # authentication required
    assert not caught.value.retryable


async def test_header_injection_refused(server: SmtpFake, http: httpx.AsyncClient):
    with pytest.raises(ProviderError) as caught:
        await adapter(server, http).send(mail(subject="Hi\r\nBcc: victim@example.com"))
    assert (caught.value.code, caught.value.retryable) == ("invalid_header", False)
    assert not server.messages


async def test_no_sender(server: SmtpFake, http: httpx.AsyncClient):
    a = Adapter(config("smtp", "email", {}, server.base_url), http)
    with pytest.raises(ProviderError) as caught:
        await a.send(mail())
    assert caught.value.code == "no_sender"


async def test_health_and_outages(server: SmtpFake, http: httpx.AsyncClient):
    a = adapter(server, http, timeout_s=0.3)
    health = await a.health()
    assert health.ok
    assert health.detail == "NOOP 250"
    await server.set_outage("error")
    assert not (await a.health()).ok
    with pytest.raises(ProviderError) as caught:
        await a.send(mail())
    assert (caught.value.code, caught.value.retryable) == ("421", True)
    await server.set_outage("hang")
    with pytest.raises(ProviderError) as caught:
        await a.send(mail())
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)
    await server.set_outage("refuse")
    with pytest.raises(ProviderError) as caught:
        await a.send(mail())
    assert caught.value.retryable
    assert caught.value.code in {"connect_error", "connection"}
    assert not (await a.health()).ok
    await server.set_outage(None)
    assert (await a.health()).ok
    assert (await a.send(mail())).status == "sent"


async def test_unreachable_port(http: httpx.AsyncClient):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    a = Adapter(
        config(
            "smtp",
            "email",
            {},
            f"smtp://127.0.0.1:{port}",
            sender=SENDER,
            options={"timeout_s": 0.5},
        ),
        http,
    )
    with pytest.raises(ProviderError) as caught:
        await a.send(mail())
    assert caught.value.retryable
    health = await a.health()
    assert not health.ok


def test_no_webhooks(http: httpx.AsyncClient):
    a = Adapter(config("smtp", "email", {}, None), http)
    hook = WebhookRequest("POST", "http://x", {}, b"x")
    assert not a.verify_webhook(hook)
    assert a.parse_webhook(hook) == []
