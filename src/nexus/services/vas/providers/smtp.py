"""E-mail over SMTP (any server), with aiosmtplib.

`base_url`: `smtp://host:port` (STARTTLS when the server offers it), or `smtps://host:port`
(implicit TLS). Credentials (optional): `username`, `password` (AUTH PLAIN/LOGIN).
Options: `starttls` (`auto` default, `require`, `off`), `validate_certs` (true),
`timeout_s` (30), `local_hostname`. From is `config.sender` (the message's sender
only when the account has none).

A 2xx after DATA is `sent` (no delivery receipts; bounces come later by IMAP/webhook);
4xx answers are retryable, 5xx permanent. `provider_message_id` is the Message-ID.
`metadata`: `html` (an HTML alternative), `reply_to`, `headers` (extra X- headers).
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib

from nexus.services.vas.providers import elapsed_ms
from nexus.services.vas.providers.base import (
    Health,
    OutboundMessage,
    ProviderAdapter,
    ProviderError,
    SendResult,
    WebhookItem,
    WebhookRequest,
)

STARTTLS = {"auto": None, "require": True, "off": False}


class Adapter(ProviderAdapter):
    type = "smtp"
    channels = frozenset({"email"})
    delivery_reports = False  # `sent` is final
    default_base_url = "smtp://localhost:25"
    required_credentials = ()
    optional_credentials = ("username", "password")
    public_credentials = frozenset({"username"})

    def _client(self) -> aiosmtplib.SMTP:
        url = urlsplit(self.base_url if "://" in self.base_url else f"smtp://{self.base_url}")
        implicit = url.scheme == "smtps"
        options = self.config.options
        starttls = STARTTLS.get(str(options.get("starttls", "auto")))
        credentials = self.config.credentials
        return aiosmtplib.SMTP(
            hostname=url.hostname or "localhost",
            port=url.port or (465 if implicit else 25),
            use_tls=implicit,
            start_tls=False if implicit else starttls,
            username=credentials.get("username") or None,
            password=credentials.get("password") or None,
            validate_certs=bool(options.get("validate_certs", True)),
            timeout=float(options.get("timeout_s", 30)),
            local_hostname=options.get("local_hostname"),
        )

    def compose(self, message: OutboundMessage) -> EmailMessage:
        # The account's address is the From (a message may not pick any address it likes).
        sender = self.config.sender or message.sender
        if not sender:
            raise ProviderError(
                "No sender address is configured.", retryable=False, code="no_sender"
            )
        domain = parseaddr(sender)[1].rpartition("@")[2] or None
        mail = EmailMessage()
        try:
            mail["From"] = sender
            mail["To"] = message.to
            mail["Subject"] = message.subject or ""
            mail["Date"] = formatdate(usegmt=True)
            mail["Message-ID"] = make_msgid(domain=domain)
            mail["X-Nexus-Message-Id"] = message.id
            if message.metadata.get("reply_to"):
                mail["Reply-To"] = str(message.metadata["reply_to"])
            extra = message.metadata.get("headers")
            for name, value in extra.items() if isinstance(extra, dict) else ():
                if str(name).lower().startswith("x-"):
                    mail[str(name)] = str(value)
        except ValueError as exc:  # CR/LF or other invalid characters in a header
            raise ProviderError(
                f"Invalid e-mail header: {exc}", retryable=False, code="invalid_header"
            ) from exc
        mail.set_content(message.body or "")
        if message.metadata.get("html"):
            mail.add_alternative(str(message.metadata["html"]), subtype="html")
        return mail

    async def send(self, message: OutboundMessage) -> SendResult:
        mail = self.compose(message)
        try:
            async with self._client() as client:
                _, reply = await client.send_message(mail)
        except Exception as exc:
            error = smtp_error(exc)
            if error is None:
                raise
            raise error from exc
        message_id = str(mail["Message-ID"]).strip("<>")
        return SendResult(
            provider_message_id=message_id, status="sent", segments=1, raw={"reply": reply}
        )

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return False  # SMTP has no callbacks (bounces and inbound mail: a later issue)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookItem]:
        return []

    async def health(self) -> Health:
        """Connect (TLS, AUTH as configured) and NOOP; never raises."""
        started = time.perf_counter()
        try:
            async with self._client() as client:
                code, _ = await client.noop()
        except Exception as exc:  # a health probe reports, it never raises
            error = smtp_error(exc)
            suffix = f" ({error.code})" if error is not None else ""
            return Health(False, elapsed_ms(started), f"{type(exc).__name__}{suffix}")
        return Health(200 <= code < 300, elapsed_ms(started), f"NOOP {code}")


def smtp_error(exc: BaseException) -> ProviderError | None:
    """Classify an SMTP failure: 4xx and connection trouble retryable, 5xx permanent."""
    code: int | None = None
    text = ""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        code, text = exc.recipients[0].code, exc.recipients[0].message
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, exc.message
    if code is not None and code > 0:
        return ProviderError(
            f"SMTP {code}: {_first_line(text)}", retryable=400 <= code < 500, code=str(code)
        )
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
        return ProviderError(
            "SMTP server did not accept the connection in time.",
            retryable=True,
            code="connect_timeout",
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return ProviderError("SMTP server did not answer in time.", retryable=True, code="timeout")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return ProviderError("SMTP server unreachable.", retryable=True, code="connect_error")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ProviderError(f"SMTP: {exc}", retryable=False, code="not_supported")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPException | OSError):
        return ProviderError(
            f"SMTP connection failed ({type(exc).__name__}).", retryable=True, code="connection"
        )
    return None


def _first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else ""
