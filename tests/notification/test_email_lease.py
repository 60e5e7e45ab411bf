"""Two email senders sharing a slow SMTP server never send the same email twice.

Each sender leases a batch of due deliveries; sending them one by one to a slow server can
take longer than the lease, after which the other sender may lease the rest. A sender starts
no send in the second half of its lease, so every email is sent exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.notification.bootstrap import MIGRATIONS
from services.notification.email import EmailSender, SmtpConfig
from services.notification.store import NotificationTables
from services.platform.db import Database
from services.platform.migrations import run_migrations_async
from tests.notification.conftest import eventually
from tests.notification.smtp_sink import SmtpSink

EMAILS = 8
LEASE = timedelta(seconds=2)
SMTP_DELAY = 0.3  # eight sends take 2.4 s: more than one lease


async def _due_emails(database: Database, tables: NotificationTables) -> list[str]:
    now = datetime.now(UTC)
    addresses = [f"reader{index}@example.com" for index in range(EMAILS)]
    async with database.uow() as tx:
        for address in addresses:
            notification_id = uuid.uuid4()
            await tx.session.execute(
                sa.insert(tables.notifications).values(
                    id=notification_id,
                    user_id=uuid.uuid4(),
                    kind=1,
                    title="hello",
                    body="hello",
                    read=False,
                    create_time=now,
                    event_id=uuid.uuid4(),
                )
            )
            await tx.session.execute(
                sa.insert(tables.emails).values(
                    notification_id=notification_id,
                    to_address=address,
                    subject="hello",
                    body="hello",
                    attempts=0,
                    next_attempt_at=now,
                )
            )
    return addresses


async def _all_sent(sink: SmtpSink) -> bool:
    return len(sink.recipients) >= EMAILS


async def test_a_slow_server_never_gets_an_email_twice(
    database: Database, database_url: str, unique_schema: str
) -> None:
    await run_migrations_async(database_url, unique_schema, MIGRATIONS)
    tables = NotificationTables(unique_schema)
    addresses = await _due_emails(database, tables)
    sink = await SmtpSink(delay=SMTP_DELAY).start()
    config = SmtpConfig("127.0.0.1", sink.port)
    senders = [
        EmailSender(database, tables, config, poll_interval=0.05, lease=LEASE) for _ in range(2)
    ]
    try:
        for sender in senders:
            sender.start()
        await eventually(lambda: _all_sent(sink), within=30)
        await asyncio.sleep(LEASE.total_seconds())  # time for a late duplicate to arrive
    finally:
        for sender in senders:
            await sender.stop()
        await sink.stop()
    assert sorted(sink.recipients) == sorted(addresses)
