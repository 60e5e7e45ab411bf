"""A real SMTP server (aiosmtpd) on loopback that records what it accepts.

It runs in the test's own event loop; the email sender talks to it with smtplib from a
worker thread, so the whole SMTP conversation (EHLO, MAIL, RCPT, DATA, QUIT) is real.
`refuse_first` makes it answer the first few DATA commands with a transient 451, the way a
busy or greylisting server does, and `attempt_times` records when each DATA arrived so a
test can check the sender's backoff.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SmtpSink:
    refuse_first: int = 0
    delay: float = 0.0  # seconds each DATA takes to be answered: a slow server
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    attempt_times: list[float] = field(default_factory=list)
    refused: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> SmtpSink:
        """Listen on 127.0.0.1:`port` (0: a free port, kept in `port`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test"), "127.0.0.1", self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # aiosmtpd handler hook
    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.attempt_times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refused < self.refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        # policy.default: headers decoded (RFC 2047), the body through get_content().
        message = message_from_bytes(content, _class=EmailMessage, policy=policy.default)
        self.messages.append(message)
        self.recipients.extend(envelope.rcpt_tos)
        return "250 2.0.0 queued"
