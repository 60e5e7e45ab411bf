"""The email channel: queued deliveries sent over SMTP, retried with backoff.

Deliveries are rows written in the same transaction as their notification, so an email is
never lost and never holds up the in-app notification: `EmailSender` (one per replica) leases
due rows (`SKIP LOCKED`), sends them with the standard library's smtplib in a worker thread,
and marks them sent, or schedules the next attempt with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from services.platform.db import Database
from services.platform.tasks import join

from .store import EmailJob, NotificationRepository, NotificationTables

_log = logging.getLogger(__name__)
GIVEN_UP: datetime = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str = "notifications@mesh.dev"
    timeout: float = 5.0


def send_blocking(config: SmtpConfig, job: EmailJob) -> None:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = job.to_address
    message["Subject"] = job.subject
    message.set_content(job.body)
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as client:
        client.send_message(message)


class EmailSender:
    def __init__(
        self,
        database: Database,
        tables: NotificationTables,
        config: SmtpConfig,
        *,
        poll_interval: float = 1.0,
        base_backoff: float = 2.0,
        max_backoff: float = 600.0,
        max_attempts: int = 8,
        lease: timedelta = timedelta(minutes=1),
    ) -> None:
        self._database = database
        self._tables = tables
        self._config = config
        self._poll_interval = poll_interval
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._max_attempts = max_attempts
        self._lease = lease
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def send_due(self) -> int:
        """One pass: try every due delivery once; return how many were sent."""
        async with self._database.uow() as tx:
            jobs = await NotificationRepository(tx.session, self._tables).lease_due_emails(
                datetime.now(UTC), self._lease, limit=20
            )
        # The lease must outlast the sends, or another replica would lease and send the same
        # email again: start no send in the second half of the lease (one SMTP exchange is a
        # handful of socket operations of at most `timeout` each). Jobs left over are leased
        # again when their lease runs out.
        loop = asyncio.get_running_loop()
        start_by = loop.time() + self._lease.total_seconds() / 2
        sent = 0
        for job in jobs:
            if loop.time() > start_by:
                break
            try:
                await asyncio.to_thread(send_blocking, self._config, job)
            except (OSError, smtplib.SMTPException) as error:
                await self._failed(job, f"{type(error).__name__}: {error}")
                continue
            async with self._database.uow() as tx:
                await NotificationRepository(tx.session, self._tables).email_sent(
                    job.notification_id, datetime.now(UTC)
                )
            sent += 1
        return sent

    async def _failed(self, job: EmailJob, error: str) -> None:
        if job.attempts >= self._max_attempts:
            retry_at = GIVEN_UP
            _log.error("email delivery given up", extra={"attempts": job.attempts})
        else:
            delay = min(self._max_backoff, self._base_backoff * 2 ** (job.attempts - 1))
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            _log.warning("email delivery failed, will retry", extra={"attempts": job.attempts})
        async with self._database.uow() as tx:
            await NotificationRepository(tx.session, self._tables).email_failed(
                job.notification_id, error, retry_at
            )

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.send_due()
            except Exception:
                _log.exception("email sender pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._poll_interval)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="email-sender")

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        await join(task)
