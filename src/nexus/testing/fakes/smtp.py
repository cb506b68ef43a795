"""A real SMTP server on loopback (aiosmtpd), with the same knobs as the HTTP fakes.

- AUTH PLAIN/LOGIN with `credentials` (`username`, `password`; 535 on a mismatch),
  required unless `require_auth=False`; no TLS (loopback only).
- Recipients steer the outcome by their local part's ending, like phone numbers:
  `...0000@` → 550 5.1.1 unknown user, `...0002@` → 550 5.7.1 refused; others accepted.
- `error_code` (`421`, `450`, `451`, `452`, `550`, `552`, `554`...) answers at
  `error_stage` (`mail`, `rcpt` or `data`); `fail_rate` answers 451 there.
- Outages: `refuse` (listener closed), `hang` (EHLO never answered, at most
  `max_hang_s`), `error` (421 at EHLO).
- Accepted mail is in `messages` (envelope + parsed `email.message.EmailMessage`).

Needs `aiosmtpd` (a dev dependency).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import random
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from nexus.testing.fakes._base import LOOPBACK_HOSTS, OUTAGE_MODES, OUTCOME_SUFFIXES, OutageMode

REPLIES = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.1 Mailbox temporarily unavailable",
    451: "451 4.3.0 Temporary failure, please try again later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message size exceeds fixed limit",
    553: "553 5.1.3 Mailbox name not allowed",
    554: "554 5.7.1 Transaction failed",
}


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SmtpFake:
    name = "smtp"
    default_credentials: dict[str, str] = {
        "username": "nexus",
        "password": "fake-smtp-password-0123",
    }
    KNOBS = ("fail_rate", "latency_ms", "error_code", "error_times", "error_stage")

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        require_auth: bool = True,
        fail_rate: float = 0.0,
        latency_ms: float = 0.0,
        error_code: str | None = None,
        error_times: int | None = None,
        error_stage: str = "rcpt",
        outage: OutageMode | None = None,
        max_hang_s: float = 30.0,
        max_records: int = 10_000,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **_ignored: Any,  # HTTP-only knobs (callback_url, ...) when started by the CLI
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("fakes listen on loopback only")
        self.credentials = {**self.default_credentials, **(credentials or {})}
        self.require_auth = require_auth
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self.error_code = error_code
        self.error_times = error_times
        self.error_stage = error_stage
        self.max_hang_s = max_hang_s
        self.host, self.port = host, port
        self.messages: deque[ReceivedMail] = deque(maxlen=max_records)
        self.counters: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._initial_outage = outage
        self._outage: OutageMode | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Transport] = set()

    @property
    def base_url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def outage(self) -> OutageMode | None:
        return self._outage

    def configure(self, **knobs: Any) -> None:
        for name, value in knobs.items():
            if name not in self.KNOBS:
                raise ValueError(f"unknown knob {name!r}")
            setattr(self, name, value)

    # -- lifecycle ---------------------------------------------------------------------

    def _protocol(self) -> SMTP:
        fake = self

        class Protocol(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                fake._connections.add(transport)  # type: ignore[arg-type]
                fake.counters["connections"] += 1
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                fake._connections.discard(self.transport)
                super().connection_lost(error)

        with warnings.catch_warnings():  # "AUTH without TLS": deliberate, loopback only
            warnings.simplefilter("ignore", UserWarning)
            return self._make(Protocol)

    def _make(self, protocol: type[SMTP]) -> SMTP:
        return protocol(
            self,
            hostname="fake-smtp.nexus.test",
            ident="Nexus fake SMTP",
            authenticator=self._authenticate,
            auth_required=self.require_auth,
            auth_require_tls=False,
            timeout=max(self.max_hang_s, 5.0) + 5,
        )

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.port, reuse_address=True
        )
        if not self.port:
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> Self:
        await self._listen()
        if self._initial_outage:
            await self.set_outage(self._initial_outage)
        return self

    async def stop(self) -> None:
        self._released.set()
        for transport in list(self._connections):
            transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def set_outage(self, mode: OutageMode | None) -> None:
        if mode is not None and mode not in OUTAGE_MODES:
            raise ValueError(f"outage must be one of {OUTAGE_MODES} or None")
        previous, self._outage = self._outage, mode
        if mode == "hang":
            self._released.clear()
        else:
            self._released.set()
        if mode == "refuse" and previous != "refuse" and self._server is not None:
            self._server.close()
            for transport in list(self._connections):
                transport.close()
            await self._server.wait_closed()
            self._server = None
        elif previous == "refuse" and mode != "refuse":
            await self._listen()

    # -- SMTP hooks (aiosmtpd handler API) ---------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.credentials["username"].encode()) & (
            hmac.compare_digest(auth_data.password, self.credentials["password"].encode())
        )
        self.counters["auth_ok" if ok else "auth_failed"] += 1
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 / 535

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self._outage == "hang":
            self.counters["hung"] += 1
            try:
                await asyncio.wait_for(self._released.wait(), self.max_hang_s)
            except TimeoutError:
                return [REPLIES[421]]
            if server.transport is None or server.transport.is_closing():
                return []  # the client gave up while we hung: nothing to answer
        if self._outage == "error":
            return [REPLIES[421]]
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return responses

    def _injected(self, stage: str) -> str | None:
        if stage != self.error_stage:
            return None
        if self.error_code is not None:
            code = int(self.error_code)
            if self.error_times is not None:
                self.error_times -= 1
                if self.error_times <= 0:
                    self.error_code, self.error_times = None, None
            self.counters["errors_injected"] += 1
            return REPLIES.get(code, f"{code} Error")
        if self.fail_rate and self._rng.random() < self.fail_rate:
            self.counters["errors_injected"] += 1
            return REPLIES[451]
        return None

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if reply := self._injected("mail"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if reply := self._injected("rcpt"):
            return reply
        local = address.rsplit("@", 1)[0]
        outcome = next((o for s, o in OUTCOME_SUFFIXES.items() if local.endswith(s)), "ok")
        if outcome == "invalid":
            self.counters["rejected"] += 1
            return "550 5.1.1 The email account that you tried to reach does not exist"
        if outcome == "blocked":
            self.counters["rejected"] += 1
            return "550 5.7.1 Recipient refuses mail from this sender"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
    ) -> str:
        if reply := self._injected("data"):
            return reply
        data = envelope.original_content or b""
        self.messages.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), data))
        self.counters["accepted"] += 1
        return f"250 2.0.0 OK queued as {self._rng.randbytes(6).hex().upper()}"
